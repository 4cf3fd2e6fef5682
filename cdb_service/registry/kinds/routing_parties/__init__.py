"""Routing parties: the e-CODEX / AS4 access points that messages are sent to."""

from cdb_service.registry.kinds.filters import Filter, Match
from cdb_service.registry.kinds.routing_parties.models import PartyIdentifier, RoutingParty
from cdb_service.registry.kinds.routing_parties.schemas import RoutingPartyIn
from cdb_service.registry.kinds.spec import KindSpec, ListProjection

SPEC = KindSpec(
    name="routing-parties",
    model=RoutingParty,
    schema=RoutingPartyIn,
    natural_key="name",
    natural_key_global=True,
    filters=(
        Filter("name", "name"),
        Filter("party_id", "identifiers", Match.ITEM, PartyIdentifier, "party_id"),
    ),
    projections=(
        ListProjection(PartyIdentifier, "identifiers", ("party_id", "party_id_type"), unique=True),
    ),
)
