"""Jurisdiction criteria: which authority is competent, for what and where."""

from cdb_service.registry.kinds.filters import Filter
from cdb_service.registry.kinds.jurisdiction_criteria.models import GeoKey, JurisdictionCriterion
from cdb_service.registry.kinds.jurisdiction_criteria.schemas import JurisdictionCriterionIn
from cdb_service.registry.kinds.spec import KindSpec, ListProjection, Reference

SPEC = KindSpec(
    name="jurisdiction-criteria",
    model=JurisdictionCriterion,
    schema=JurisdictionCriterionIn,
    natural_key="ref",
    natural_key_global=False,
    filters=(
        Filter("ref", "ref"),
        Filter("instrument", "instrument"),
        Filter("competence", "competence"),
        Filter("authority_id", "authority_id", uuid=True),
    ),
    references=(Reference("authority_id", "authority_code", "authorities", required=True),),
    projections=(ListProjection(GeoKey, "geo", ("scheme", "code", "country")),),
)
