"""The mirror's serving app's parts: what its readiness reports, how `min_revision` waits.

The resolve routes are the service's own (`lookup/controller.py`); they ask for the
lookup index and `read_your_writes`, which the mirror builds for itself
(`mirror.serving.serving_app`), the service's way of finding them: one provider each.
"""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import Provide

from cdb_service.lookup import deps as lookup_deps
from cdb_service.mirror.follower import Status
from cdb_service.web.deps import part, provide_read_your_writes


def provide_mirror_status(state: State) -> Status:
    return part(state, "mirror_status", Status)


DEPENDENCIES = {
    **lookup_deps.DEPENDENCIES,
    "read_your_writes": Provide(provide_read_your_writes, sync_to_thread=False),
    "mirror_status": Provide(provide_mirror_status, sync_to_thread=False),
}
