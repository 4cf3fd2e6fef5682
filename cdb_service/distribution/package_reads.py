"""Reading packages from the registry: the one in force at a moment, and the next one.

`packages.py` builds a package from a routing table; this reads the tables it needs
from one snapshot of the registry. The next package is the first moment after now at
which the package's content changes: a certificate's window edge, or a day on which a
party's validity begins or ends. Candidates at which nothing the party imports changes
(another party's certificate, outside its scope) are passed over, so an agent that
fetches ahead never switches to what it already runs.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import revisions as rev
from cdb_service.distribution import routing_table
from cdb_service.distribution.packages import (
    Content,
    NoSuchParty,
    Scope,
    boundaries,
    content,
    day_start,
)
from cdb_service.kernel.calendar import local_date
from cdb_service.registry.kinds.routing_parties.models import RoutingParty

LOOK_AHEAD = 64  # moments tried for the next package: bounded work per request


async def at(
    sessions: async_sessionmaker[AsyncSession], scope: Scope, moment: dt.datetime
) -> Content:
    """The package of `scope` in force at `moment` (now, or a date asked for)."""
    async with rev.read_snapshot(sessions) as session:
        table = await routing_table.read_table(session, local_date(moment))
    return content(table, scope, moment)


async def following(
    sessions: async_sessionmaker[AsyncSession], scope: Scope, now: dt.datetime
) -> Content | None:
    """The first package after `now` whose content differs from the one in force; None
    when nothing the registry knows of changes it."""
    async with rev.read_snapshot(sessions) as session:
        table_of = routing_table.tables_by_day(session)
        today = await table_of(local_date(now))
        current = content(today, scope, now)
        edges = {e for e in boundaries(scope.select(today.parties)) if e > now}
        edges.update(await _validity_edges(session, local_date(now)))
        for moment in sorted(edges)[:LOOK_AHEAD]:
            try:
                then = content(await table_of(local_date(moment)), scope, moment)
            except NoSuchParty:
                continue  # the party is not valid that day: there is no package to run
            if then.digest != current.digest:
                then.effective_from = moment
                return then
    return None


async def _validity_edges(session: AsyncSession, day: dt.date) -> set[dt.datetime]:
    """The days after `day` on which some routing party becomes valid or stops being."""
    starts = await session.scalars(
        select(RoutingParty.valid_from).where(RoutingParty.valid_from > day).distinct()
    )
    ends = await session.scalars(
        select(RoutingParty.valid_to).where(RoutingParty.valid_to >= day).distinct()
    )
    edges = {day_start(d) for d in starts if d is not None}
    edges.update(day_start(d + dt.timedelta(days=1)) for d in ends if d is not None)
    return edges
