"""The service's writer of one revision: entries created, updated and deleted, each change
appended as an immutable entry version with its projections.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import (
    Mapping,
)
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import (
    delete,
)
from sqlalchemy.ext.asyncio import AsyncSession

from cdb_service.db import personal
from cdb_service.db.base import utcnow
from cdb_service.db.documents import document_of, document_of_values
from cdb_service.db.revisions.tables import (
    EntryModel,
    EntryVersion,
    Operation,
    StoredKind,
    insert_rows,
    new_entry_id,
    version_values,
)

FLUSH_EVERY = 2000


@dataclass
class WrittenVersion:
    kind: str
    entry_id: uuid.UUID
    version: int
    operation: Operation
    document: dict[str, Any]  # as stored: private fields sealed (`db.personal`)


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
    # Private fields' values as rows of `personal_data`, the documents carrying refs.
    sealer: personal.Sealer = field(default_factory=personal.Sealer)

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
        entry_id = entry_id or new_entry_id()
        values = self._sealed(kind, entry_id, values)
        row = kind.model(
            id=entry_id,
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
        entry_id = entry_id or new_entry_id()
        values = self._sealed(kind, entry_id, values)
        row: dict[str, Any] = {"id": entry_id, "owner": owner, "version": 1,
                               "revision": self.revision, "created_at": self.now,
                               "updated_at": self.now}  # fmt: skip
        row |= {name: value for name, value in values.items() if name in table.c}
        self._created_model = kind.model
        self._created.append(row)
        self._project(kind, row["id"], values, replacing=False)
        document = document_of_values(kind, row)
        return self._version(kind, row["id"], 1, Operation.CREATE, document)

    def _sealed(self, kind: StoredKind, entry_id: uuid.UUID, values: Mapping[str, Any],
                kept: Mapping[str, Any] | None = None) -> Mapping[str, Any]:  # fmt: skip
        fields = getattr(kind, "private_fields", ())
        if not fields:
            return values
        return self.sealer.seal(kind.name, entry_id, fields, dict(values), self.now, kept)

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
        if sealed := self.sealer.take():
            await insert_rows(self.session, personal.PersonalData, sealed)
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
        fields = getattr(kind, "private_fields", ())
        if fields:
            kept = await personal.kept_refs(self.session, row, fields)
            values = self._sealed(kind, row.id, values, kept)
        # A row written from anything but the line its digest names no longer matches it.
        _assign(row, {SOURCE_DIGEST: None, **values})
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


def _chunks(items: list[Any], size: int = 500) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# The column of the digest of the batch line a row was written from (`EntryColumns`).
SOURCE_DIGEST = "source_sha256"


def _assign(row: EntryModel, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        setattr(row, name, value)


def _check_version(row: EntryModel, expected: int | None) -> None:
    if expected is not None and expected != row.version:
        raise StaleVersionError(expected, row.version)
