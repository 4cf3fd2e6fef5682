"""The console's pages that are not one kind's: who would receive a message, the notice
rule of a maintenance window, a routing party's certificate rotation."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect

from cdb_service.console import i18n
from cdb_service.console.i18n import gettext, localised, ngettext
from cdb_service.console.pages import HANDLERS, context_of, current_user
from cdb_service.console.web import (
    BRUSSELS,
    checked_form,
    page,
    who,
)
from cdb_service.kernel import calendar, codes
from cdb_service.kernel.problems import Problem, not_ready
from cdb_service.lookup import query, resolver
from cdb_service.lookup.follower import IndexFollower
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store import edits
from cdb_service.registry.store.certificate_rotation import rotate_certificate
from cdb_service.registry.store.reads import EntryReads
from cdb_service.registry.store.writes import EntryWrites
from cdb_service.security import policy

# The resolve page's form: the query parameters it offers (`lookup.query` says what each is).
OFFERED = tuple(p.name for p in (query.COUNTRY, query.INSTRUMENT, query.COMPETENCE,
                                 query.POSTAL_CODE, query.DATE))  # fmt: skip


def _countries(lookup: IndexFollower) -> dict[str, str]:
    """The states the resolve page offers: member states and registered third countries."""
    index = lookup.index
    return index.owners.countries() if index is not None else dict(codes.COUNTRIES)


def _brussels(text: str) -> dt.datetime | None:
    """A time typed in a form (no zone) as Europe/Brussels, or None when empty or wrong."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=BRUSSELS)


class ConsoleTools(Controller):
    """The pages that are not one kind's: who would receive a message, the notice rule of a
    maintenance window, and a routing party's certificate rotation."""

    path = "/console"
    include_in_schema = False
    exception_handlers = HANDLERS
    before_request = staticmethod(i18n.speak)  # the language the page is answered in

    @get("/resolve")
    async def resolve(self, request: Request[Any, Any, Any],
                      lookup: NamedDependency[IndexFollower]) -> Response[str]:  # fmt: skip
        """Who would receive a message: the route's query (`lookup.query`), from a form that
        offers the country, instrument, competence, postal code and date."""
        user = await current_user(request)
        given = query.given(request.query_params)
        params = {name: value for name in OFFERED if (value := given.get(name))}
        asked = {name: params.get(name, "") for name in OFFERED}
        context = context_of(user, user.principal.administers, asked=asked, answer=None, errors={},
                        countries=localised("countries", _countries(lookup)),
                        instruments=codes.INSTRUMENTS,
                        competences=codes.COMPETENCES)  # fmt: skip
        if params.get(query.COUNTRY.name):
            try:
                index = lookup.index
                if index is None:
                    raise not_ready()
                resolved = query.resolve_query(params, index.owners)
                context["answer"] = resolver.resolve(index, resolved)
            except Problem as problem:
                if problem.status not in (400, 422):
                    raise
                context["errors"] = {str(e.loc[-1]): e.msg for e in problem.errors}
                return page("resolve.html", context, status_code=422)
        return page("resolve.html", context)

    @get("/maintenance-notice")
    async def notice(self, request: Request[Any, Any, Any], starts_at: str = "",
                     ends_at: str = "") -> Response[str]:  # fmt: skip
        """Annex I 6.3/6.4 for the times typed: the notice needed, whether announcing now
        gives it, and whether the window lies in the preferred hours."""
        user = await current_user(request)
        context = context_of(user, user.principal.administers, starts_at=starts_at, ends_at=ends_at,
                        rule=None, error=None)  # fmt: skip
        if starts_at or ends_at:
            starts, ends = _brussels(starts_at), _brussels(ends_at)
            if starts is None or ends is None or ends <= starts:
                context["error"] = gettext(
                    "give a start and a later end (YYYY-MM-DD HH:MM, Brussels)"
                )
                return page("notice.html", context, status_code=422)
            for name, moment in (("starts_at", starts), ("ends_at", ends)):
                try:
                    calendar.check_year(moment)
                except calendar.OutsideCalendar as error:
                    context["error"] = f"{name}: {error}"
                    return page("notice.html", context, status_code=422)
            now = dt.datetime.now(dt.UTC)
            context["rule"] = calendar.derive(starts, ends, now)
            context["hours"] = round((ends - starts).total_seconds() / 3600, 2)
        return page("notice.html", context)

    @get("/rotate/{entry_id:uuid}")
    async def rotate_form(self, request: Request[Any, Any, Any], entry_id: uuid.UUID,
                          reads: NamedDependency[EntryReads]) -> Response[str]:  # fmt: skip
        user = await current_user(request)
        party = await edits.current(reads, KINDS["routing-parties"], entry_id)
        policy.require_write(user.principal, party["owner"])
        return page("rotate.html", context_of(user, party["owner"], party=party, error=None))

    @post("/rotate/{entry_id:uuid}", status_code=303)
    async def rotate(self, request: Request[Any, Any, Any], entry_id: uuid.UUID,
                     reads: NamedDependency[EntryReads],
                     writes: NamedDependency[EntryWrites]) -> Response[Any]:  # fmt: skip
        user = await current_user(request)
        form = await checked_form(request, user)
        party = await edits.current(reads, KINDS["routing-parties"], entry_id)
        policy.require_write(user.principal, party["owner"])
        try:
            done = await rotate_certificate(
                writes.sessions, str(form.get("old") or ""), str(form.get("pem") or ""),
                who(request, user), lambda owner: policy.require_write(user.principal, owner),
            )  # fmt: skip
        except Problem as problem:
            if problem.status not in (404, 409, 422):
                raise
            why = "; ".join(e.msg for e in problem.errors) or problem.detail
            context = context_of(user, party["owner"], party=party, error=why)
            return page("rotate.html", context, status_code=problem.status)
        count = len(done["routing_parties"])
        message = ngettext(
            "Certificate replaced in {count} routing party (revision {revision}).",
            "Certificate replaced in {count} routing parties (revision {revision}).",
            count,
        ).format(count=count, revision=done["revision"])
        return Redirect(f"/console/routing-parties/{entry_id}?" + urlencode({"done": message}),
                        status_code=303)  # fmt: skip
