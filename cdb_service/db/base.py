"""Declarative base, portable column types and the columns every registry entry has."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonB = JSON().with_variant(JSONB(), "postgresql")
GUID = Uuid(as_uuid=True)


class DateTimeUTC(TypeDecorator[dt.datetime]):
    """An instant: stored in UTC, always read back time-zone aware (SQLite included)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise TypeError("naive datetime: an instant needs a time zone")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class EntryColumns:
    """Columns shared by every kind of registry entry (the current state of it)."""

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    owner: Mapped[str] = mapped_column(String(2), index=True)
    # A national register's own identifier: the natural key of kinds without a code.
    ref: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer, index=True)
    valid_from: Mapped[dt.date | None] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    # The entry's text folded for search (`kernel.folding.search_text`): case and accents
    # folded in Python, so that `q` matches the same on PostgreSQL and SQLite. Not part
    # of the document; derived again on every write. It leaves out the kind's private
    # fields (named persons), so that a caller who may not read them cannot find an entry
    # by them either; `search_full` holds the whole text, searched only for callers who
    # may read them (NULL for kinds without private fields).
    search: Mapped[str | None] = mapped_column(Text)
    search_full: Mapped[str | None] = mapped_column(Text)
    # The SHA-256 of the validated batch line this row was last written from (hex), so a
    # re-import finds an unchanged entry by one comparison; None after any other write
    # (`RevisionWriter` clears it). Not part of the document.
    source_sha256: Mapped[str | None] = mapped_column(String(64))


COMMON_FIELDS = (
    "id",
    "owner",
    "ref",
    "version",
    "revision",
    "valid_from",
    "valid_to",
    "created_at",
    "updated_at",
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
