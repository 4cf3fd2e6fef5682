"""The document codec: an entry's row as the JSON document its versions store, and back.

`document_of` is what every entry version holds and what the API serves; `row_values`
reads such a document back into column values. The server writes with the first; a
replica (the mirror) writes rows from the source's documents with the second. Both
directions live here so that they cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any, Protocol, cast

from sqlalchemy import Date, DateTime, Table, Uuid

from cdb_service.db.base import COMMON_FIELDS, DateTimeUTC


class Documented(Protocol):
    """What the codec needs to know about a kind: its table and its own fields."""

    @property
    def model(self) -> Any: ...
    @property
    def fields(self) -> tuple[str, ...]: ...


# What a document holds as it is: answered by one look-up, not three isinstance checks
# (a batch converts every field of every entry it writes).
_AS_IS = frozenset({str, int, float, bool, type(None), list, dict})


def to_json_value(value: Any) -> Any:
    if type(value) in _AS_IS:
        return value
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def document_of(kind: Documented, row: Any) -> dict[str, Any]:
    """The full document of an entry as stored in its entry versions and served.

    `row` is an ORM object or a Core row: both read by attribute name.
    """
    names = (*COMMON_FIELDS, *kind.fields)
    return {name: to_json_value(getattr(row, name)) for name in names}


def document_of_values(kind: Documented, values: Mapping[str, Any]) -> dict[str, Any]:
    """`document_of` for a row not yet written, given as its column values (a column
    not given is None, as on the row before its INSERT)."""
    names = (*COMMON_FIELDS, *kind.fields)
    return {name: to_json_value(values.get(name)) for name in names}


def date_of(value: Any) -> dt.date | None:
    """A document's date (ISO text), or a date already; None stays None."""
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def table_of(kind: Documented) -> Table:
    return cast(Table, kind.model.__table__)


def row_values(kind: Documented, document: Mapping[str, Any]) -> dict[str, Any]:
    """The current row of an entry from its document (`document_of` read backwards)."""
    return {c.name: _python(c, document.get(c.name)) for c in table_of(kind).columns}


def _python(column: Any, value: Any) -> Any:
    """A document's JSON value as the column's Python value."""
    if value is None:
        return None
    kind = column.type
    if isinstance(kind, DateTimeUTC | DateTime):
        return dt.datetime.fromisoformat(value)
    if isinstance(kind, Date):
        return date_of(value)
    if isinstance(kind, Uuid):
        return uuid.UUID(str(value))
    return value
