"""Rollout status (issue 28 item 4): each pending or recent change of trust material, and
which access points have confirmed the package that carries it.

A change is an edge of a routing-party certificate's window (`packages.held`): the
certificate is *accepted* (it enters the truststores), *used* (it takes the party's
alias: encryption and signing switch to it) or *no longer accepted* (it leaves them).
Edges at one moment of one certificate are one change (a certificate with no windows is
accepted and used at its notBefore).

The access points that must act on a change of party P at moment T are the parties
whose package carries P (the parties offering a service P offers, and P itself: the
default `Scope` of `packages.py`). For each of them, Q, the package as of T has a digest
(`Content.digest`, what `GET /packages/{Q}?at=T` serves and what an agent acknowledges).
Per target of Q that ever acknowledged (`acknowledgements.py`):

* **confirmed**: it acknowledged the package as of T, or a later one (one whose
  `effective_from` is a later change Q's package carries: it carries this one too);
* **stale**: it acknowledged packages, but none of those: it runs what it ran before;
* an access point that never acknowledged anything is **unconfirmed** (target unknown).

The digests of packages fetched with `whole_network=true` count too (the CMT's
download): a target that runs the whole network's package is as confirmed.

Costs are bounded: changes are found from the windows alone (no package built), a page
holds at most `MAX_LIMIT` of them, and a page builds at most the packages of the access
points its changes concern, at their moments (memoised per page).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service import metrics
from cdb_service.db import revisions as rev
from cdb_service.distribution import acknowledgements, routing_table
from cdb_service.distribution.acknowledgements import Acknowledgement
from cdb_service.distribution.packages import (
    FOREVER,
    Held,
    Inexpressible,
    NoSuchParty,
    Scope,
    content,
    held,
)
from cdb_service.distribution.routing_table import RoutingTable
from cdb_service.kernel.calendar import BRUSSELS, Calendar, default_calendar, local_date
from cdb_service.logging import get_logger
from cdb_service.security import policy
from cdb_service.security.policy import Principal

MAX_LIMIT = 100
FIRST_REFRESH_S = 60.0
MAX_CHANGES = 2000  # changes considered at all (pending and recent), soonest first
LATER = 4  # later packages that may confirm a change (each built at most once a page)
AHEAD = dt.timedelta(days=800)  # past a certificate's life: accept_until, notAfter
NAMESPACE = uuid.UUID("5a0b7c38-7d0e-4f0b-9a38-cdb28c0a11ed")
EDGES = (("accepted", "accept_from"), ("used", "use_from"), ("no-longer-accepted", "accept_until"))
log = get_logger("cdb.rollouts")


@dataclass(frozen=True)
class Change:
    """One change of trust material: what happens to a certificate of a party, and when."""

    party: str
    owner: str
    certificate: Held
    what: tuple[str, ...]  # accepted, used, no-longer-accepted (one or more at once)
    effective_from: dt.datetime

    @property
    def id(self) -> uuid.UUID:
        key = f"{self.party}/{self.certificate.use}/{self.certificate.sha256}/"
        return uuid.uuid5(NAMESPACE, key + self.effective_from.isoformat())

    @property
    def key(self) -> tuple[str, str]:
        return (self.effective_from.isoformat(), str(self.id))


def changes(table: RoutingTable, now: dt.datetime, recent: dt.timedelta) -> list[Change]:
    """Every change from `now - recent` on, soonest first (at most MAX_CHANGES)."""
    found: list[Change] = []
    for party in table.parties:
        for c in held(party):
            at: dict[dt.datetime, list[str]] = {}
            for what, edge in EDGES:
                moment = getattr(c, edge)
                if moment != FOREVER and now - recent <= moment <= now + AHEAD:
                    at.setdefault(moment, []).append(what)
            for moment, what_list in at.items():
                found.append(Change(party["name"], party["owner"], c, tuple(what_list), moment))
    found.sort(key=lambda ch: ch.key)
    return found[:MAX_CHANGES]


def carriers(table: RoutingTable, party: str) -> list[dict[str, Any]]:
    """The access points whose (default) package carries `party`'s certificates."""
    out = []
    for q in table.parties:
        try:
            if any(p["name"] == party for p in Scope(q["name"]).select(table.parties)):
                out.append(q)
        except NoSuchParty:  # pragma: no cover - q is in the table
            continue
    return out


class Digests:
    """The digest of Q's package at a moment (default scope, or the whole network's),
    memoised for one computation; None when Q's package cannot be built then."""

    def __init__(self, table: RoutingTable) -> None:
        self.table = table
        self._memo: dict[tuple[str, bool, dt.datetime], str | None] = {}

    def of(self, party: str, moment: dt.datetime, whole_network: bool = False) -> str | None:
        key = (party, whole_network, moment)
        if key not in self._memo:
            try:
                made = content(self.table, Scope(party, whole_network=whole_network), moment)
                self._memo[key] = made.digest
            except (NoSuchParty, Inexpressible):
                self._memo[key] = None
        return self._memo[key]


@dataclass
class Target:
    kind: str
    name: str
    rows: list[Acknowledgement] = field(default_factory=list)  # newest first


