"""National members, deputies and assistants at Eurojust (Regulation (EU) 2018/1727, art. 7)."""

from cdb_service.registry.kinds.filters import Filter
from cdb_service.registry.kinds.national_members.models import NationalMember
from cdb_service.registry.kinds.national_members.schemas import NationalMemberIn
from cdb_service.registry.kinds.spec import KindSpec, Reference

SPEC = KindSpec(
    name="national-members",
    model=NationalMember,
    schema=NationalMemberIn,
    natural_key="ref",
    natural_key_global=False,
    filters=(Filter("ref", "ref"), Filter("country", "country"), Filter("role", "role")),
    references=(Reference("routing_party_id", "routing_party_name", "routing-parties"),),
    private_fields=("person",),
)
