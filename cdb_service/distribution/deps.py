"""The distribution context's parts: the keys that sign extracts, this worker's
routing-table digests."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import Scope

from cdb_service.distribution.routing_table import TableDigests
from cdb_service.security.signing_keys import SigningKeys
from cdb_service.web.deps import part, state_of


def provide_signing(state: State) -> SigningKeys:
    return part(state, "signing", SigningKeys)


def provide_routing_digests(state: State) -> TableDigests:
    return part(state, "routing_digests", TableDigests)


def routing_digests_of(scope: Scope) -> TableDigests:
    """For the routing table's fast 304 (`distribution.fast`), which answers before DI runs."""
    return provide_routing_digests(state_of(scope))


DEPENDENCIES = {
    "signing": Provide(provide_signing, sync_to_thread=False),
    "routing_digests": Provide(provide_routing_digests, sync_to_thread=False),
}
