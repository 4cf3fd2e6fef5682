"""Competent authorities: courts, prosecution offices, central authorities, …"""

from cdb_service.registry.kinds.authorities.models import Authority
from cdb_service.registry.kinds.authorities.schemas import AuthorityIn
from cdb_service.registry.kinds.filters import Filter
from cdb_service.registry.kinds.spec import KindSpec, Reference

SPEC = KindSpec(
    name="authorities",
    model=Authority,
    schema=AuthorityIn,
    natural_key="code",
    natural_key_global=True,
    filters=(
        Filter("code", "code"),
        Filter("kind", "kind"),
        Filter("routing_party_id", "routing_party_id", uuid=True),
        Filter("parent_id", "parent_id", uuid=True),
    ),
    references=(
        Reference("parent_id", "parent_code", "authorities"),
        Reference("routing_party_id", "routing_party_name", "routing-parties"),
    ),
)
