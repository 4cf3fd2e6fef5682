"""Revisions and entry versions: the one history mechanism every kind shares.

Every write is one registry revision. The revision number is taken by
incrementing the single `registry_head` row as the first statement of the
writing transaction; that row lock is the registry-wide write lock (on SQLite
the database write lock plays the same part). Writers therefore commit one after
another in revision order, and a rolled-back writer gives its number back, so
revisions are strictly increasing and gap-free in commit order: a reader that
has seen R and asks for what came after R cannot miss a revision that commits
later with a smaller number.

Every change of an entry appends an immutable entry version holding the full
document; history, point-in-time reads and the change feed all read from it.

Two writers use this mechanism, and only they write `registry_head`, `revisions`
and `entry_versions`: `write_revision` here (the service: it allocates the next
number) and `db/replica.py` (a mirror: it records its source's revisions as they
are). Both take the lock with `lock_registry` and record versions with
`version_values`; a test (tests/db/test_writers.py) keeps other modules out.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service import metrics
from cdb_service.db.base import GUID, Base, DateTimeUTC, EntryColumns, JsonB, utcnow
from cdb_service.db.documents import date_of, document_of, document_of_values

FLUSH_EVERY = 2000
# Rows per INSERT statement when writing in bulk (projections, a replica's rows).
INSERT_CHUNK = 5000


class Operation(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


# Revisions are 32-bit signed integers in the database: a larger one is no revision at all.
MAX_REVISION = 2**31 - 1


class RegistryHead(Base):
    """The single row whose lock serialises writers and whose value is the head revision."""

    __tablename__ = "registry_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)


class Revision(Base):
    __tablename__ = "revisions"
    revision: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    committed_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    actor: Mapped[str] = mapped_column(String(200))
    change_count: Mapped[int] = mapped_column(Integer)
    summary: Mapped[str | None] = mapped_column(String(500))


class EntryVersion(Base):
    __tablename__ = "entry_versions"
    __table_args__ = (
        UniqueConstraint("entry_id", "version"),
        Index("ix_entry_versions_kind_entry", "kind", "entry_id", "version"),
    )
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    revision: Mapped[int] = mapped_column(
        Integer, ForeignKey("revisions.revision", ondelete="RESTRICT"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    entry_id: Mapped[uuid.UUID] = mapped_column(GUID)
    version: Mapped[int] = mapped_column(Integer)
    operation: Mapped[str] = mapped_column(String(10))
    owner: Mapped[str] = mapped_column(String(2))
    valid_from: Mapped[dt.date | None] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    actor: Mapped[str] = mapped_column(String(200))
    document: Mapped[dict[str, Any]] = mapped_column(JsonB)


class EntryModel(EntryColumns, Base):
    __abstract__ = True


class Projection(Protocol):
    """Rows derived from an entry's document, kept for indexed look-ups."""

    @property
    def model(self) -> type[Base]: ...
    @property
    def unique(self) -> bool: ...  # its rows name one entry only (e.g. an AS4 party id)

    def rows(self, entry_id: uuid.UUID, values: Mapping[str, Any]) -> list[dict[str, Any]]: ...


class StoredKind(Protocol):
    """What the history mechanism needs to know about a kind."""

    @property
    def name(self) -> str: ...
    @property
    def model(self) -> type[EntryModel]: ...
    @property
    def fields(self) -> tuple[str, ...]: ...
    @property
    def projections(self) -> tuple[Projection, ...]: ...


@dataclass
class WrittenVersion:
    kind: str
    entry_id: uuid.UUID
    version: int
    operation: Operation
    document: dict[str, Any]


class StaleVersionError(Exception):
    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"entry is at version {actual}, not {expected}")
        self.expected = expected
        self.actual = actual


