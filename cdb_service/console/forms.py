"""Entries as forms: one labelled field per spreadsheet column (`code`, `names.fr`,
`address.street`, `languages` as `fr; en`, lists of objects as JSON), so that a clerk
types what she would type in the batch file, and both are read by the same code."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel

from cdb_service.kernel.problems import FieldError
from cdb_service.registry.formats import spreadsheets
from cdb_service.registry.formats.spreadsheets import Column, KeyOf
from cdb_service.registry.kinds.spec import KindSpec

# Not typed in a form: the id is the entry's, the owner follows the signed-in person.
FIXED = frozenset({"id", "owner"})
PREFIX = "f:"  # form field names: "f:address.street"


@dataclass
class FormField:
    name: str
    value: str
    wide: bool
    error: str | None = None
    help: str | None = None  # the field's description in the contract (the kind's schema)

    @property
    def input_name(self) -> str:
        return PREFIX + self.name

    @property
    def input_id(self) -> str:
        return "field-" + "".join(c if c.isalnum() else "-" for c in self.name)

    @property
    def described_by(self) -> str:
        """The ids of the texts that describe the input: its help, then its error."""
        ids = [f"{self.input_id}-help"] if self.help else []
        return " ".join([*ids, f"{self.input_id}-error"] if self.error else ids)


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def values_of(kind: KindSpec, document: Mapping[str, Any], key_of: KeyOf) -> dict[str, str]:
    """The document as the text of each column."""
    header, rows = spreadsheets.table(kind, [document], key_of)
    values = {name: _shown(value) for name, value in zip(header, next(rows), strict=True)}
    # A name in English is always offered (the quality report asks for one), beside
    # the languages the entry already has.
    known = spreadsheets.known_columns(kind)
    out: dict[str, str] = {}
    for name, value in values.items():
        out[name] = value
        field = name.partition(".")[0]
        english = f"{field}.en"
        if "." in name and english in known and english not in values and english not in out:
            out[english] = ""
    return out


def fields_of(kind: KindSpec, values: Mapping[str, str]) -> list[FormField]:
    known = spreadsheets.known_columns(kind)
    return [
        FormField(
            name,
            values.get(name, ""),
            known[name].shape == "objects",
            help=help_of(kind, known[name]),
        )
        for name in values
        if name not in FIXED and name in known
    ]


def help_of(kind: KindSpec, column: Column) -> str | None:
    """A column's help: the description its field has in the kind's schema (the same text
    the OpenAPI document gives), a nested object's member's own when it has one."""
    info = kind.schema.model_fields.get(column.field)
    if info is None:
        return None
    if column.member is not None:
        nested = _model_in(info.annotation)
        member = nested.model_fields.get(column.member) if nested is not None else None
        if member is not None and member.description:
            return member.description
    return info.description


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside `Model | None` (an optional nested object such as `address`)."""
    candidates = [annotation, *get_args(annotation)]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
                None)  # fmt: skip


def submitted(form: Mapping[str, Any]) -> dict[str, str]:
    return {k.removeprefix(PREFIX): str(v) for k, v in form.items() if k.startswith(PREFIX)}


def merge_patch(kind: KindSpec, typed: Mapping[str, str], before: Mapping[str, str]
                ) -> tuple[dict[str, Any], list[FieldError]]:  # fmt: skip
    """Only what the person changed, as an RFC 7396 merge patch (an emptied field is
    removed), and the cells that could not be read."""
    known = spreadsheets.known_columns(kind)
    changed = [n for n, v in typed.items() if n in known and n not in FIXED
               and v.strip() != before.get(n, "").strip()]  # fmt: skip
    document, unreadable = spreadsheets.row_document(known, changed, [typed[n] for n in changed])
    patch: dict[str, Any] = {}
    for name in changed:
        column = known[name]
        if column.member is None:
            patch[column.field] = document.get(column.field)
        else:
            value = (document.get(column.field) or {}).get(column.member)
            member = patch.setdefault(column.field, {})
            if isinstance(member, dict):
                member[column.member] = value
    return patch, [FieldError((name,), why) for name, why in unreadable]


def whole_document(kind: KindSpec, typed: Mapping[str, str], owner: str
                   ) -> tuple[dict[str, Any], list[FieldError]]:  # fmt: skip
    """A new entry from its form."""
    known = spreadsheets.known_columns(kind)
    names = [n for n in typed if n in known and n not in FIXED]
    document, unreadable = spreadsheets.row_document(known, names, [typed[n] for n in names])
    return document | {"owner": owner}, [FieldError((n,), why) for n, why in unreadable]


def place_errors(fields: list[FormField], errors: list[FieldError]) -> list[str]:
    """Each error beside its field; those that belong to none are returned."""
    by_name = {f.name: f for f in fields}
    loose = []
    for error in errors:
        loc = [str(p) for p in error.loc if p != "body"]
        target = next((by_name[".".join(loc[:n])] for n in (2, 1)
                       if ".".join(loc[:n]) in by_name), None)  # fmt: skip
        if target is None:
            loose.append(f"{'.'.join(loc)}: {error.msg}")
        else:
            where = ".".join(loc[1:]) if len(loc) > 2 else ""
            text = f"{where}: {error.msg}" if where else error.msg
            target.error = f"{target.error}; {text}" if target.error else text
    return loose
