"""Collection filters, declared once per kind, applied to current rows (SQL) or past documents.

Current reads filter in SQL; reads as of a past revision filter the stored
documents in Python. Both come from the same declaration, so a filter means the
same thing whichever revision is asked for.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import String, cast, exists, select

from cdb_service.db.base import Base
from cdb_service.kernel import codes
from cdb_service.kernel.folding import fold, search_text


class Match(StrEnum):
    EQUAL = "equal"  # the field equals the value
    TEXT = "text"  # the value occurs in the field's text, case-insensitive
    FOLDED = "folded"  # the value occurs in the entry's search text, case and accents folded
    ITEM = "item"  # some item of a projected list has `column` equal to the value


@dataclass(frozen=True)
class Filter:
    name: str  # query parameter
    field: str  # document field / column
    match: Match = Match.EQUAL
    projection: type[Base] | None = None  # for ITEM: the projection table
    column: str = ""  # for ITEM: the projection's column and the item's key
    uuid: bool = False

    def parse(self, raw: str) -> Any:
        if self.uuid:
            return uuid.UUID(raw)
        return codes.code_of(raw) if self.field in ("owner", "country") else raw.strip()

    def clause(self, model: Any, value: Any, full: bool = False) -> Any:
        """The SQL condition. `full`: the search covers the kind's private fields too (a
        caller who may read them, `search_full`); else only what every reader sees."""
        if self.match is Match.FOLDED:
            column = model.search_full if full else getattr(model, self.field)
            return column.like(f"%{_escape(fold(value))}%", escape="\\")
        if self.match is Match.TEXT:
            return cast(getattr(model, self.field), String).ilike(
                f"%{_escape(value)}%", escape="\\"
            )
        if self.match is Match.ITEM:
            projection: Any = self.projection
            return exists(
                select(projection.entry_id).where(
                    projection.entry_id == model.id, getattr(projection, self.column) == value
                )
            )
        return getattr(model, self.field) == value

    def accepts(self, document: Mapping[str, Any], value: Any, hidden: Collection[str] = ()
                ) -> bool:  # fmt: skip
        """The same condition on a past document; `hidden`: fields the caller may not read
        (not searched)."""
        if self.match is Match.FOLDED:
            return fold(str(value)) in search_text(document, hidden)
        found = document.get(self.field)
        if self.match is Match.TEXT:
            return str(value).lower() in json.dumps(found, ensure_ascii=False).lower()
        if self.match is Match.ITEM:
            return any(item.get(self.column) == value for item in found or ())
        return str(found) == str(value)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


OWNER = Filter("owner", "owner")
# Every kind: names in every language, addresses, codes, refs, party ids (see search_text);
# a kind's private fields only for callers who may read them (`EntryReads`' `private`).
SEARCH = Filter("q", "search", Match.FOLDED)