def _targets(rows: Sequence[Acknowledgement]) -> list[Target]:
    by: dict[tuple[str, str], Target] = {}
    for row in rows:
        by.setdefault((row.target_kind, row.target_name),
                      Target(row.target_kind, row.target_name)).rows.append(row)  # fmt: skip
    return sorted(by.values(), key=lambda t: (t.kind, t.name))


def _status(
    change: Change,
    q: dict[str, Any],
    rows: Sequence[Acknowledgement],
    digests: Digests,
    later: Sequence[dt.datetime],
) -> list[dict[str, Any]]:
    """One line per target of access point `q` (one line when it has none)."""
    expected = digests.of(q["name"], change.effective_from)
    base = {"party": q["name"], "owner": q["owner"], "package_digest": expected}
    targets = _targets(rows)
    if not targets:
        return [base | {"target": None, "state": "unconfirmed", "acknowledged_digest": None,
                        "applied_at": None}]  # fmt: skip

    def carries(digest: str) -> bool:
        moments = [change.effective_from, *later]
        for moment in moments:
            for whole in (False, True):
                if digests.of(q["name"], moment, whole) == digest:
                    return True
        return False

    out = []
    for target in targets:
        hit = next((r for r in target.rows if carries(r.package_digest)), None)
        shown = hit or target.rows[0]
        out.append(base | {
            "target": {"kind": target.kind, "name": target.name},
            "state": "confirmed" if hit else "stale",
            "acknowledged_digest": shown.package_digest,
            "applied_at": shown.applied_at.isoformat(),
        })  # fmt: skip
    return out


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


async def page(
    sessions: async_sessionmaker[AsyncSession],
    now: dt.datetime,
    visibility: Visibility,
    recent: dt.timedelta,
    limit: int,
    after: tuple[str, str] | None = None,
    pending_only: bool = False,
) -> Page:
    """A page of rollouts after `after` (the key of the last one of the previous page)."""
    async with rev.read_snapshot(sessions) as session:
        table_of = routing_table.tables_by_day(session)
        today = await table_of(local_date(now))
        chosen: list[tuple[Change, RoutingTable, list[dict[str, Any]]]] = []
        more = False
        found = changes(today, now, recent)
        moments = sorted({c.effective_from for c in found})
        for change in found:
            if after is not None and change.key <= after:
                continue
            if pending_only and change.effective_from <= now:
                continue
            table = await table_of(local_date(change.effective_from))
            carrying = carriers(table, change.party)
            if not visibility.change(change, carrying):
                continue
            carried_by = visibility.access_points(change, carrying)
            if len(chosen) == limit:
                more = True
                break
            chosen.append((change, table, carried_by))
        names = sorted({q["name"] for _, _, qs in chosen for q in qs})
        acks = await acknowledgements.of_parties(session, names)
        revision = today.revision
    # Building the packages is CPU work (a PMode per access point and moment): off the
    # event loop, so that look-ups in this worker do not wait for it.
    items = await asyncio.to_thread(_items, chosen, acks, now, moments)
    next_key = chosen[-1][0].key if more and chosen else None
    return Page(revision, items, next_key)


def _items(chosen: Sequence[tuple[Change, RoutingTable, list[dict[str, Any]]]],
           acks: dict[str, list[Acknowledgement]], now: dt.datetime,
           moments: Sequence[dt.datetime]) -> list[dict[str, Any]]:  # fmt: skip
    items = []
    memo: dict[int, Digests] = {}
    for change, table, carried_by in chosen:
        digests = memo.setdefault(id(table), Digests(table))
        later = [m for m in moments if m > change.effective_from][:LATER]
        items.append(_rollout(change, carried_by, acks, digests, now, later))
    return items


def _rollout(change: Change, carried_by: Sequence[dict[str, Any]],
             acks: dict[str, list[Acknowledgement]], digests: Digests, now: dt.datetime,
             later: Sequence[dt.datetime]) -> dict[str, Any]:  # fmt: skip
    lines = [line for q in carried_by
             for line in _status(change, q, acks.get(q["name"], []), digests, later)]  # fmt: skip
    confirmed = sum(1 for line in lines if line["state"] == "confirmed")
    c = change.certificate
    return {
        "id": str(change.id),
        "party": change.party,
        "owner": change.owner,
        "changes": list(change.what),
        "certificate": {
            "use": c.use,
            "sha256": c.sha256,
            "subject": c.subject,
            "accept_from": c.accept_from.isoformat(),
            "use_from": c.use_from.isoformat(),
            "accept_until": c.accept_until.isoformat() if c.accept_until != FOREVER else None,
        },
        "effective_from": change.effective_from.isoformat(),
        "pending": change.effective_from > now,
        "confirmed": confirmed,
        "access_points_total": len(lines),
        "access_points": lines,
    }


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
                         pending_only=True)  # fmt: skip
        out.extend(r for r in got.items if "used" in r["changes"])
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
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> list[dict[str, Any]]:
        pending = await pending_uses(self.sessions, self.clock())
        self.gauges.set(pending, self.working_days, default_calendar())
        return pending

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="rollouts")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