@dataclass
class RevisionWriter:
    """Appends the changes of one revision inside one transaction.

    Rows and entry versions are added to the session and flushed together at the
    end (`finish`), and projection rows are written in bulk after them, so a
    batch of thousands of entries costs a handful of statements, not thousands.
    """

    session: AsyncSession
    actor: str
    revision: int
    now: dt.datetime = field(default_factory=utcnow)
    # What this revision changed, as (kind, entry id, version): documents are not kept
    # here, so that a batch of 50,000 entries does not hold 50,000 documents twice.
    written: list[tuple[str, uuid.UUID, int]] = field(default_factory=list)
    _fresh: list[Any] = field(default_factory=list)
    _projected: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)
    _reprojected: dict[Any, set[uuid.UUID]] = field(default_factory=dict)
    _early: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)  # see `_project`
    _pending_kind: str | None = None
    # Bulk mode (a batch of thousands): created rows and every entry version are kept as
    # plain column values and written with multi-row INSERTs, not as ORM objects through
    # the unit of work, whose per-object bookkeeping cost more than the rest of an import.
    # Only for callers that do not read a created row back before `write_pending`.
    bulk: bool = False
    _created: list[dict[str, Any]] = field(default_factory=list)
    _created_model: Any = None
    _versions: list[dict[str, Any]] = field(default_factory=list)
    # Set once everything is written and COMMIT is next: a fault from here on may have
    # struck after the database made the revision durable (see `db.faults`).
    committing: bool = False

    LOCK_ROW: ClassVar[int] = 1

    async def create(
        self, kind: StoredKind, owner: str, values: Mapping[str, Any], entry_id: uuid.UUID | None
    ) -> WrittenVersion:
        if self._pending_kind not in (None, kind.name):
            # Rows of the previous kind first: the ones referenced go in before their referrers.
            await self.write_pending()
        self._pending_kind = kind.name
        if self.bulk:
            written = self._create_bulk(kind, owner, values, entry_id)
            if len(self._versions) >= FLUSH_EVERY:
                await self.write_pending()
            return written
        row = kind.model(
            id=entry_id or new_entry_id(),
            owner=owner,
            version=1,
            revision=self.revision,
            created_at=self.now,
            updated_at=self.now,
        )
        _assign(row, values)
        self.session.add(row)
        self._project(kind, row.id, values, replacing=False)
        return await self._append(kind, row, Operation.CREATE)

    def _create_bulk(self, kind: StoredKind, owner: str, values: Mapping[str, Any],
                           entry_id: uuid.UUID | None) -> WrittenVersion:  # fmt: skip
        table: Any = kind.model.__table__
        row: dict[str, Any] = {"id": entry_id or new_entry_id(), "owner": owner, "version": 1,
                               "revision": self.revision, "created_at": self.now,
                               "updated_at": self.now}  # fmt: skip
        row |= {name: value for name, value in values.items() if name in table.c}
        self._created_model = kind.model
        self._created.append(row)
        self._project(kind, row["id"], values, replacing=False)
        document = document_of_values(kind, row)
        return self._version(kind, row["id"], 1, Operation.CREATE, document)

    def _values(self, kind: StoredKind, op: Operation, document: dict[str, Any]) -> dict[str, Any]:
        """A version row of this revision, as the bulk and the per-row writes store it."""
        return version_values(kind.name, document, revision=self.revision, operation=op,
                              recorded_at=self.now, actor=self.actor)  # fmt: skip

    def _version(self, kind: StoredKind, entry_id: uuid.UUID, version: int, op: Operation,
                 document: dict[str, Any]) -> WrittenVersion:  # fmt: skip
        self._versions.append(self._values(kind, op, document))
        self.written.append((kind.name, entry_id, version))
        return WrittenVersion(kind.name, entry_id, version, op, document)

    async def write_pending(self) -> None:
        """Everything added so far into the database (in bulk mode: created rows, the ORM's
        changes, then the entry versions), so that the next statements see it."""
        if self._created:
            await insert_rows(self.session, self._created_model, self._created)
            self._created = []
        await self._flush_and_forget()
        if self._versions:
            await insert_rows(self.session, EntryVersion, self._versions)
            self._versions = []
        for model, rows in self._early.items():
            await insert_rows(self.session, model, rows)
        self._early.clear()

    async def update(
        self,
        kind: StoredKind,
        row: EntryModel,
        values: Mapping[str, Any],
        expected_version: int | None = None,
    ) -> WrittenVersion:
        _check_version(row, expected_version)
        _assign(row, values)
        row.version += 1
        row.revision = self.revision
        row.updated_at = self.now
        self._project(kind, row.id, values, replacing=True)
        return await self._append(kind, row, Operation.UPDATE)

    async def delete(
        self, kind: StoredKind, row: EntryModel, expected_version: int | None = None
    ) -> WrittenVersion:
        """A tombstone version; the row goes, its projection rows with it (ON DELETE CASCADE)."""
        _check_version(row, expected_version)
        row.version += 1
        row.revision = self.revision
        row.updated_at = self.now
        written = await self._append(kind, row, Operation.DELETE)
        await self.session.delete(row)
        # Deletes go out at once and in the caller's order: referrers before their target
        # (after whatever was added before them).
        await self.write_pending()
        return written

    async def finish(self) -> None:
        """Write everything this revision added: rows and versions, then projections."""
        await self.write_pending()
        for model, entry_ids in self._reprojected.items():
            table: Any = model
            for chunk in _chunks(list(entry_ids)):
                await self.session.execute(delete(table).where(table.entry_id.in_(chunk)))
        for model, rows in self._projected.items():
            await insert_rows(self.session, model, rows)
        self._projected.clear()
        self._reprojected.clear()

    def _project(
        self, kind: StoredKind, entry_id: uuid.UUID, values: Mapping[str, Any], replacing: bool
    ) -> None:
        for projection in kind.projections:
            rows = projection.rows(entry_id, values)
            if replacing:
                self._reprojected.setdefault(projection.model, set()).add(entry_id)
            elif self.bulk and not projection.unique:
                # A new entry's rows go in with it (`write_pending`): a batch creating
                # 25,000 criteria does not hold all their geo keys until it finishes.
                # Rows that must be unique wait, so that one entry can take over what
                # another gives up anywhere in the same revision.
                self._early.setdefault(projection.model, []).extend(rows)
                continue
            self._projected.setdefault(projection.model, []).extend(rows)

    async def _append(self, kind: StoredKind, row: EntryModel, op: Operation) -> WrittenVersion:
        document = document_of(kind, row)
        if self.bulk:  # every version in one list, so that they keep the order they came in
            written = self._version(kind, row.id, row.version, op, document)
            if len(self._versions) >= FLUSH_EVERY:
                await self.write_pending()
            return written
        version = EntryVersion(**self._values(kind, op, document))
        self.session.add(version)
        self.written.append((kind.name, row.id, row.version))
        self._fresh.append(version)
        if len(self._fresh) >= FLUSH_EVERY:
            await self._flush_and_forget()
        return WrittenVersion(kind.name, row.id, row.version, op, document)

    async def _flush_and_forget(self) -> None:
        """Flush, then let go of the entry versions already written (they are never read back)."""
        await self.session.flush()
        for version in self._fresh:
            self.session.expunge(version)
        self._fresh.clear()


