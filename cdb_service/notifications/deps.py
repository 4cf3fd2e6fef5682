"""The notifications' part as a dependency: the delivery worker (and its URL checks)."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import Provide

from cdb_service.notifications.delivery import Notifier
from cdb_service.web.deps import part


def provide_notifier(state: State) -> Notifier:
    return part(state, "notifier", Notifier)


DEPENDENCIES = {"notifier": Provide(provide_notifier, sync_to_thread=False)}
