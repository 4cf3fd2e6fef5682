"""What the API answers for a kind, derived from its `KindSpec`: the document, a page,
the history and a diff.

One function per shape, written once; no kind has a hand-written copy. A document holds
the common fields, then every field of `spec.fields` (the schema's own fields, the
server-set and the derived ones), typed as the schema accepts them: what is served was
validated by that schema on its way in. Server-set and derived fields are typed from
their column. Private fields (named persons) may be left out by redaction, so they are
optional; every other field is always present (`null` where the column allows it).

These models describe answers in the OpenAPI document; answers are not validated
against them at run time (the stored documents were validated when written).
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
import uuid
from functools import cache
from typing import Annotated, Any, Literal, get_args

from litestar.params import KwargDefinition
from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import JSON, Boolean, Date, DateTime, Integer, Uuid
from typing_extensions import TypedDict  # pydantic reads it on Python < 3.12 (the XSD)

from cdb_service.db.base import DateTimeUTC
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.spec import KindSpec


class Answer(BaseModel):
    """Answers may gain fields in a minor version: clients ignore what they don't know."""

    model_config = ConfigDict(extra="allow")


class Document(Answer):
    id: uuid.UUID = Field(description="the entry's id, set by the server")
    owner: str = Field(description="member state (ISO 3166-1 alpha-2, EL for Greece) or EJ")
    ref: str | None = Field(description="the national register's own identifier")
    version: int = Field(ge=1, description="1, 2, … per entry; the ETag")
    revision: int = Field(ge=1, description="the registry revision of the last change")
    valid_from: dt.date | None = Field(description="first day of legal validity, inclusive")
    valid_to: dt.date | None = Field(description="last day of validity, inclusive")
    created_at: dt.datetime = Field(description="when the first version was written")
    updated_at: dt.datetime = Field(description="when the current version was written")


def _title(spec: KindSpec) -> str:
    return "".join(part.title() for part in spec.name.split("-"))


def _column_type(column: Any) -> Any:
    kind = column.type
    if isinstance(kind, DateTimeUTC | DateTime):
        found: Any = dt.datetime
    elif isinstance(kind, Date):
        found = dt.date
    elif isinstance(kind, Boolean):
        found = bool
    elif isinstance(kind, Integer):
        found = int
    elif isinstance(kind, Uuid):
        found = uuid.UUID
    elif isinstance(kind, JSON):
        found = Any
    else:
        found = str
    return found | None if column.nullable and found is not Any else found


def _field(spec: KindSpec, name: str) -> tuple[Any, Any]:
    column = spec.model.__table__.columns[name]  # type: ignore[attr-defined]
    info = spec.schema.model_fields.get(name)
    if info is None or name in spec.schema.server_set:
        annotation = _column_type(column)
        # A server-set or derived field is described where its column is declared.
        described: dict[str, Any] = {"description": column.doc} if column.doc else {}
    else:
        annotation = info.rebuild_annotation()
        described = {"description": info.description, "json_schema_extra": info.json_schema_extra}
        if column.nullable or info.default is None:
            annotation = annotation | None
    if name in spec.private_fields:
        # Redacted for readers (absent); `[erased]` once erased (`db/personal.py`). The
        # written type without its own null: one null in the answer's choices, not two.
        written = [
            t for t in get_args(info.annotation if info else annotation) if t is not type(None)
        ]
        choices: Any = functools.reduce(operator.or_, [*written, Literal["[erased]"], None])
        return choices, Field(default=None, **described)
    return annotation, Field(**described)


@cache
def document_model(kind: str) -> type[Answer]:
    spec = KINDS[kind]
    fields: dict[str, Any] = {name: _field(spec, name) for name in spec.fields}
    model: type[Answer] = create_model(  # type: ignore[call-overload]
        f"{_title(spec)}Entry",
        __base__=Document,
        __doc__=f"One {spec.name} entry, as served.",
        **fields,
    )
    return model


@cache
def page_model(kind: str) -> type[Answer]:
    document = document_model(kind)
    model: type[Answer] = create_model(  # type: ignore[call-overload]
        f"{_title(KINDS[kind])}Page",
        __base__=Answer,
        __doc__=f"A page of {kind}: keyset pages, `next` reads the same revision.",
        items=(list[document], Field(description="the entries of this page, in order")),  # type: ignore[valid-type]
        revision=(int, Field(ge=0, description="the revision every item was read at")),
        next=(str | None, Field(description="cursor of the following page")),
        total=(int | None, Field(default=None, description="with `count=true`")),
    )
    return model


