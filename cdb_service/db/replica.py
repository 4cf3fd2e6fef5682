"""The replica writer: a mirror's database takes its source's revisions as they are.

A mirror (see `cdb_service/mirror/`) holds what its source holds: the same entry
ids, versions, timestamps and revision numbers, and `registry_head.revision` is
the source revision it reflects. This is the only code besides `revisions/`
that writes `registry_head`, `revisions` and `entry_versions`, and it writes them
with `db/revisions/`'s pieces: the same lock (`lock_registry`, the head row as the
first statement of the transaction), the same entry-version columns
(`version_values`), the kinds' own projections and the chunked inserts. The
document codec (`documents.row_values`) turns the source's documents back into
rows.

Where it differs from `write_revision`, and why:
- The revision number is not allocated here: it is the source's, and it must be
  after the local head (the head is locked unmoved, then set to that number).
- Rows are written from documents exactly as the source has them (ids, versions,
  created/updated instants): a replica records, it does not decide.
- An extract load replaces everything: the registry tables, entry versions and
  revisions are emptied and refilled in ONE transaction, fed entry by entry and
  written in chunks, so that memory stays flat however large the registry is, and
  anything that goes wrong before the end rolls the whole load back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, text, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import revisions as rev
from cdb_service.db.base import GUID, utcnow
from cdb_service.db.documents import row_values, table_of
from cdb_service.db.revisions import EntryVersion, RegistryHead, Revision, StoredKind

# A chunk of an extract is written when it holds this many rows (entries and their
# projection rows together) or this many bytes of documents: a criterion can carry
# thousands of geo keys, so counting entries alone would not bound memory.
CHUNK_ROWS = 5000
CHUNK_BYTES = 1024 * 1024

EXTRACT_SUMMARY = "mirrored from an extract"
FEED_SUMMARY = "mirrored from the change feed"


class Diverged(Exception):
    """A change does not fit the replica's rows: the copy is not the source's any more."""


def _self_references(table: Table) -> tuple[str, ...]:
    """Columns of `table` that refer to `table` itself (an authority's parent)."""
    return tuple(
        column.name
        for column in table.columns
        for fk in column.foreign_keys
        if fk.column.table is table
    )


@dataclass
class ExtractLoad:
    """An extract being loaded: fed entries in the extract's order (kinds in apply order).

    Rows are buffered per chunk and written when the chunk is full or the kind
    changes; nothing of an entry is kept once its chunk is written.
    """

    session: AsyncSession
    actor: str
    revision: int
    kinds: Mapping[str, StoredKind]
    # PostgreSQL checks foreign keys per statement: see `add`.
    postgres: bool
    entries: int = 0
    _kind: StoredKind | None = None
    _rows: list[dict[str, Any]] = field(default_factory=list)
    _projected: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)
    _versions: list[dict[str, Any]] = field(default_factory=list)
    _stamps: dict[int, dt.datetime] = field(default_factory=dict)
    _pending_rows: int = 0
    _pending_bytes: int = 0

    async def add(self, kind_name: str, document: Mapping[str, Any], size: int = 0) -> None:
        """One entry of the extract (its current document); `size`: its line's length."""
        kind = self.kinds.get(kind_name)
        if kind is None:
            raise Diverged(f"unknown kind {kind_name!r}")
        if self._kind is not None and kind is not self._kind:
            await self._flush()  # referenced kinds are written before their referrers
        self._kind = kind
        values = row_values(kind, document)
        if self.postgres:
            # PostgreSQL checks a foreign key at each statement (ours are not DEFERRABLE),
            # and an extract lists entries by id, so a parent may come after its child.
            # The self-reference goes in empty and `_restore_self_references` sets it from
            # the documents once every row of the kind is in (see `load_extract`).
            for name in _self_references(table_of(kind)):
                values[name] = None
        self._rows.append(values)
        for model, rows in rev.projection_rows(kind, values["id"], document):
            self._projected.setdefault(model, []).extend(rows)
            self._pending_rows += len(rows)
        stamp = values["updated_at"]
        self._versions.append(
            rev.version_values(
                kind.name,
                document,
                revision=int(document["revision"]),
                operation=rev.Operation.UPDATE if values["version"] > 1 else rev.Operation.CREATE,
                recorded_at=stamp,
                actor=self.actor,
            )
        )
        previous = self._stamps.get(values["revision"])
        self._stamps[values["revision"]] = stamp if previous is None else max(previous, stamp)
        self.entries += 1
        self._pending_rows += 1
        self._pending_bytes += size
        if self._pending_rows >= CHUNK_ROWS or self._pending_bytes >= CHUNK_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if self._kind is None or not self._rows:
            return
        await self._add_revisions()
        await rev.insert_rows(self.session, self._kind.model, self._rows)
        for model, rows in self._projected.items():
            await rev.insert_rows(self.session, model, rows)
        await rev.insert_rows(self.session, EntryVersion, self._versions)
        self._rows, self._projected, self._versions, self._stamps = [], {}, [], {}
        self._pending_rows = self._pending_bytes = 0

    async def _add_revisions(self) -> None:
        """Revision rows for this chunk's versions (their references), the missing ones.

        Only this chunk's revision numbers are held; counts and commit instants are
        computed from the versions in the database at the end (`_settle_revisions`).
        """
        wanted = sorted(self._stamps)
        present: set[int] = set()
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            found = await self.session.scalars(
                select(Revision.revision).where(Revision.revision.in_(part))
            )
            present.update(found)
        missing = [
            {
                "revision": number,
                "committed_at": self._stamps[number],
                "actor": self.actor,
                "change_count": 0,
                "summary": EXTRACT_SUMMARY,
            }
            for number in wanted
            if number not in present
        ]
        await rev.insert_rows(self.session, Revision, missing)

    async def finish(self) -> None:
        await self._flush()
        if self.postgres:
            for kind in self.kinds.values():
                await _restore_self_references(self.session, kind)
        await _settle_revisions(self.session)
        await _set_head(self.session, self.revision)


