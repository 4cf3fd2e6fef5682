"""Erasure of personal data (Annex I 5.5, 5.6; Regulation 2018/1725 art. 4(1)(e)): an
entry's named persons on request (`erase`), and those of entries deleted or replaced
longer ago than the retention (`erase_expired`, run by the reports timer).

What is erased is the rows of `personal_data` (`db.personal`): every version, the feed
and extracts carry only refs to them, so no revision, entry version, extract chain or
audit event changes, and each of them still verifies; where a ref is read it shows
`[erased]`. The entry's current search text loses the erased names too. Each erasure is
one audit event with its reason. Afterwards the database is compacted (`scrub`) so that
the erased bytes are not left in free pages: SQLite `VACUUM` (and a WAL checkpoint),
PostgreSQL `VACUUM FULL` of the tables that held them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cdb_service.db import revisions as rev
from cdb_service.db.personal import PersonalData, ref_of
from cdb_service.db.revisions import EntryVersion
from cdb_service.kernel.folding import search_text
from cdb_service.mistakes import UserMistake
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.security import audit
from cdb_service.security.audit import Who


@dataclass
class Erased:
    refs: int = 0
    entries: set[str] = field(default_factory=set)
    tables: set[str] = field(default_factory=set)

    def as_report(self) -> dict[str, Any]:
        return {"erased": self.refs, "entries": sorted(self.entries)}


def private_kind(name: str) -> KindSpec:
    """A kind whose entries hold personal data, or the operator's mistake in one line."""
    kind = KINDS.get(name)
    if kind is None:
        raise UserMistake(f"unknown kind {name!r}; kinds: {', '.join(KINDS)}")
    if not kind.private_fields:
        with_persons = [k.name for k in KINDS.values() if k.private_fields]
        raise UserMistake(f"{name} entries hold no personal data; those that do: "
                          f"{', '.join(with_persons)}")  # fmt: skip
    return kind


async def _forget(session: AsyncSession, kind: KindSpec, entry_id: uuid.UUID,
                  refs: set[str], done: Erased) -> None:  # fmt: skip
    """Delete these refs' rows; the entry's current search text without what they held."""
    if not refs:
        return
    await session.execute(delete(PersonalData).where(PersonalData.ref.in_(sorted(refs))))
    done.refs += len(refs)
    done.entries.add(f"{kind.name}/{entry_id}")
    done.tables.add(PersonalData.__tablename__)
    row = await session.get(kind.model, entry_id)
    if row is None:
        return
    values = {name: getattr(row, name) for name in kind.fields}
    gone = [n for n in kind.private_fields if ref_of(values.get(n)) in refs]
    if gone:
        values |= dict.fromkeys(gone)
        row.search_full = search_text(values)  # type: ignore[attr-defined]
        done.tables.add(kind.model.__tablename__)


async def erase(sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine,
                kind: KindSpec, entry_id: uuid.UUID, reason: str, who: Who) -> Erased:  # fmt: skip
    """The personal data of every version of one entry, erased and audited with `reason`."""
    reason = reason.strip()
    if not reason:
        raise UserMistake("--reason must say why (it goes into the audit trail)")
    done = Erased()
    async with sessions() as session, session.begin():
        found = select(EntryVersion.kind).where(EntryVersion.entry_id == entry_id).distinct()
        kinds = set(await session.scalars(found))
        if kind.name not in kinds:
            raise UserMistake(f"no {kind.name} entry {entry_id} (current or deleted)")
        refs = set(await session.scalars(
            select(PersonalData.ref).where(PersonalData.entry_id == entry_id)))  # fmt: skip
        await _forget(session, kind, entry_id, refs, done)
        await audit.append(session, who, f"erase {kind.name}", "ok", f"{kind.name}/{entry_id}",
                           {"reason": reason[:500], "erased": done.refs})  # fmt: skip
    await scrub(engine, done.tables)
    return done


async def _replaced_at(session: AsyncSession, entry_id: uuid.UUID) -> dict[str, dt.datetime | None]:
    """Each ref an entry's versions carried, with when it stopped being current (the
    time of the first later version that does not carry it; None: it still is)."""
    versions = list(reversed(await rev.history(session, entry_id)))  # oldest first
    until: dict[str, dt.datetime | None] = {}
    for number, version in enumerate(versions):
        carried = {r for r in (ref_of(v) for v in version.document.values()) if r}
        if version.operation == rev.Operation.DELETE:
            carried = set()
        for ref in carried:
            until[ref] = None
        later = versions[number + 1] if number + 1 < len(versions) else None
        for ref in carried:
            if later is None:
                continue
            still = {r for r in (ref_of(v) for v in later.document.values()) if r}
            if later.operation == rev.Operation.DELETE or ref not in still:
                until[ref] = later.recorded_at
    return until


async def erase_expired(sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine,
                        retention_days: int, who: Who,
                        now: dt.datetime | None = None) -> Erased:  # fmt: skip
    """The personal data of entries deleted or replaced more than `retention_days` ago."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=retention_days)
    done = Erased()
    async with sessions() as session, session.begin():
        held = (await session.execute(select(PersonalData.kind, PersonalData.entry_id,
                                             PersonalData.ref))).all()  # fmt: skip
        by_entry: dict[tuple[str, uuid.UUID], set[str]] = {}
        for kind_name, entry_id, ref in held:
            by_entry.setdefault((kind_name, entry_id), set()).add(ref)
        for (kind_name, entry_id), refs in sorted(by_entry.items(), key=str):
            until = await _replaced_at(session, entry_id)
            # A ref no version carries (none should) is no one's data: it goes too.
            expired = {r for r in refs if r not in until or (
                (at := until[r]) is not None and at < cutoff)}  # fmt: skip
            await _forget(session, KINDS[kind_name], entry_id, expired, done)
        if done.refs:
            await audit.append(session, who, "erase expired personal data", "ok",
                               f"{len(done.entries)} entries",
                               {"reason": f"retention of {retention_days} days",
                                "erased": done.refs})  # fmt: skip
    await scrub(engine, done.tables)
    return done


async def scrub(engine: AsyncEngine, tables: set[str]) -> None:
    """Leave no erased bytes in the database's free pages or its write-ahead log."""
    if not tables:
        return
    async with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            # Past SQLAlchemy, whose transaction events would wrap it in a BEGIN.
            raw: Any = (await connection.get_raw_connection()).driver_connection
            await raw.execute("VACUUM")
            await raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql(f"VACUUM FULL {', '.join(sorted(tables))}")
