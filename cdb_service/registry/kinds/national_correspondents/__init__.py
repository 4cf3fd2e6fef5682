"""National correspondents for Eurojust (Regulation (EU) 2018/1727, art. 20)."""

from cdb_service.registry.kinds.filters import Filter
from cdb_service.registry.kinds.national_correspondents.models import NationalCorrespondent
from cdb_service.registry.kinds.national_correspondents.schemas import NationalCorrespondentIn
from cdb_service.registry.kinds.spec import KindSpec, Reference

SPEC = KindSpec(
    name="national-correspondents",
    model=NationalCorrespondent,
    schema=NationalCorrespondentIn,
    natural_key="ref",
    natural_key_global=False,
    filters=(
        Filter("ref", "ref"),
        Filter("country", "country"),
        Filter("type", "type"),
        Filter("authority_id", "authority_id", uuid=True),
    ),
    references=(Reference("authority_id", "authority_code", "authorities"),),
    private_fields=("person",),
)
