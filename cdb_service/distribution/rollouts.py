"""Rollout status (issue 28 item 4): each pending or recent change an access point must
import, and which access points have confirmed the package that carries it.

The changes (`rollout_changes.py`) are of two kinds in one shape: an edge of a routing
party's certificate window (accepted, used, no longer accepted), and a change of a
party's PMode entry (added, retired, its name, endpoint, identifiers, roles, services).
Who must act on each, and whether they have confirmed it, is computed alike for both
(`rollout_status.py`): the access points whose package carries the party, and per
target they acknowledged from, confirmed, stale or unconfirmed.

Costs are bounded: changes are found from the windows and the routing parties' entry
versions alone (no package built), a page holds at most `MAX_LIMIT` of them, and a page
builds at most the packages of the access points its changes concern, at their moments
and in three scopes (memoised per page).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service import metrics
from cdb_service.db import revisions as rev
from cdb_service.distribution import acknowledgements, routing_table
from cdb_service.distribution.acknowledgements import Acknowledgement
from cdb_service.distribution.rollout_changes import (
    MAX_CHANGES,
    Change,
    carriers,
    certificate_changes,
    routing_changes,
)
from cdb_service.distribution.rollout_status import Digests, rollout
from cdb_service.distribution.routing_table import RoutingTable
from cdb_service.kernel.background import Background
from cdb_service.kernel.calendar import BRUSSELS, Calendar, default_calendar, local_date
from cdb_service.logging import get_logger
from cdb_service.security import policy
from cdb_service.security.policy import Principal

MAX_LIMIT = 100
FIRST_REFRESH_S = 60.0
LATER = 4  # later packages that may confirm a change (each built at most once a page)
log = get_logger("cdb.rollouts")


@dataclass(frozen=True)
class Visibility:
    """Whose rollouts a caller sees: every one (operators, `owner` None), or those of an
    owner's parties and the changes its parties must import (its access points only)."""

    owner: str | None

    def change(self, change: Change, carried_by: Sequence[dict[str, Any]]) -> bool:
        return (self.owner is None or change.owner == self.owner
                or any(q["owner"] == self.owner for q in carried_by))  # fmt: skip

    def access_points(self, change: Change, carried_by: Sequence[dict[str, Any]]
                      ) -> list[dict[str, Any]]:  # fmt: skip
        if self.owner is None or change.owner == self.owner:
            return list(carried_by)
        return [q for q in carried_by if q["owner"] == self.owner]


def visibility_of(principal: Principal) -> Visibility:
    """Operators see every rollout; an owner's administrators their own; nobody else any."""
    if principal.is_operator:
        return Visibility(None)
    if principal.administers is None:
        raise policy.forbidden("rollouts are for operators and owners' administrators "
                               "(scope cdb.operator, or cdb.write with an owner)")  # fmt: skip
    return Visibility(principal.administers)


@dataclass
class Page:
    revision: int
    items: list[dict[str, Any]]
    next_key: tuple[str, str] | None


Chosen = tuple[Change, list[dict[str, Any]]]


async def page(
    sessions: async_sessionmaker[AsyncSession],
    now: dt.datetime,
    visibility: Visibility,
    recent: dt.timedelta,
    limit: int,
    after: tuple[str, str] | None = None,
    pending_only: bool = False,
    wanted: Callable[[Change], bool] | None = None,
) -> Page:
    """A page of rollouts after `after` (the key of the last one of the previous page)."""
    async with rev.read_snapshot(sessions) as session:
        table_of = routing_table.tables_by_day(session)
        today = await table_of(local_date(now))
        found = certificate_changes(today, now, recent)
        found.extend(await routing_changes(session, now, recent))
        found = sorted(found, key=lambda ch: ch.key)[:MAX_CHANGES]
        moments = sorted({c.effective_from for c in found})
        chosen: list[Chosen] = []
        more = False
        for change in found:
            if after is not None and change.key <= after:
                continue
            if pending_only and change.effective_from <= now:
                continue
            if wanted is not None and not wanted(change):
                continue
            carrying = carriers(await table_of(change.carried_on), change)
            if not visibility.change(change, carrying):
                continue
            if len(chosen) == limit:
                more = True
                break
            chosen.append((change, visibility.access_points(change, carrying)))
        later = {c.key: [m for m in moments if m > c.effective_from][:LATER] for c, _ in chosen}
        days = {local_date(m) for c, _ in chosen for m in (c.effective_from, *later[c.key])}
        tables = {day: await table_of(day) for day in sorted(days)}
        names = sorted({q["name"] for _, qs in chosen for q in qs})
        acks = await acknowledgements.of_parties(session, names)
        revision = today.revision
    # Building the packages is CPU work (a PMode per access point, scope and moment): off
    # the event loop, so that look-ups in this worker do not wait for it.
    items = await asyncio.to_thread(_items, chosen, acks, now, later, tables)
    next_key = chosen[-1][0].key if more and chosen else None
    return Page(revision, items, next_key)


