"""What the shared mechanics need to know about one kind of entry.

Each kind's package declares one `KindSpec`; the services, the history mechanism,
the generic controller, extracts and the feed are written once against it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON

from cdb_service.db.base import Base
from cdb_service.db.revisions import EntryModel, Projection
from cdb_service.registry.kinds.filters import OWNER, SEARCH, Filter
from cdb_service.registry.kinds.schemas import EntryIn


@dataclass(frozen=True)
class Reference:
    """A link to another entry, given by id or by the target's natural key."""

    id_field: str  # e.g. authority_id
    key_field: str  # e.g. authority_code: the natural-key spelling used by imports
    target: str  # kind name
    required: bool = False


@dataclass(frozen=True)
class KindSpec:
    name: str  # URL name, also the `kind` of entry versions
    model: type[EntryModel]
    schema: type[EntryIn]
    # The natural key: a globally unique column (code, name) or the owner-scoped `ref`.
    natural_key: str
    natural_key_global: bool
    references: tuple[Reference, ...] = ()
    projections: tuple[Projection, ...] = ()
    # Columns the server sets once, on creation, and a client cannot (e.g. announced_at).
    server_fields: tuple[str, ...] = ()
    # Columns the server derives from the entry itself (see `derive`), never from a client.
    derived: tuple[str, ...] = ()
    # derive(values of this write, the entry's current values or None) -> derived columns.
    derive: Callable[[Mapping[str, Any], Mapping[str, Any] | None], dict[str, Any]] | None = None
    # Entries of this kind stay on record: a delete is refused with this reason.
    never_deleted: str | None = None
    # Query filters beyond `owner` (see registry/kinds/filters.py).
    filters: tuple[Filter, ...] = ()
    # Fields only administrators and operators see (named persons, Annex I 5.5): every
    # response, extract and feed page shows them through `security.consultations.Viewer`
    # (redacted for readers, recorded as consultations for the others).
    private_fields: tuple[str, ...] = ()
    fields: tuple[str, ...] = field(init=False)
    json_fields: frozenset[str] = field(init=False)
    # The columns a document gives (the schema's fields among them), in column order.
    columns_given: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        columns = self.model.__table__.columns  # type: ignore[attr-defined]
        reference_keys = {r.key_field for r in self.references}
        names = [
            n
            for n in self.schema.model_fields
            if n not in reference_keys and n not in ("owner", "ref", "valid_from", "valid_to")
        ]
        names += [n for n in (*self.server_fields, *self.derived) if n not in names]
        missing = [n for n in names if n not in columns]
        if missing:
            raise TypeError(f"{self.name}: schema fields without a column: {missing}")
        object.__setattr__(self, "fields", tuple(names))
        # What the server sets may be sent back as it was read; the schema drops it, so
        # the schema declares it (`server_set`), and here the two declarations must agree.
        server_set = frozenset((*self.server_fields, *self.derived))
        if self.schema.server_set != server_set:
            raise TypeError(
                f"{self.name}: {self.schema.__name__}.server_set must be the server-set and "
                f"derived fields {sorted(server_set)}, not {sorted(self.schema.server_set)}"
            )
        object.__setattr__(
            self, "json_fields", frozenset(n for n in names if isinstance(columns[n].type, JSON))
        )
        given = ("ref", "valid_from", "valid_to", *names)
        object.__setattr__(
            self, "columns_given", tuple(n for n in given if n in self.schema.model_fields)
        )

    def column_values(self, document: BaseModel) -> dict[str, Any]:
        """The validated document as column values (references not yet resolved): JSON
        columns as JSON values, the others (text, dates, ids) as the model holds them."""
        # All of it: pydantic converts an `include` set on every call, which costs more.
        as_json = document.model_dump(mode="json")
        return {
            name: as_json[name] if name in self.json_fields else getattr(document, name)
            for name in self.columns_given
        }

    @property
    def all_filters(self) -> dict[str, Filter]:
        return {f.name: f for f in (OWNER, SEARCH, *self.filters)}


@dataclass(frozen=True)
class ListProjection:
    """One row per item of a list field, e.g. a criterion's geo keys."""

    model: type[Base]
    source: str
    columns: tuple[str, ...]
    # The columns name one entry only (an AS4 party id): a batch checks it before writing.
    unique: bool = False

    def rows(self, entry_id: uuid.UUID, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            {"entry_id": entry_id, **{c: item[c] for c in self.columns}}
            for item in values.get(self.source) or ()
        ]