async def _restore_self_references(session: AsyncSession, kind: StoredKind) -> None:
    """Set the self-references left empty by `ExtractLoad.add` from the versions' documents.

    One statement per column, in the same transaction, after every row of the kind
    exists: the foreign key is satisfied when it is checked, and no list of
    (entry, parent) pairs is held in memory.
    """
    table = table_of(kind)
    versions = cast(Table, EntryVersion.__table__)
    for name in _self_references(table):
        given = versions.c.document[name].as_string()
        await session.execute(
            update(table)
            .values({name: sql_cast(given, GUID)})
            .where(versions.c.entry_id == table.c.id, versions.c.kind == kind.name)
            .where(given.is_not(None))
        )


async def _settle_revisions(session: AsyncSession) -> None:
    """Each revision's change count and commit instant, from the versions loaded."""
    versions = cast(Table, EntryVersion.__table__)
    revisions = cast(Table, Revision.__table__)
    of_this = versions.c.revision == revisions.c.revision
    await session.execute(
        update(revisions).values(
            change_count=select(func.count()).where(of_this).scalar_subquery(),
            committed_at=select(func.max(versions.c.recorded_at)).where(of_this).scalar_subquery(),
        )
    )


async def _set_head(session: AsyncSession, revision: int) -> None:
    await session.execute(
        update(RegistryHead)
        .where(RegistryHead.id == rev.RevisionWriter.LOCK_ROW)
        .values(revision=revision)
    )


async def _begin(session: AsyncSession) -> int:
    """The lock (as `write_revision` takes it), then SQLite's foreign keys to commit time."""
    head = await rev.lock_registry(session, allocate=False)
    if session.get_bind().dialect.name == "sqlite":
        # Within one revision (or one extract) rows may refer to each other in any
        # order; SQLite checks deferred keys at commit, so the order does not matter.
        # (PostgreSQL: see `ExtractLoad.add`.)
        await session.execute(text("PRAGMA defer_foreign_keys = ON"))
    return head


async def _clear(session: AsyncSession, kinds: Sequence[StoredKind]) -> None:
    """Every registry table, referrers before their targets; reference data stays."""
    for kind in reversed(kinds):
        for projection in kind.projections:
            await session.execute(delete(projection.model))
        await session.execute(delete(kind.model))
    await session.execute(delete(EntryVersion))
    await session.execute(delete(Revision))


