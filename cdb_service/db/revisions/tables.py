"""The history tables (head, revisions, entry versions), what a stored kind offers, and the rows
both writers build: the service's (`writer.py`) and a mirror's (`db/replica.py`).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import (
    Iterator,
    Mapping,
    Sequence,
)
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    insert,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import GUID, Base, DateTimeUTC, EntryColumns, JsonB
from cdb_service.db.documents import date_of

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