def _items(chosen: Sequence[Chosen], acks: dict[str, list[Acknowledgement]], now: dt.datetime,
           later: dict[tuple[str, str], list[dt.datetime]],
           tables: dict[dt.date, RoutingTable]) -> list[dict[str, Any]]:  # fmt: skip
    digests = Digests(tables)
    return [rollout(change, carried_by, acks, digests, now, later[change.key])
            for change, carried_by in chosen]  # fmt: skip


def alert_from(use_from: dt.datetime, working_days: int, cal: Calendar) -> dt.datetime:
    """`working_days` working days (Brussels) before `use_from`, at the same time of day."""
    local = use_from.astimezone(BRUSSELS)
    day, counted = local.date(), 0
    while counted < working_days:
        day -= dt.timedelta(days=1)
        counted += cal.is_working_day(day)
    return dt.datetime.combine(day, local.timetz()).astimezone(dt.UTC)


async def pending_uses(
    sessions: async_sessionmaker[AsyncSession], now: dt.datetime, owner: str | None = None
) -> list[dict[str, Any]]:
    """Every pending change that switches a certificate into use, with its status: what
    the gauges and the quality report look at (bounded by MAX_CHANGES)."""
    out: list[dict[str, Any]] = []
    after: tuple[str, str] | None = None
    while True:
        got = await page(sessions, now, Visibility(owner), dt.timedelta(0), MAX_LIMIT, after,
                         pending_only=True, wanted=lambda c: "used" in c.what)  # fmt: skip
        out.extend(got.items)
        if got.next_key is None:
            return out
        after = got.next_key


class Gauges:
    """`cdb_rollout_unconfirmed_access_points` and the moment it should alert from, per
    pending switch of a certificate; a switch no longer pending reads 0 (multiprocess
    gauges cannot forget a label set, so it is zeroed rather than removed)."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str, str, str]] = set()

    def set(self, pending: Sequence[dict[str, Any]], working_days: int, cal: Calendar) -> None:
        now_seen: set[tuple[str, str, str, str]] = set()
        for r in pending:
            labels = (r["owner"], r["party"], r["certificate"]["use"],
                      r["certificate"]["sha256"][:16])  # fmt: skip
            now_seen.add(labels)
            unconfirmed = r["access_points_total"] - r["confirmed"]
            metrics.ROLLOUT_UNCONFIRMED.labels(*labels).set(unconfirmed)
            use_from = dt.datetime.fromisoformat(r["effective_from"])
            metrics.ROLLOUT_ALERT_FROM.labels(*labels).set(
                alert_from(use_from, working_days, cal).timestamp()
            )
        for labels in self._seen - now_seen:
            metrics.ROLLOUT_UNCONFIRMED.labels(*labels).set(0)
        self._seen |= now_seen


class RolloutWatch:
    """Recomputes the gauges on an interval, so that the alert does not wait for someone
    to open the rollout page."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval_s: float,
                 working_days: int, clock: Callable[[], dt.datetime] | None = None
                 ) -> None:  # fmt: skip
        self.sessions, self.interval_s, self.working_days = sessions, interval_s, working_days
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.gauges = Gauges()
        self._loop = Background("rollouts")

    async def refresh(self) -> list[dict[str, Any]]:
        pending = await pending_uses(self.sessions, self.clock())
        self.gauges.set(pending, self.working_days, default_calendar())
        return pending

    def start(self) -> None:
        self._loop.start(self._run)

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        # Not at once: a starting worker has its index to build first, and tests and
        # short-lived runs never pay for a refresh they do not read.
        await asyncio.sleep(min(self.interval_s, FIRST_REFRESH_S))
        while True:
            try:
                await self.refresh()
            except Exception as error:
                log.warning("rollout gauges not refreshed", error=str(error)[:200])
            await asyncio.sleep(self.interval_s)
