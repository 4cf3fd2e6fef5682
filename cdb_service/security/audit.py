"""Security audit trail: every write, denial and bulk read, hash-chained.

Each event stores the SHA-256 of its predecessor's hash and its own canonical
content, so editing or deleting any row breaks the chain from there on;
`cdb-service audit-verify` walks it and names the first broken link. The chain is
extended under the lock of the single `audit_head` row, so concurrent events
get consecutive sequence numbers and a consistent chain.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import BigInteger, Integer, String, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service import metrics
from cdb_service.db.base import Base, DateTimeUTC, JsonB, utcnow
from cdb_service.kernel import hash_chain
from cdb_service.kernel.text import carriable
from cdb_service.logging import get_logger

log = get_logger("cdb.audit")


@dataclass(frozen=True)
class Who:
    """Who acted: enough to answer "which system, with which certificate, did this"."""

    subject: str
    client_id: str | None = None
    cert_subject: str | None = None
    cert_thumbprint: str | None = None
    request_id: str | None = None
    source_ip: str | None = None
    # The X-Request-ID the client chose, if any: its own correlation, never our id.
    client_request_id: str | None = None
    # Acting as an operator (what only operators may set: see `EntryIndex.grant_errors`);
    # not a column of the audit trail, whose events name the subject.
    operator: bool = False


def as_who(who: Who | str) -> Who:
    return who if isinstance(who, Who) else Who(subject=who)


class AuditHead(Base):
    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))


class AuditEvent(Base):
    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[dt.datetime] = mapped_column(DateTimeUTC, index=True)
    subject: Mapped[str] = mapped_column(String(300))
    client_id: Mapped[str | None] = mapped_column(String(300))
    cert_subject: Mapped[str | None] = mapped_column(String(500))
    cert_thumbprint: Mapped[str | None] = mapped_column(String(100))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    client_request_id: Mapped[str | None] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(500))
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JsonB)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


_CONTENT = ("seq", "at", "subject", "client_id", "cert_subject", "cert_thumbprint", "source_ip",
            "request_id", "action", "target", "outcome", "detail")  # fmt: skip


def event_hash(prev_hash: str, content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hash_chain.link(prev_hash, canonical)


def _content(event: AuditEvent) -> dict[str, Any]:
    values = {name: getattr(event, name) for name in _CONTENT}
    values["at"] = event.at.astimezone(dt.UTC).isoformat()
    # Hashed only when present: events written before the column existed still verify.
    if event.client_request_id is not None:
        values["client_request_id"] = event.client_request_id
    return values


def _fit(column: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    value = carriable(value)
    length = getattr(AuditEvent.__table__.c[column].type, "length", None)
    if length and len(value) > length:
        return value[: length - 1] + "…"
    return value


async def append(
    session: AsyncSession,
    who: Who,
    action: str,
    outcome: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one event to the chain inside the caller's transaction."""
    seq, prev = (
        await session.execute(
            update(AuditHead)
            .where(AuditHead.id == 1)
            .values(seq=AuditHead.seq + 1)
            .returning(AuditHead.seq, AuditHead.hash)
        )
    ).one()
    # Client-supplied text is cut to its column rather than failing the event (and with
    # it the refusal it records).
    who_fields = {name: _fit(name, value) for name, value in asdict(who).items()
                  if name != "operator"}  # fmt: skip
    event = AuditEvent(
        seq=seq,
        at=utcnow(),
        action=_fit("action", action),
        target=_fit("target", target),
        outcome=_fit("outcome", outcome),
        detail=carriable(detail),
        prev_hash=prev,
        hash="",
        **who_fields,
    )
    event.hash = event_hash(prev, _content(event))
    session.add(event)
    await session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=event.hash))
    log.info("audit", **{k: v for k, v in _content(event).items() if k != "at"})
    metrics.AUDIT_EVENTS.labels(outcome).inc()
    return event


async def record(sessions: async_sessionmaker[AsyncSession], who: Who, action: str,
                 outcome: str, target: str | None = None,
                 detail: dict[str, Any] | None = None) -> None:  # fmt: skip
    """One event in a transaction of its own (denials, failed writes, bulk reads)."""
    async with sessions() as session, session.begin():
        await append(session, who, action, outcome, target, detail)


@dataclass
class ChainReport:
    checked: int
    broken_at: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


async def _events(session: AsyncSession, batch: int = 1000) -> AsyncIterator[AuditEvent]:
    last = 0
    while True:
        rows = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.seq > last)
                .order_by(AuditEvent.seq)
                .limit(batch)
            )
        ).all()
        if not rows:
            return
        for row in rows:
            yield row
        last = rows[-1].seq


async def verify_chain(sessions: async_sessionmaker[AsyncSession]) -> ChainReport:
    """Walk the chain from the start; the first event that does not fit is named."""
    checked, prev, expected_seq = 0, hash_chain.GENESIS, 1
    async with sessions() as session:
        async for event in _events(session):
            if event.seq != expected_seq:
                return ChainReport(checked, expected_seq, f"event {expected_seq} is missing")
            if event.prev_hash != prev:
                return ChainReport(checked, event.seq, "does not link to the event before it")
            if event_hash(prev, _content(event)) != event.hash:
                return ChainReport(
                    checked, event.seq, "its content was changed after it was written"
                )
            prev, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
        head = await session.scalar(select(AuditHead).where(AuditHead.id == 1))
        if head is not None and (head.seq != checked or head.hash != prev):
            return ChainReport(checked, checked + 1, "events after it were removed")
    return ChainReport(checked, None, None)
