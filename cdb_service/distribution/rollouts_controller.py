"""`POST /api/v1/access-points/{party}/acknowledgements` (an access point says which
package it applied, and where), `GET` of the same (what it said, newest first) and
`GET /api/v1/rollouts` (who has confirmed each pending or recent change an access point
must import): issue 28, `acknowledgements.py` and `rollouts.py` say how."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import revisions as rev
from cdb_service.distribution import acknowledgements, rollouts, routing_table
from cdb_service.distribution.acknowledgements import Acknowledgement, Posted
from cdb_service.distribution.packages import Inexpressible, NoSuchParty, Scope, content, held
from cdb_service.distribution.rollouts_schemas import (
    AcknowledgementIn,
    AcknowledgementOut,
    AcknowledgementPage,
    RolloutPage,
)
from cdb_service.kernel.calendar import local_date
from cdb_service.kernel.problems import NOT_FOUND, FieldError, invalid
from cdb_service.registry.kinds.routing_parties.models import RoutingParty
from cdb_service.security import audit, policy
from cdb_service.security.audit import Who
from cdb_service.security.policy import Principal
from cdb_service.settings import Settings
from cdb_service.web.docs import answer, problems
from cdb_service.web.pagination import decode_sorted_cursor, encode_cursor


def _out(row: Acknowledgement) -> dict[str, Any]:
    return {
        "id": str(row.id), "party": row.party, "package_digest": row.package_digest,
        "target": {"kind": row.target_kind, "name": row.target_name},
        "applied_at": row.applied_at.isoformat(), "received_at": row.received_at.isoformat(),
        "answer": row.answer, "acknowledged_by": row.acknowledged_by,
        "scheduled_for": row.scheduled_for.isoformat() if row.scheduled_for else None,
    }  # fmt: skip


def _accepted_now(party: RoutingParty) -> list[str]:
    now = dt.datetime.now(dt.UTC)
    document = {"name": party.name, "certificates": party.certificates or []}
    return [c.sha256.replace(":", "").lower() for c in held(document) if c.accepted(now)]


async def _party(sessions: async_sessionmaker[AsyncSession], party: str) -> RoutingParty:
    async with sessions() as session:
        row = (await session.scalars(
            select(RoutingParty).where(RoutingParty.name == party))).first()  # fmt: skip
    if row is None:
        raise NOT_FOUND(f"no routing party named {party[:100]!r}")
    return row


async def _current(sessions: async_sessionmaker[AsyncSession], party: RoutingParty
                   ) -> list[str | None]:  # fmt: skip
    """The digests of the party's packages in force now: default scope first, then the
    whole network's and its own owner's (what an operator may have fetched instead)."""
    now = dt.datetime.now(dt.UTC)
    async with rev.read_snapshot(sessions) as session:
        table = await routing_table.read_table(session, local_date(now))

    def digests() -> list[str | None]:
        out: list[str | None] = []
        for scope in (Scope(party.name), Scope(party.name, whole_network=True),
                      Scope(party.name, owner=party.owner)):  # fmt: skip
            try:
                out.append(content(table, scope, now).digest)
            except (NoSuchParty, Inexpressible):
                out.append(None)
        return out

    return await asyncio.to_thread(digests)  # PMode building is CPU work


def _ack_after(cursor: str | None) -> tuple[dt.datetime, uuid.UUID] | None:
    if cursor is None:
        return None
    _, after, carried = decode_sorted_cursor(cursor)
    if not carried or carried[0] != "received_at" or not isinstance(carried[1], str):
        raise invalid([FieldError(("query", "cursor"), "not a cursor of this list")])
    try:
        at = dt.datetime.fromisoformat(carried[1])
    except ValueError:
        raise invalid([FieldError(("query", "cursor"), "not a cursor of this list")]) from None
    if at.tzinfo is None:
        raise invalid([FieldError(("query", "cursor"), "not a cursor of this list")])
    return at, after


def _after(cursor: str | None) -> tuple[str, str] | None:
    if cursor is None:
        return None
    _, after, carried = decode_sorted_cursor(cursor)
    if not carried or carried[0] != "effective_from" or not isinstance(carried[1], str):
        raise invalid([FieldError(("query", "cursor"), "not a cursor of this list")])
    return (carried[1], str(after))


class AccessPointController(Controller):
    path = "/access-points"
    tags = ["rollouts"]  # noqa: RUF012

    @post(
        "/{party:str}/acknowledgements",
        summary="An access point confirms it applied, or holds and scheduled, a "
        "configuration package",
        description=(
            "Posted by `cdb-service connector-sync` after it applied a package "
            "(`GET /packages/{party}`) to one of its targets, and, with `scheduled_for`, "
            "when it has fetched the next one (`GET /packages/{party}/next`), verified it "
            "and holds it to apply at its `effective_from`. Allowed to the party's "
            "owner's administrators and to the access point itself: a client whose mutual-"
            "TLS certificate is one of the party's accepted certificates. Idempotent: the "
            "same digest and target again answers 200 with the kept acknowledgement "
            "(201 when new), except that an applied acknowledgement (no `scheduled_for`) "
            "of a digest and target kept as scheduled upgrades that one to applied (200, "
            "its `applied_at`, `answer` and `received_at` now the applied one's); a "
            "scheduled one of a digest already applied changes nothing. Each target keeps "
            "its last 20 acknowledgements, a party its 16 most recently heard targets."
        ),
        responses=problems(403, 404, 422)
        | answer(
            AcknowledgementOut,
            "already acknowledged (or a scheduled one now applied): the kept acknowledgement",
        )
        | answer(AcknowledgementOut, "recorded", status=201),
        status_code=201,
        opt={"readers_post": True},  # the access point's own token reads only
        request_max_body_size=16_384,
    )
    async def acknowledge(
        self,
        data: AcknowledgementIn,
        principal: NamedDependency[Principal],
        who: NamedDependency[Who],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        party: str = Parameter(description="the routing party's name (its Domibus party)"),
    ) -> Response[Any]:
        row = await _party(sessions, party)
        if not policy.may_acknowledge(principal, row.owner, _accepted_now(row)):
            raise policy.forbidden(
                f"only administrators of {row.owner} and the access point {row.name!r} itself "
                "(a client certificate that is one of its accepted certificates) acknowledge "
                "its packages"
            )
        posted = Posted(row.name, row.owner, data.package_digest, data.target.kind,
                        data.target.name, data.applied_at, data.answer,
                        who.subject[:200], data.scheduled_for)  # fmt: skip
        made, new = await _record(sessions, posted, who)
        return Response(_out(made), status_code=201 if new else 200)

    @get(
        "/{party:str}/acknowledgements",
        summary="What an access point has said it applied, newest first",
        description=(
            "The kept acknowledgements of a routing party (each target's last 20, its 16 "
            "most recently heard targets), newest received first, each with whether its "
            "digest is the party's package in force now (`current`). Allowed to those who "
            "may post them (the party's owner's administrators, the access point itself) "
            "and to operators. Keyset pages: `next` is the cursor of the following page."
        ),
        responses=problems(400, 403, 404, 422) | answer(AcknowledgementPage),
    )
    async def list_acknowledgements(
        self,
        principal: NamedDependency[Principal],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        party: str = Parameter(description="the routing party's name (its Domibus party)"),
        limit: int = Parameter(default=50, ge=1, le=200,
                               description="the most acknowledgements on this page"),
        cursor: str | None = Parameter(
            default=None, description="the previous page's `next`, to read the page after it"
        ),
    ) -> Response[Any]:  # fmt: skip
        after = _ack_after(cursor)
        row = await _party(sessions, party)
        if not policy.may_read_acknowledgements(principal, row.owner, _accepted_now(row)):
            raise policy.forbidden(
                f"only operators, administrators of {row.owner} and the access point "
                f"{row.name!r} itself read its acknowledgements"
            )
        async with sessions() as session:
            rows = await acknowledgements.page_of(session, row.name, limit + 1, after)
        current = await _current(sessions, row)
        shown = rows[:limit]
        nxt = None
        if len(rows) > limit:
            last = shown[-1]
            # Acknowledgements are no registry content: the cursor's revision is unused (0).
            nxt = encode_cursor(0, last.id, ["received_at", last.received_at.isoformat()])
        items = [_out(r) | {"current": r.package_digest in current} for r in shown]
        return Response({"items": items, "current_package_digest": current[0], "next": nxt})


async def _record(sessions: async_sessionmaker[AsyncSession], posted: Posted, who: Who
                  ) -> tuple[Acknowledgement, bool]:  # fmt: skip
    """The acknowledgement and whether it is new: inserted, or (the same digest and target
    posted before, or concurrently) the one kept, upgraded from scheduled to applied when
    `posted` is an applied one."""
    detail = {"package_digest": posted.package_digest,
              "target": f"{posted.target_kind}:{posted.target_name}"}  # fmt: skip
    if posted.scheduled_for is not None:
        detail["scheduled_for"] = posted.scheduled_for.isoformat()
    for _ in range(3):
        try:
            async with sessions() as session, session.begin():
                made = await acknowledgements.insert(session, posted)
                await audit.append(session, who, "acknowledgement.create", "ok", posted.party,
                                   detail)  # fmt: skip
                return made, True
        except IntegrityError:
            if posted.scheduled_for is None:
                async with sessions() as session, session.begin():
                    if await acknowledgements.upgrade(session, posted):
                        await audit.append(session, who, "acknowledgement.applied", "ok",
                                           posted.party, detail)  # fmt: skip
            async with sessions() as session:
                kept = await acknowledgements.existing(session, posted)
            if kept is not None:
                return kept, False
            # evicted between the two (a 17th target): insert it again
    raise RuntimeError("an acknowledgement neither written nor found")  # pragma: no cover


class RolloutController(Controller):
    path = "/rollouts"
    tags = ["rollouts"]  # noqa: RUF012

    @get(
        "/",
        summary="Pending and recent changes of trust material and routing, and who has "
        "confirmed them",
        description=(
            "Every change an access point must import from `recent_days` ago on, soonest "
            "first: an edge of a routing party's certificate window (accepted, used, no "
            "longer accepted; `kind` certificate) and a change of a party's PMode entry "
            "(added, retired, its name, endpoint, identifiers, roles or services, or "
            "certificates taken into the stores at once by an edit; `kind` routing), with "
            "per access point whose "
            "package carries it (and per target it acknowledged from) whether it confirmed "
            "the package as of `effective_from` (or a later one), acknowledged only stale "
            "ones, or never acknowledged. A package fetched with `?whole_network=true`, or "
            "with `?owner=` the changed party's owner, confirms as the default one does "
            "(`scope` says which). Operators see every change; an owner's "
            "administrators the changes of its parties, and those its own access points "
            "must import. Keyset pages: `next` is the cursor of the following page."
        ),
        responses=problems(400, 403, 422) | answer(RolloutPage),
    )
    async def list_rollouts(
        self,
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        limit: int = Parameter(default=50, ge=1, le=rollouts.MAX_LIMIT,
                               description="the most changes on this page"),
        cursor: str | None = Parameter(
            default=None, description="the previous page's `next`, to read the page after it"
        ),
        pending: bool = Parameter(default=False, description="only changes still ahead"),
        recent_days: int | None = Parameter(
            default=None, ge=0, le=366,
            description="how far back changes are listed (default CDB_ROLLOUT_RECENT_DAYS)",
        ),
    ) -> Response[Any]:  # fmt: skip
        visibility = rollouts.visibility_of(principal)
        after = _after(cursor)
        recent = dt.timedelta(days=settings.rollout_recent_days if recent_days is None
                              else recent_days)  # fmt: skip
        got = await rollouts.page(sessions, dt.datetime.now(dt.UTC), visibility, recent,
                                  limit, after, pending_only=pending)  # fmt: skip
        nxt = None
        if got.next_key is not None:
            nxt = encode_cursor(got.revision, uuid.UUID(got.next_key[1]),
                                ["effective_from", got.next_key[0]])  # fmt: skip
        return Response({"items": got.items, "revision": got.revision, "next": nxt})
