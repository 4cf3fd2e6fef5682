"""Consultations of personal data (Annex I 5.1(d) and its footnote 1: Regulation (EU)
2018/1725, article 88): who read which entry's named person, and when.

`Viewer` is the one way a read shows a caller a kind's private fields: `visible`
redacts them for a caller the policy does not let see them (a reader), and for one it
does (an administrator, an operator) notes the consultation. Every read path holds a
`Viewer` instead of a bare principal (`policy.redact` no longer asks who reads), so a
path cannot show a named person without recording that it did.

Bounded: `ConsultationLog.note` only counts in memory; a task writes the counts every
few seconds, one row per (window, who, action, kind, entry, version) with the number of
reads in it (`count`), the first and last time and the first request's id. A page of a
thousand named persons costs the request a thousand dictionary updates, never a
database write; reading it again in the same window adds to the counts, not rows. Rows
whose last read is older than the retention (`CDB_CONSULTATION_RETENTION_DAYS`) are
deleted by the writer itself, once per window.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Integer, String, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import GUID, Base, DateTimeUTC, utcnow
from cdb_service.kernel.background import Background
from cdb_service.kernel.text import carriable
from cdb_service.logging import get_logger
from cdb_service.security import policy
from cdb_service.security.audit import Who
from cdb_service.security.policy import Principal

log = get_logger("cdb.consultations")

WINDOW = dt.timedelta(hours=1)  # reads of one entry by one caller counted in one row
FLUSH_S = 5.0  # how often the counts are written
MAX_PENDING = 100_000  # counts held while the database does not answer; further ones dropped


class Consultation(Base):
    __tablename__ = "consultations"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # The digest of what a row counts (window, who, action, entry): the upsert's key.
    key: Mapped[str] = mapped_column(String(64), unique=True)
    window_start: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    subject: Mapped[str] = mapped_column(String(300), index=True)
    client_id: Mapped[str | None] = mapped_column(String(300))
    cert_thumbprint: Mapped[str | None] = mapped_column(String(100))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(40))
    entry_id: Mapped[uuid.UUID] = mapped_column(GUID, index=True)
    version: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    last_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC, index=True)
    request_id: Mapped[str | None] = mapped_column(String(128))


def _fit(value: str | None, length: int) -> str | None:
    if value is None:
        return None
    value = carriable(value)
    return value if len(value) <= length else value[: length - 1] + "…"


@dataclass
class _Tally:
    values: dict[str, Any]
    count: int = 0
    last_at: dt.datetime = field(default_factory=utcnow)


class ConsultationLog:
    """Counts consultations in memory and writes them in batches (see the module)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], retention_days: int,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:  # fmt: skip
        self.sessions = sessions
        self.retention = dt.timedelta(days=retention_days)
        self.clock = clock
        self._pending: dict[str, _Tally] = {}
        self._dropped = 0
        self._purged_at: dt.datetime | None = None
        self._loop = Background("consultations")

    def note(self, who: Who, action: str, kind: str, entry_id: Any, version: int) -> None:
        """One read of one entry's named persons: counted, written with the next batch."""
        now = self.clock()
        start = dt.datetime.fromtimestamp(
            now.timestamp() // WINDOW.total_seconds() * WINDOW.total_seconds(), dt.UTC
        )
        values = {
            "window_start": start,
            "subject": _fit(who.subject, 300) or "",
            "client_id": _fit(who.client_id, 300),
            "cert_thumbprint": _fit(who.cert_thumbprint, 100),
            "source_ip": _fit(who.source_ip, 64),
            "action": action,
            "kind": kind,
            "entry_id": uuid.UUID(str(entry_id)),
            "version": int(version),
        }
        key = hashlib.sha256(
            "\x1f".join(str(values[name]) for name in sorted(values)).encode()
        ).hexdigest()
        tally = self._pending.get(key)
        if tally is None:
            if len(self._pending) >= MAX_PENDING:
                self._dropped += 1
                return
            tally = self._pending[key] = _Tally(
                values | {"key": key, "first_at": now, "request_id": _fit(who.request_id, 128)}
            )
        tally.count += 1
        tally.last_at = now

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self, sessions: async_sessionmaker[AsyncSession] | None = None) -> int:
        """Write the counts held (one statement per batch); the rows written. `sessions`:
        another event loop's, for a caller outside the service's (a test)."""
        sessions = sessions or self.sessions
        taken, self._pending = self._pending, {}
        if self._dropped:
            log.warning("consultations not recorded: too many held", dropped=self._dropped)
            self._dropped = 0
        now = self.clock()
        try:
            if taken:
                await self._upsert(sessions, list(taken.values()))
            if self._purged_at is None or now - self._purged_at >= WINDOW:
                await self.purge(now, sessions)
                self._purged_at = now
        except Exception:
            self._put_back(taken)
            raise
        return len(taken)

    async def _upsert(self, sessions: async_sessionmaker[AsyncSession], tallies: list[_Tally]
                      ) -> None:  # fmt: skip
        rows = [t.values | {"count": t.count, "last_at": t.last_at} for t in tallies]
        async with sessions() as session, session.begin():
            dialect = session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            statement = insert(Consultation)
            table = Consultation.__table__
            statement = statement.on_conflict_do_update(
                index_elements=["key"],
                set_={"count": table.c.count + statement.excluded.count,
                      "last_at": statement.excluded.last_at},
            )  # fmt: skip
            await session.execute(statement, rows)

    def _put_back(self, taken: dict[str, _Tally]) -> None:
        """A batch that was not written waits for the next round, added to newer counts."""
        for key, tally in taken.items():
            newer = self._pending.get(key)
            if newer is not None:
                newer.count += tally.count
            elif len(self._pending) < MAX_PENDING:
                self._pending[key] = tally
            else:
                self._dropped += tally.count

    async def purge(self, now: dt.datetime | None = None,
                    sessions: async_sessionmaker[AsyncSession] | None = None) -> int:  # fmt: skip
        """Delete the consultations last read before the retention; the rows deleted."""
        before = (now or self.clock()) - self.retention
        async with (sessions or self.sessions)() as session, session.begin():
            result: Any = await session.execute(
                delete(Consultation).where(Consultation.last_at < before)
            )
        return int(result.rowcount or 0)

    def start(self) -> None:
        async def every_few_seconds() -> None:
            while True:
                await asyncio.sleep(FLUSH_S)
                try:
                    await self.flush()
                except Exception as error:  # the next round tries again
                    log.warning("consultations not written yet", error=repr(error))

        self._loop.start(every_few_seconds)

    async def stop(self) -> None:
        await self._loop.stop()
        try:
            await self.flush()
        except Exception as error:
            log.warning("consultations lost at stop", error=repr(error), held=self.pending)


@dataclass(frozen=True)
class Viewer:
    """Who reads, as every read path shows documents to them: redacted for a caller who
    may not see named persons, recorded as a consultation for one who may."""

    principal: Principal
    who: Who
    log: ConsultationLog

    @property
    def sees_named_persons(self) -> bool:
        return policy.sees_named_persons(self.principal)

    def visible(self, kind: str, private_fields: Iterable[str], document: dict[str, Any],
                action: str, version: int | None = None) -> dict[str, Any]:  # fmt: skip
        """`document` as this caller may see it. `action` names the read (entry, page,
        history, diff, export, extract, changes, console); `version` when the document
        does not carry its own."""
        hidden = tuple(private_fields)
        if not hidden:
            return document
        if not self.sees_named_persons:
            return policy.redact(document, hidden)
        if any(document.get(name) not in (None, "", [], {}) for name in hidden):
            number = document.get("version") if version is None else version
            self.log.note(self.who, action, kind, document["id"], int(number or 0))
        return document
