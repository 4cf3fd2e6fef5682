"""The console's parts (its settings, session store, OIDC sign-in and the gate it shares),
built once at start-up by the composition root and offered as the `console` dependency."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import Scope
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.console.sessions import SessionStore
from cdb_service.console.signin import OidcSignIn
from cdb_service.security.gate import SecurityGate
from cdb_service.settings import Settings
from cdb_service.web.deps import part, state_of


@dataclass(frozen=True)
class ConsoleParts:
    settings: Settings
    store: SessionStore
    signin: OidcSignIn
    gate: SecurityGate

    @classmethod
    def build(cls, settings: Settings, sessions: async_sessionmaker[AsyncSession],
              gate: SecurityGate) -> ConsoleParts:  # fmt: skip
        """From the service's own parts: its sessions, and the gate's token validator
        (a console sign-in's ID token is checked like an API token)."""
        store = SessionStore(sessions, dt.timedelta(seconds=settings.console_idle_timeout_s),
                             dt.timedelta(seconds=settings.console_absolute_timeout_s))  # fmt: skip
        return cls(settings, store, OidcSignIn(settings, gate.validator), gate)


def provide_console(state: State) -> ConsoleParts:
    return part(state, "console", ConsoleParts)


def console_of(scope: Scope) -> ConsoleParts:
    """For the console's helpers that every page calls with its request (who is signed
    in, who acts): not handlers, so DI does not reach them."""
    return provide_console(state_of(scope))


DEPENDENCIES = {"console": Provide(provide_console, sync_to_thread=False)}
