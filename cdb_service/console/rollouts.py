"""The console's rollout page (issue 28 item 4): the changes of trust material ahead and
just past, and which access points have confirmed the package that carries each, as
`GET /api/v1/rollouts` says (`distribution/rollouts.py`): every party's for operators,
an owner's own for its administrators."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.console import i18n
from cdb_service.console.pages import HANDLERS, context_of, current_user
from cdb_service.console.web import page
from cdb_service.distribution import rollouts
from cdb_service.settings import Settings

SHOWN = 50  # the soonest changes; the API pages through the rest


class ConsoleRollouts(Controller):
    path = "/console"
    include_in_schema = False
    exception_handlers = HANDLERS
    before_request = staticmethod(i18n.speak)  # the language the page is answered in

    @get("/rollouts")
    async def rollouts_page(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
    ) -> Response[str]:
        user = await current_user(request)
        visibility = rollouts.visibility_of(user.principal)
        now = dt.datetime.now(dt.UTC)
        recent = dt.timedelta(days=settings.rollout_recent_days)
        got = await rollouts.page(sessions, now, visibility, recent, SHOWN)
        context = context_of(user, user.principal.administers, items=got.items,
                             more=got.next_key is not None, revision=got.revision)  # fmt: skip
        return page("rollouts.html", context)