@cache
def version_model(kind: str) -> type[Answer]:
    document = document_model(kind)
    operations: Any = Literal["create", "update", "delete"]
    model: type[Answer] = create_model(  # type: ignore[call-overload]
        f"{_title(KINDS[kind])}Version",
        __base__=Answer,
        __doc__="One entry version (never changed once written); a delete is a tombstone.",
        revision=(int, Field(description="the registry revision that wrote it")),
        kind=(Literal[kind], Field(description="the entry's kind")),  # type: ignore[valid-type,arg-type]
        id=(uuid.UUID, Field(description="the entry's id")),
        version=(int, Field(description="the entry's version number (1, 2, ...)")),
        operation=(operations, Field(description="what the revision did to the entry")),
        recorded_at=(dt.datetime, Field(description="when it was written")),
        document=(document, Field(description="the whole entry as that version left it")),
        actor=(str | None, Field(default=None, description="who wrote it (history only)")),
    )
    return model


@cache
def history_model(kind: str) -> type[Answer]:
    version = version_model(kind)
    model: type[Answer] = create_model(  # type: ignore[call-overload]
        f"{_title(KINDS[kind])}History",
        __base__=Answer,
        __doc__="Every version of one entry, newest first.",
        items=(list[version], Field(description="the versions, newest first")),  # type: ignore[valid-type]
    )
    return model


class VersionMark(Answer):
    version: int = Field(description="the entry's version number")
    revision: int = Field(description="the registry revision that wrote that version")


class PatchOperation(Answer):
    """One RFC 6902 operation."""

    op: Literal["add", "remove", "replace", "move", "copy", "test"] = Field(
        description="the RFC 6902 operation"
    )
    path: str = Field(description="the JSON Pointer (RFC 6901) it applies to")
    value: Any = Field(default=None, description="the new value (add, replace, test)")


# TypedDicts: `from` is a keyword, and a model's alias would not reach the OpenAPI
# document (litestar names additional responses' properties by attribute). Each member's
# description is said twice: litestar reads a `KwargDefinition` (openapi.yaml), pydantic a
# `Field` (the XSD's documentation).
_FIELD = "a top-level field of the document"
_BEFORE = "its value in the older version (null: it had none)"
_AFTER = "its value in the newer version (null: it has none)"
_FROM = "the version compared from"
_TO = "the version compared to"
_PATCH = "an RFC 6902 JSON Patch from one to the other"
_FIELDS = "the same change, field by field"
FieldChange = TypedDict("FieldChange", {
    "field": Annotated[str, KwargDefinition(description=_FIELD), Field(description=_FIELD)],
    "from": Annotated[Any, KwargDefinition(description=_BEFORE), Field(description=_BEFORE)],
    "to": Annotated[Any, KwargDefinition(description=_AFTER), Field(description=_AFTER)],
})  # fmt: skip
Diff = TypedDict("Diff", {
    "from": Annotated[VersionMark, KwargDefinition(description=_FROM), Field(description=_FROM)],
    "to": Annotated[VersionMark, KwargDefinition(description=_TO), Field(description=_TO)],
    "patch": Annotated[list[PatchOperation], KwargDefinition(description=_PATCH),
                       Field(description=_PATCH)],
    "fields": Annotated[list[FieldChange], KwargDefinition(description=_FIELDS),
                        Field(description=_FIELDS)],
})  # fmt: skip


class CodeListNames(Answer):
    items: list[str] = Field(description="the code lists' names, for `/code-lists/{name}`")


class Code(Answer):
    """A code and its English label; some lists add flags (`eurojust_recipient`)."""

    code: str = Field(description="the code, as the API reads and writes it")
    label: str = Field(description="its English label")


class CodeList(Answer):
    name: str = Field(description="the code list's name")
    items: list[Code] = Field(description="its codes, in order")


class OwnerParticipation(Answer):
    code: str = Field(description="the owner's code (code list `owners`)")
    label: str = Field(description="its name")
    instruments: list[str] = Field(
        description="the instruments it takes part in (code list `instruments`)"
    )


class Participation(Answer):
    name: str = Field(description="participation")
    revision: int = Field(description="the registry revision the list was read at")
    items: list[OwnerParticipation] = Field(description="every owner, in code-list order")


class ImportChange(Answer):
    kind: str = Field(description="the entry's kind")
    key: Any = Field(description="the entry's natural key")
    change: Literal["created", "updated", "deleted", "unchanged"] = Field(
        description="what the batch does to the entry"
    )
    id: uuid.UUID | None = Field(
        description="the entry's id (null for an entry a dry run would create)"
    )
    fields: list[str] = Field(description="the fields an update changes")


class ImportResult(Answer):
    """What a batch did (or, with `dry_run`, would do): one revision or nothing."""

    owner: str = Field(description="the owner whose entries the batch holds")
    mode: str = Field(description="merge or replace, as asked")
    dry_run: bool = Field(description="true: nothing was written")
    revision: int | None = Field(description="null for a dry run or when nothing changed")
    counts: dict[str, int] = Field(
        description="entries per change (created, updated, deleted, unchanged)"
    )
    by_kind: dict[str, dict[str, int]] = Field(description="the same counts per kind")
    changes: list[ImportChange] = Field(
        description="the changes, entry by entry (all, or the first `first`)"
    )


class CertificateRotated(Answer):
    revision: int = Field(description="the registry revision that wrote the rotation")
    routing_parties: list[uuid.UUID] = Field(description="the parties that used the old one")
