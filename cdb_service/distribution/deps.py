"""The keys that sign extracts, as a dependency."""

from __future__ import annotations

from typing import cast

from litestar.datastructures import State
from litestar.di import Provide

from cdb_service.distribution.signing import SigningKeys


def provide_signing(state: State) -> SigningKeys:
    return cast(SigningKeys, state.signing)


DEPENDENCIES = {"signing": Provide(provide_signing, sync_to_thread=False)}
