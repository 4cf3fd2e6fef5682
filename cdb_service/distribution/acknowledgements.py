"""Acknowledgements: which configuration package an access point has applied, and where.

`cdb-service connector-sync` (issue 28 item 3), after it applied a package to one of its
targets (a connector 4.x directory, a Domibus gateway, a connector-ng), posts the
package's digest (`packages.package_digest`, the package's ETag), the target, when it
applied it and the target's own answer. The rollout status (`rollouts.py`) compares these
digests with the package each change of trust material is carried by.

Not a registry kind, on purpose: an acknowledgement is a statement by an access point
about itself, not registry content; it is neither versioned nor served in extracts. Who
posted each one is in the audit trail.

Two statements, one row per digest and target: *applied* (the package is in use there)
and *scheduled* (`scheduled_for` set: the agent has fetched the next package ahead,
verified it and holds it, to apply at that moment, its `effective_from`). A scheduled
row lets the rollout of a certificate switching into use be confirmed before the switch;
the applied acknowledgement of the same digest and target later upgrades it in place
(`upgrade`), and a scheduled one after an applied one changes nothing: a row only ever
moves from scheduled to applied.

Bounded whatever a client sends: the same digest and target twice is one row; each
target keeps its last `KEEP_PER_TARGET` acknowledgements; a party keeps its
`MAX_TARGETS` most recently heard targets (a new one evicts the one heard from least
recently, so a renamed target does not lock the party out).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import GUID, Base, DateTimeUTC, JsonB, utcnow

KEEP_PER_TARGET = 20
MAX_TARGETS = 16
# The kinds of target the agent knows (issue 28 item 3), in connector operators' words.
TARGET_KINDS = ("connector4-dir", "domibus", "connector-ng")


class Acknowledgement(Base):
    __tablename__ = "acknowledgements"
    __table_args__ = (
        UniqueConstraint(
            "party",
            "target_kind",
            "target_name",
            "package_digest",
            name="uq_acknowledgements_target_digest",
        ),
        Index("ix_acknowledgements_party_received", "party", "received_at"),
    )
    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    party: Mapped[str] = mapped_column(String(100))  # the routing party's (Domibus) name
    owner: Mapped[str] = mapped_column(String(2))  # the party's owner when acknowledged
    package_digest: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str] = mapped_column(String(20))
    target_name: Mapped[str] = mapped_column(String(100))
    # Applied: when it was applied. Scheduled: when the package was verified and held.
    applied_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    # When the registry received the statement the row holds now: the first one, or the
    # applied one that upgraded a scheduled one (so it also orders what is kept).
    received_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    # Null: applied. Set: held, to be applied at that moment (the package's effective_from).
    scheduled_for: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC)
    answer: Mapped[Any] = mapped_column(JsonB)
    acknowledged_by: Mapped[str] = mapped_column(String(200))  # who (token subject)


@dataclass(frozen=True)
class Posted:
    party: str
    owner: str
    package_digest: str
    target_kind: str
    target_name: str
    applied_at: dt.datetime
    answer: Any
    acknowledged_by: str
    scheduled_for: dt.datetime | None = None


async def existing(session: AsyncSession, posted: Posted) -> Acknowledgement | None:
    """The acknowledgement of the same digest and target, if one is kept."""
    found = await session.scalars(
        select(Acknowledgement).where(
            Acknowledgement.party == posted.party,
            Acknowledgement.target_kind == posted.target_kind,
            Acknowledgement.target_name == posted.target_name,
            Acknowledgement.package_digest == posted.package_digest,
        )
    )
    return found.first()


async def insert(session: AsyncSession, posted: Posted) -> Acknowledgement:
    """A new row for `posted`, inside the caller's transaction, its first statement a
    write (so that SQLite queues a concurrent twin instead of failing it): a twin already
    kept raises `IntegrityError` and the caller answers with `existing`."""
    row = Acknowledgement(
        id=uuid.uuid4(), party=posted.party, owner=posted.owner,
        package_digest=posted.package_digest, target_kind=posted.target_kind,
        target_name=posted.target_name, applied_at=posted.applied_at, received_at=utcnow(),
        answer=posted.answer, acknowledged_by=posted.acknowledged_by,
        scheduled_for=posted.scheduled_for,
    )  # fmt: skip
    session.add(row)
    await session.flush()
    await _bound(session, posted)
    return row


async def upgrade(session: AsyncSession, posted: Posted) -> bool:
    """The kept scheduled row of `posted`'s digest and target becomes the applied one
    `posted` says (its applied_at, answer and poster, received now), inside the caller's
    transaction; False when there is none (applied already, by this post's concurrent
    twin too: the condition is in the UPDATE itself, so exactly one of them upgrades)."""
    done = await session.execute(
        update(Acknowledgement)
        .where(
            Acknowledgement.party == posted.party,
            Acknowledgement.target_kind == posted.target_kind,
            Acknowledgement.target_name == posted.target_name,
            Acknowledgement.package_digest == posted.package_digest,
            Acknowledgement.scheduled_for.is_not(None),
        )
        .values(
            scheduled_for=None,
            applied_at=posted.applied_at,
            answer=posted.answer,
            acknowledged_by=posted.acknowledged_by,
            received_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(done, "rowcount", 0))


async def _bound(session: AsyncSession, posted: Posted) -> None:
    """Keep the last KEEP_PER_TARGET of this target, and MAX_TARGETS targets per party."""
    same_target = (
        Acknowledgement.party == posted.party,
        Acknowledgement.target_kind == posted.target_kind,
        Acknowledgement.target_name == posted.target_name,
    )
    kept = (
        select(Acknowledgement.id)
        .where(*same_target)
        .order_by(Acknowledgement.received_at.desc(), Acknowledgement.id.desc())
        .limit(KEEP_PER_TARGET)
    )
    kept_ids = list(await session.scalars(kept))
    await session.execute(
        delete(Acknowledgement).where(*same_target, Acknowledgement.id.not_in(kept_ids))
    )
    targets = (
        select(
            Acknowledgement.target_kind,
            Acknowledgement.target_name,
            func.max(Acknowledgement.received_at).label("last"),
        )
        .where(Acknowledgement.party == posted.party)
        .group_by(Acknowledgement.target_kind, Acknowledgement.target_name)
        .order_by(func.max(Acknowledgement.received_at).desc())
    )
    for kind, name, _ in list(await session.execute(targets))[MAX_TARGETS:]:
        await session.execute(
            delete(Acknowledgement).where(
                Acknowledgement.party == posted.party,
                Acknowledgement.target_kind == kind,
                Acknowledgement.target_name == name,
            )
        )


async def of_parties(
    session: AsyncSession, parties: Sequence[str]
) -> dict[str, list[Acknowledgement]]:
    """Every kept acknowledgement of these parties, newest first per party (bounded:
    MAX_TARGETS × KEEP_PER_TARGET per party)."""
    out: dict[str, list[Acknowledgement]] = {p: [] for p in parties}
    if not parties:
        return out
    rows = await session.scalars(
        select(Acknowledgement)
        .where(Acknowledgement.party.in_(list(parties)))
        .order_by(Acknowledgement.received_at.desc(), Acknowledgement.id.desc())
    )
    for row in rows:
        out[row.party].append(row)
    return out


async def page_of(
    session: AsyncSession, party: str, limit: int, after: tuple[dt.datetime, uuid.UUID] | None
) -> list[Acknowledgement]:
    """Up to `limit` kept acknowledgements of `party`, newest (received) first, after
    `after` (the received_at and id of the last one of the previous page)."""
    query = select(Acknowledgement).where(Acknowledgement.party == party)
    if after is not None:
        at, last = after
        query = query.where(
            (Acknowledgement.received_at < at)
            | ((Acknowledgement.received_at == at) & (Acknowledgement.id < last))
        )
    order = (Acknowledgement.received_at.desc(), Acknowledgement.id.desc())
    return list(await session.scalars(query.order_by(*order).limit(limit)))
