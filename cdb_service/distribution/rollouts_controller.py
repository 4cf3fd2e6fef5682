"""`POST /api/v1/access-points/{party}/acknowledgements` (an access point says which
package it applied, and where) and `GET /api/v1/rollouts` (who has confirmed each
pending or recent change of trust material): issue 28, `acknowledgements.py` and
`rollouts.py` say how."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, Literal

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.distribution import acknowledgements, rollouts
from cdb_service.distribution.acknowledgements import Acknowledgement, Posted
from cdb_service.distribution.packages import held
from cdb_service.kernel.problems import NOT_FOUND, FieldError, invalid
from cdb_service.registry.kinds.routing_parties.models import RoutingParty
from cdb_service.security import audit, policy
from cdb_service.security.audit import Who
from cdb_service.security.policy import Principal
from cdb_service.settings import Settings
from cdb_service.web.docs import answer, problems
from cdb_service.web.pagination import decode_sorted_cursor, encode_cursor

MAX_ANSWER_BYTES = 4096
MAX_ANSWER_DEPTH = 8
FUTURE_SKEW = dt.timedelta(minutes=5)  # clocks of access points drift; more is a mistake
TargetKind = Literal["connector4-dir", "domibus", "connector-ng"]


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: TargetKind = Field(
        description="what was configured: connector4-dir (connector 4.x's start-time import "
        "directory), domibus (Domibus /ext/pmode and /ext/truststore), connector-ng "
        "(connector-ng's processing modes)"
    )
    name: str = Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$",
        description="the operator's name for that instance (e.g. gw-1): letters, digits, "
        ". _ : @ / -",
    )  # fmt: skip


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


class AcknowledgementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    package_digest: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="the package's digest (manifest `package_digest`, header "
        "CDB-Package-Digest): 64 lower-case hex digits",
    )
    target: TargetIn = Field(description="where the package was applied")
    applied_at: dt.datetime = Field(
        description="when it was applied (ISO 8601 with an offset; not in the future)"
    )
    answer: str | dict[str, Any] = Field(
        description="the target's own answer (e.g. Domibus's GET /ext/pmode/current id and "
        f"description): a string or an object, at most {MAX_ANSWER_BYTES} bytes as JSON"
    )

    @field_validator("applied_at")
    @classmethod
    def _applied_at(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("give an offset (e.g. Z or +01:00)")
        if value.year < 2000:
            raise ValueError("before the year 2000")
        if value > dt.datetime.now(dt.UTC) + FUTURE_SKEW:
            raise ValueError("is in the future")
        return value.astimezone(dt.UTC)

    @field_validator("answer")
    @classmethod
    def _answer(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        if _depth(value) > MAX_ANSWER_DEPTH:
            raise ValueError(f"nested deeper than {MAX_ANSWER_DEPTH} levels")
        if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_ANSWER_BYTES:
            raise ValueError(f"longer than {MAX_ANSWER_BYTES} bytes as JSON")
        if "\x00" in json.dumps(value, ensure_ascii=False):
            raise ValueError("holds a NUL character")
        return value


class TargetOut(BaseModel):
    kind: str = Field(description="connector4-dir, domibus or connector-ng")
    name: str = Field(description="the operator's name for the instance")


class AcknowledgementOut(BaseModel):
    id: uuid.UUID = Field(description="the acknowledgement's id")
    party: str = Field(description="the access point (routing party) name")
    package_digest: str = Field(description="the package applied")
    target: TargetOut = Field(description="where")
    applied_at: dt.datetime = Field(description="when, as the access point says")
    received_at: dt.datetime = Field(description="when the registry received it first")
    answer: str | dict[str, Any] = Field(description="the target's own answer")
    acknowledged_by: str = Field(description="who posted it (the token's subject)")


class AccessPointStatus(BaseModel):
    party: str = Field(description="the access point (routing party) that must act")
    owner: str = Field(description="its owner")
    target: TargetOut | None = Field(description="one of its targets; null: none known")
    state: Literal["confirmed", "stale", "unconfirmed"] = Field(
        description="confirmed: acknowledged the package as of effective_from or a later "
        "one; stale: acknowledged only packages without the change; unconfirmed: never "
        "acknowledged any package"
    )
    package_digest: str | None = Field(
        description="the digest of its package as of effective_from (GET "
        "/packages/{party}?at=effective_from); null when that package cannot be built"
    )
    acknowledged_digest: str | None = Field(description="what the target acknowledged")
    applied_at: str | None = Field(description="when the target applied that")


class CertificateWindow(BaseModel):
    use: str = Field(description="signing, encryption or tls")
    sha256: str = Field(description="SHA-256 fingerprint")
    subject: str = Field(description="subject distinguished name")
    accept_from: str = Field(description="from when access points accept it")
    use_from: str = Field(description="from when it is used")
    accept_until: str | None = Field(description="until when it is accepted")


class Rollout(BaseModel):
    id: str = Field(description="stable id of the change")
    party: str = Field(description="the routing party whose certificate changes")
    owner: str = Field(description="its owner")
    changes: list[Literal["accepted", "used", "no-longer-accepted"]] = Field(
        description="what happens to the certificate at effective_from"
    )
    certificate: CertificateWindow = Field(description="the certificate and its window")
    effective_from: str = Field(description="when (ISO 8601, UTC)")
    pending: bool = Field(description="effective_from is still ahead")
    confirmed: int = Field(description="access-point targets that confirmed")
    access_points_total: int = Field(description="access-point targets (or points) listed")
    access_points: list[AccessPointStatus] = Field(description="per access point and target")


class RolloutPage(BaseModel):
    items: list[Rollout] = Field(description="changes, soonest first")
    revision: int = Field(description="the registry revision they were read at")
    next: str | None = Field(description="cursor of the following page")


def _out(row: Acknowledgement) -> dict[str, Any]:
    return {
        "id": str(row.id), "party": row.party, "package_digest": row.package_digest,
        "target": {"kind": row.target_kind, "name": row.target_name},
        "applied_at": row.applied_at.isoformat(), "received_at": row.received_at.isoformat(),
        "answer": row.answer, "acknowledged_by": row.acknowledged_by,
    }  # fmt: skip


def _accepted_now(party: RoutingParty) -> list[str]:
    now = dt.datetime.now(dt.UTC)
    document = {"name": party.name, "certificates": party.certificates or []}
    return [c.sha256.replace(":", "").lower() for c in held(document) if c.accepted(now)]


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
        summary="An access point confirms it applied a configuration package",
        description=(
            "Posted by `cdb-service connector-sync` after it applied a package "
            "(`GET /packages/{party}`) to one of its targets. Allowed to the party's "
            "owner's administrators and to the access point itself: a client whose mutual-"
            "TLS certificate is one of the party's accepted certificates. Idempotent: the "
            "same digest and target again answers 200 with the first acknowledgement "
            "(201 when new). Each target keeps its last 20 acknowledgements, a party its 16 "
            "most recently heard targets."
        ),
        responses=problems(403, 404, 422)
        | answer(AcknowledgementOut, "already acknowledged: the first acknowledgement")
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
        async with sessions() as session:
            row = (await session.scalars(
                select(RoutingParty).where(RoutingParty.name == party))).first()  # fmt: skip
        if row is None:
            raise NOT_FOUND(f"no routing party named {party[:100]!r}")
        if not policy.may_acknowledge(principal, row.owner, _accepted_now(row)):
            raise policy.forbidden(
                f"only administrators of {row.owner} and the access point {row.name!r} itself "
                "(a client certificate that is one of its accepted certificates) acknowledge "
                "its packages"
            )
        posted = Posted(row.name, row.owner, data.package_digest, data.target.kind,
                        data.target.name, data.applied_at, data.answer,
                        who.subject[:200])  # fmt: skip
        made, new = await _record(sessions, posted, who)
        return Response(_out(made), status_code=201 if new else 200)


async def _record(sessions: async_sessionmaker[AsyncSession], posted: Posted, who: Who
                  ) -> tuple[Acknowledgement, bool]:  # fmt: skip
    """The acknowledgement and whether it is new: inserted, or (the same digest and target
    posted before, or concurrently) the one kept."""
    for _ in range(3):
        try:
            async with sessions() as session, session.begin():
                made = await acknowledgements.insert(session, posted)
                await audit.append(
                    session, who, "acknowledgement.create", "ok", posted.party,
                    {"package_digest": posted.package_digest,
                     "target": f"{posted.target_kind}:{posted.target_name}"},
                )  # fmt: skip
                return made, True
        except IntegrityError:
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
        summary="Pending and recent changes of trust material, and who has confirmed them",
        description=(
            "Every change of a routing party's certificate window (accepted, used, no longer "
            "accepted) from `recent_days` ago on, soonest first, with per access point whose "
            "package carries it (and per target it acknowledged from) whether it confirmed "
            "the package as of `effective_from` (or a later one), acknowledged only stale "
            "ones, or never acknowledged. Operators see every change; an owner's "
            "administrators the changes of its parties, and those its own access points "
            "must import. Keyset pages: `next` is the cursor of the following page."
        ),
        responses=problems(403, 422) | answer(RolloutPage),
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
