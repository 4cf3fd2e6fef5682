"""Owners: who may own entries and which instruments each takes part in.

Member states and Eurojust are owners by default, each in the instruments the law
binds it to (`kernel/owners.py`, each fact with its source). An operator's entry
here replaces that default for its code, or registers a third country's central
authority (e.g. a contracting state of the HCCH 2007 Maintenance Convention on
iSupport): `POST /api/v1/owners {"code", "name", "instruments"}`. Entries are the
Commission's (owner EC): only operators write them (`security.policy.may_write`).
The participation code list (`GET /api/v1/code-lists/participation`) is served from
them, writes check owners and criteria's instruments against them, and the look-up
follows them through the feed.
"""

from cdb_service.registry.kinds.filters import Filter
from cdb_service.registry.kinds.owners.models import Owner
from cdb_service.registry.kinds.owners.schemas import OwnerIn
from cdb_service.registry.kinds.spec import KindSpec

SPEC = KindSpec(
    name="owners",
    model=Owner,
    schema=OwnerIn,
    natural_key="code",
    natural_key_global=True,
    filters=(Filter("code", "code"),),
)
