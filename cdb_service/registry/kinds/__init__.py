"""The kinds of entry, one package each (model, schema, `SPEC`), and `KINDS`: every kind, in
the order a batch applies them (targets before their referrers).

What every kind shares lives beside them: `spec.py` (`KindSpec`), `schemas.py` and
`fields.py` (the parts and field types of the schemas), `filters.py`. Nothing here
imports the store, the formats or the HTTP layer built on them.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from cdb_service.registry.kinds import (
    authorities,
    incidents,
    jurisdiction_criteria,
    maintenance_windows,
    national_correspondents,
    national_members,
    owners,
    routing_parties,
)
from cdb_service.registry.kinds.spec import KindSpec

KINDS: Final[MappingProxyType[str, KindSpec]] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            owners.SPEC,
            routing_parties.SPEC,
            authorities.SPEC,
            national_correspondents.SPEC,
            national_members.SPEC,
            jurisdiction_criteria.SPEC,
            maintenance_windows.SPEC,
            incidents.SPEC,
        )
    }
)
APPLY_ORDER: Final = tuple(KINDS)