@asynccontextmanager
async def load_extract(
    sessions: async_sessionmaker[AsyncSession],
    actor: str,
    revision: int,
    kinds: Sequence[StoredKind],
) -> AsyncIterator[ExtractLoad]:
    """Replace the whole registry by an extract at `revision`, in one transaction.

    `kinds` in apply order (targets before their referrers). The caller feeds every
    entry to the load and checks whatever must hold before the end (the extract's
    trailer): raising inside the block rolls everything back, so a bad extract
    changes nothing. The head is set to `revision` at the end of the block.
    """
    async with sessions() as session, session.begin():
        await _begin(session)
        await _clear(session, kinds)
        postgres = session.get_bind().dialect.name == "postgresql"
        load = ExtractLoad(session, actor, revision, {k.name: k for k in kinds}, postgres)
        yield load
        await load.finish()


async def apply_revision(
    sessions: async_sessionmaker[AsyncSession],
    actor: str,
    head: int,
    revision: int,
    changes: Iterable[Mapping[str, Any]],
    kinds: Mapping[str, StoredKind],
) -> None:
    """One source revision (its feed changes) in one transaction, the head moved to it.

    The changes must fit: the replica is at `head`, `revision` comes after it, and
    every change follows the version the replica has of its entry (none for a
    create). Otherwise `Diverged`, and nothing is written.
    """
    if revision <= head:
        raise Diverged(f"revision {revision} is not after the mirror's head {head}")
    changes = list(changes)
    async with sessions() as session, session.begin():
        locked = await _begin(session)
        if locked != head:
            raise Diverged(f"the mirror's head is no longer {head} (another writer?)")
        committed = max(_instant(c.get("recorded_at")) for c in changes)
        await rev.insert_rows(session, Revision, [{
            "revision": revision, "committed_at": committed, "actor": actor,
            "change_count": len(changes), "summary": FEED_SUMMARY,
        }])  # fmt: skip
        versions = []
        for change in changes:
            await _apply_change(session, change, kinds)
            versions.append(
                rev.version_values(
                    change["kind"],
                    change["document"],
                    revision=revision,
                    operation=change["operation"],
                    recorded_at=_instant(change.get("recorded_at")),
                    actor=actor,
                )
            )
        await rev.insert_rows(session, EntryVersion, versions)
        await _set_head(session, revision)


async def _apply_change(
    session: AsyncSession, change: Mapping[str, Any], kinds: Mapping[str, StoredKind]
) -> None:
    kind = kinds.get(change["kind"])
    if kind is None:
        raise Diverged(f"unknown kind {change['kind']!r}")
    table = table_of(kind)
    entry_id = uuid.UUID(str(change["id"]))
    version = int(change["version"])
    document = change["document"]
    if int(document["version"]) != version or str(document["id"]) != str(entry_id):
        raise Diverged(f"{kind.name} {entry_id}: the change and its document disagree")
    current = await session.scalar(select(table.c.version).where(table.c.id == entry_id))
    expected = None if change["operation"] == rev.Operation.CREATE else version - 1
    if current != expected:
        raise Diverged(
            f"{kind.name} {entry_id}: {change['operation']} to version {version}, "
            f"but the mirror has version {current}"
        )
    for projection in kind.projections:
        projected = cast(Table, projection.model.__table__)
        await session.execute(delete(projected).where(projected.c.entry_id == entry_id))
    if change["operation"] == rev.Operation.DELETE:
        await session.execute(delete(table).where(table.c.id == entry_id))
        return
    values = row_values(kind, document)
    if current is None:
        await session.execute(insert(table), [values])
    else:
        moved = await session.execute(update(table).where(table.c.id == entry_id).values(values))
        if cast(CursorResult[Any], moved).rowcount != 1:
            raise Diverged(f"{kind.name} {entry_id}: the row went away")
    for model, rows in rev.projection_rows(kind, entry_id, document):
        await rev.insert_rows(session, model, rows)


def _instant(value: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(value) if value else utcnow()