_RANDOM_IDS = 1024  # ids drawn from the system's random source at once
_spare_ids: list[bytes] = []
# A worker forked from a process holding spare ids must not hand out the same ones.
os.register_at_fork(after_in_child=_spare_ids.clear)


def new_entry_id() -> uuid.UUID:
    """A random (version 4) id, as `uuid.uuid4()` gives, with the random bytes of 1,024
    ids read at once: a read from the kernel per id was a tenth of a large import."""
    if not _spare_ids:
        pool = os.urandom(16 * _RANDOM_IDS)
        _spare_ids.extend(pool[i : i + 16] for i in range(0, len(pool), 16))
    return uuid.UUID(bytes=_spare_ids.pop(), version=4)


def projection_rows(
    kind: StoredKind, entry_id: uuid.UUID, values: Mapping[str, Any]
) -> Iterator[tuple[type[Base], list[dict[str, Any]]]]:
    """The rows each of the kind's projections derives from an entry's values (or document)."""
    for projection in kind.projections:
        yield projection.model, projection.rows(entry_id, values)


def version_values(
    kind: str,
    document: Mapping[str, Any],
    *,
    revision: int,
    operation: Operation | str,
    recorded_at: dt.datetime,
    actor: str,
) -> dict[str, Any]:
    """The columns of the entry version that records `document`.

    Id, version, owner and validity are read from the document itself, so that a
    version row and the document it holds cannot disagree, whoever writes it.
    """
    return {
        "revision": revision,
        "kind": kind,
        "entry_id": uuid.UUID(str(document["id"])),
        "version": int(document["version"]),
        "operation": Operation(operation).value,
        "owner": document["owner"],
        "valid_from": date_of(document.get("valid_from")),
        "valid_to": date_of(document.get("valid_to")),
        "recorded_at": recorded_at,
        "actor": actor,
        "document": dict(document),
    }


async def insert_rows(session: AsyncSession, model: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bulk INSERT in statements of `INSERT_CHUNK` rows (a few statements, not one per row).

    Rows that all name the same columns go to the table as one Core executemany: the
    ORM's bulk INSERT looks at every row (to group rows by their keys), which cost an
    import more than the database's own work. Rows of differing columns take that path.
    """
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = list(rows[start : start + INSERT_CHUNK])
        columns = chunk[0].keys()
        if all(row.keys() == columns for row in chunk):
            await session.execute(insert(model.__table__), chunk)
        else:
            await session.execute(insert(model), chunk)


async def lock_registry(session: AsyncSession, *, allocate: bool) -> int:
    """The first statement of every writing transaction: the registry-wide write lock.

    It updates the single `registry_head` row, whose row lock serialises writers
    (on SQLite the database write lock does). With `allocate` the head moves to
    the next revision and that number is returned (the service's writes). Without,
    the head is locked as it is and returned: a replica's next revision comes
    from its source, not from here.
    """
    new = RegistryHead.revision + 1 if allocate else RegistryHead.revision
    started = time.perf_counter()
    locked = (
        await session.execute(
            update(RegistryHead)
            .where(RegistryHead.id == RevisionWriter.LOCK_ROW)
            .values(revision=new)
            .returning(RegistryHead.revision)
        )
    ).scalar_one()
    # Writers queue on this row: the wait is what concurrent writes cost each other.
    metrics.LOCK_WAIT_SECONDS.observe(time.perf_counter() - started)
    return int(locked)


def _chunks(items: list[Any], size: int = 500) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _assign(row: EntryModel, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        setattr(row, name, value)


def _check_version(row: EntryModel, expected: int | None) -> None:
    if expected is not None and expected != row.version:
        raise StaleVersionError(expected, row.version)


@asynccontextmanager
async def write_revision(
    sessions: async_sessionmaker[AsyncSession],
    actor: str,
    summary: str | None = None,
    *,
    commit: bool = True,
    before_commit: Callable[[RevisionWriter], Awaitable[None]] | None = None,
) -> AsyncIterator[RevisionWriter]:
    """One revision: lock, allocate, let the caller write, then commit or give it back.

    Nothing written (every change turned out to be a no-op) means no revision: the
    transaction is rolled back and the number is reused by the next writer. With
    `commit=False` (a dry run) everything is done and then rolled back.
    """
    async with sessions() as session, session.begin():
        # First statement of the transaction: takes the registry-wide write lock.
        revision = await lock_registry(session, allocate=True)
        writer = RevisionWriter(session, actor, revision)
        # The revision row comes first: entry versions reference it.
        record = Revision(
            revision=revision,
            committed_at=writer.now,
            actor=actor,
            change_count=0,
            summary=summary,
        )
        session.add(record)
        await session.flush()
        yield writer
        if writer.written:
            await writer.finish()  # a dry run too: constraint violations must show
        if not writer.written or not commit:
            await session.rollback()
            return
        record.change_count = len(writer.written)
        if before_commit is not None:
            await before_commit(writer)
        await session.flush()
        writer.committing = True


# --- reading --------------------------------------------------------------------------------


@asynccontextmanager
async def read_snapshot(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A read-only transaction that sees one snapshot: the head and the rows agree."""
    async with sessions() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            await session.connection(
                execution_options={
                    "isolation_level": "REPEATABLE READ",
                    "postgresql_readonly": True,
                }
            )
        yield session


async def head_revision(session: AsyncSession) -> int:
    value = await session.scalar(
        select(RegistryHead.revision).where(RegistryHead.id == RevisionWriter.LOCK_ROW)
    )
    return int(value or 0)


def valid_on(model: Any, day: dt.date) -> Any:
    """Legal validity: both bounds inclusive, either may be open."""
    return and_(
        or_(model.valid_from.is_(None), model.valid_from <= day),
        or_(model.valid_to.is_(None), model.valid_to >= day),
    )


async def version_as_of(
    session: AsyncSession, entry_id: uuid.UUID, revision: int
) -> EntryVersion | None:
    """The entry's last version at or before `revision`; None if it did not exist then."""
    found = await session.scalar(
        select(EntryVersion)
        .where(EntryVersion.entry_id == entry_id, EntryVersion.revision <= revision)
        .order_by(EntryVersion.version.desc())
        .limit(1)
    )
    if found is None or found.operation == Operation.DELETE:
        return None
    return found


async def collection_as_of(
    session: AsyncSession,
    kind: str,
    revision: int,
    *,
    owner: str | None = None,
    valid_at: dt.date | None = None,
    after: uuid.UUID | None = None,
    limit: int | None = None,
) -> Sequence[EntryVersion]:
    """The live entries of a kind as they stood at `revision`, in id order."""
    latest = (
        select(EntryVersion.entry_id, func.max(EntryVersion.version).label("version"))
        .where(EntryVersion.kind == kind, EntryVersion.revision <= revision)
        .group_by(EntryVersion.entry_id)
        .subquery()
    )
    query = (
        select(EntryVersion)
        .join(
            latest,
            and_(
                EntryVersion.entry_id == latest.c.entry_id,
                EntryVersion.version == latest.c.version,
            ),
        )
        .where(EntryVersion.operation != Operation.DELETE.value)
        .order_by(EntryVersion.entry_id)
    )
    if owner is not None:
        query = query.where(EntryVersion.owner == owner)
    if valid_at is not None:
        query = query.where(valid_on(EntryVersion, valid_at))
    if after is not None:
        query = query.where(EntryVersion.entry_id > after)
    if limit is not None:
        query = query.limit(limit)
    return (await session.scalars(query)).all()


async def history(session: AsyncSession, entry_id: uuid.UUID) -> Sequence[EntryVersion]:
    """Every version of an entry, newest first (deleted entries included)."""
    return (
        await session.scalars(
            select(EntryVersion)
            .where(EntryVersion.entry_id == entry_id)
            .order_by(EntryVersion.version.desc())
        )
    ).all()


async def changes_after(
    session: AsyncSession, revision: int, limit: int, kinds: Iterable[str] | None = None
) -> Sequence[EntryVersion]:
    """Entry versions after `revision` in revision order; a revision is never split.

    The page holds at least `limit` versions' worth of whole revisions, so a batch
    larger than `limit` comes as one (larger) page rather than half of it.
    """
    base = select(EntryVersion).where(EntryVersion.revision > revision)
    if kinds is not None:
        base = base.where(EntryVersion.kind.in_(list(kinds)))
    page = base.subquery()
    boundary = await session.scalar(
        select(page.c.revision).order_by(page.c.revision, page.c.seq).offset(limit - 1).limit(1)
    )
    query = base.order_by(EntryVersion.revision, EntryVersion.seq)
    if boundary is not None:
        query = query.where(EntryVersion.revision <= boundary)
    return (await session.scalars(query)).all()


async def versions_from(
    session: AsyncSession,
    since: int,
    count: int,
    *,
    after_seq: int | None = None,
    kinds: Iterable[str] | None = None,
    owner: str | None = None,
) -> Sequence[EntryVersion]:
    """Up to `count` entry versions after revision `since`, in revision order.

    `after_seq` resumes inside revision `since + 1` after the version with that `seq`
    (the change feed's cursor within a revision too large for one page).
    """
    query = select(EntryVersion).where(EntryVersion.revision > since)
    if after_seq is not None:
        query = query.where(or_(EntryVersion.revision > since + 1, EntryVersion.seq > after_seq))
    if kinds is not None:
        query = query.where(EntryVersion.kind.in_(list(kinds)))
    if owner is not None:
        query = query.where(EntryVersion.owner == owner)
    query = query.order_by(EntryVersion.revision, EntryVersion.seq).limit(count)
    return (await session.scalars(query)).all()
