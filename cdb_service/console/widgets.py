"""Entries as forms for people, made from the contract: one control per field of the kind's
schema, labelled with the field's title and helped by its description (the texts the
OpenAPI document gives), code lists as pick lists, dates as date controls, references
chosen by code and name, names one row per language, contacts and other lists of objects
as rows, places one per line, certificates as PEM with their facts. Nobody types JSON
or a UUID.

A form is read back by `form_reading.py`.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from cdb_service.console.i18n import N_, current, gettext, language_names, localised
from cdb_service.registry.kinds.fields import CodeListMember, label_of
from cdb_service.registry.kinds.spec import KindSpec

PREFIX = "f:"
BRUSSELS = ZoneInfo("Europe/Brussels")
# Not in a form: the id is the entry's, the owner follows the signed-in person, and a
# reference is chosen from a list by its id (the natural-key spelling is for batches).
FIXED = frozenset({"id", "owner"})
# Read from the certificate by the server: shown beside it, never typed.
CERTIFICATE_FACTS = ("subject", "issuer", "sha256", "not_before", "not_after")
DEFAULTS = {"accept_from": "not_before", "use_from": "not_before", "accept_until": "not_after"}
BLANK_ROWS = 2  # empty rows offered under a list of objects ("add a contact")
BLANK_NAMES = 2  # empty language rows offered under the names
GEO_FIELD = "geo"
GEO_DEFAULT = "postal-code"
DATE_HELP = N_("Format: YYYY-MM-DD.")
TIME_HELP = N_("Brussels time (CET/CEST).")
Choices = Mapping[str, Sequence[tuple[str, str]]]  # target kind -> [(id, "code — name")]


@dataclass
class Widget:
    """One control (or a group of them) of a form."""

    path: str  # "code", "address.street", "contacts.0.value"
    label: str
    help: str
    required: bool
    control: str  # text textarea pem date datetime number checkbox select choices lines
    #               names geo group rows
    options: list[tuple[str, str]] = field(default_factory=list)
    value: Any = ""  # str; list[str] (choices); list[(lang, text)] (names)
    children: list[Widget] = field(default_factory=list)  # group
    rows: list[list[Widget]] = field(default_factory=list)  # rows
    facts: dict[str, str] = field(default_factory=dict)  # a certificate's, read-only
    error: str | None = None
    default: Any = None  # the contract's default, offered in an empty form

    @property
    def name(self) -> str:
        return PREFIX + self.path

    @property
    def id(self) -> str:
        return "field-" + "".join(c if c.isalnum() else "-" for c in self.path)

    @property
    def described_by(self) -> str:
        ids = [f"{self.id}-help"] + ([f"{self.id}-error"] if self.error else [])
        return " ".join(ids)

    def walk(self) -> Iterator[Widget]:
        yield self
        for child in self.children:
            yield from child.walk()
        for row in self.rows:
            for child in row:
                yield from child.walk()


# --- what a field is -----------------------------------------------------------------


def _unwrap(annotation: Any) -> tuple[Any, list[Any], bool]:
    """(the bare type, its metadata, whether None is allowed)."""
    metadata: list[Any] = []
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *more = typing.get_args(annotation)
            metadata += more
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            if len(args) != 1:
                return annotation, metadata, optional
            annotation = args[0]
        else:
            return annotation, metadata, optional


def _code_list(metadata: Iterable[Any]) -> CodeListMember | None:
    return next((m for m in metadata if isinstance(m, CodeListMember)), None)


def _model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _max_length(metadata: Iterable[Any]) -> int:
    for m in metadata:
        length = getattr(m, "max_length", None)
        if isinstance(length, int):
            return length
    return 0


def _options(member: CodeListMember) -> list[tuple[str, str]]:
    return [(code, f"{code} — {name}" if name and name != code else code)
            for code, name in localised(member.code_list, member.values).items()]  # fmt: skip


def help_of(info: FieldInfo) -> str:
    """A field's help as the form says it, in English (the catalogue's key): the contract's
    description as a sentence."""
    text = (info.description or "").strip().replace(" (its id)", "")
    text = text[:1].upper() + text[1:]
    if text and not text.endswith("."):
        text += "."
    return text


def info_of(kind: KindSpec, path: str) -> FieldInfo | None:
    """The contract's field behind a control's path ("address.street", "contacts.{i}.value")."""
    model: Any = kind.schema
    info = None
    for part in path.split("."):
        if part == "{i}" or part.isdigit():
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        info = fields[part]
        annotation, _, _ = _unwrap(info.annotation)
        if typing.get_origin(annotation) is list:
            annotation, _, _ = _unwrap(typing.get_args(annotation)[0])
        model = annotation
    return info


def title_of(name: str, info: FieldInfo) -> str:
    """A field's label in English (the catalogue's key): the contract's title."""
    return info.title or label_of(name)


def _help(info: FieldInfo, *more: str) -> str:
    """The help in the request's language, with more sentences (English, translated here)."""
    base = help_of(info)
    return " ".join(t for t in (gettext(base) if base else "", *map(gettext, more)) if t)


def language_names_now() -> tuple[tuple[str, str], ...]:
    """The official languages, named in the request's language."""
    return language_names(current().language)


def _widget(path: str, name: str, info: FieldInfo, *, owner: str, choices: Choices,
            reference: str | None, geo: bool) -> Widget:  # fmt: skip
    annotation, metadata, _optional = _unwrap(info.annotation)
    metadata += info.metadata
    label = gettext(title_of(name, info))
    required = info.is_required()
    made = Widget(path, label, _help(info), required, "text")
    if not required and info.default not in (None, PydanticUndefined, False, ""):
        made.default = info.default
    origin = typing.get_origin(annotation)
    member = _code_list(metadata)
    if reference is not None:
        made.control = "select"
        made.options = list(choices.get(reference, ()))
        made.help = _help(info, N_("Chosen by code and name."))
    elif geo:
        made.control = "geo"
        made.help = _help(info, N_("One place a line: a postal code as it is (10115), or "
                                   "the scheme first: `nuts3: DE300`, `lau: 09162000`, "
                                   "`prefix: 80`, `country: DE`."))  # fmt: skip
    elif member is not None:
        made.control, made.options = "select", _options(member)
    elif origin is typing.Literal:
        made.control = "select"
        made.options = [(str(v), str(v)) for v in typing.get_args(annotation)]
    elif origin is dict:
        made.control = "names"
        made.options = list(language_names_now())
        made.help = _help(info, N_("One row a language; choose a language in an empty row "
                                   "to add one."))  # fmt: skip
    elif origin is list:
        item, item_metadata, _ = _unwrap(typing.get_args(annotation)[0])
        item_member = _code_list(item_metadata)
        nested = _model(item)
        if item_member is not None:
            made.control, made.options = "choices", _options(item_member)
        elif nested is not None:
            made.control = "rows"
            made.children = _fields_of(nested, f"{path}.{{i}}", owner=owner, choices=choices)
        else:
            made.control = "lines"
            made.help = _help(info, N_("One a line."))
    elif (nested := _model(annotation)) is not None:
        made.control = "group"
        made.children = _fields_of(nested, path, owner=owner, choices=choices)
    elif annotation is bool:
        made.control = "checkbox"
    elif annotation is int:
        made.control = "number"
    elif annotation is dt.date:
        made.control, made.help = "date", _help(info, DATE_HELP)
    elif annotation is dt.datetime or getattr(annotation, "__name__", "") == "AwareDatetime":
        made.control, made.help = "datetime", _help(info, TIME_HELP)
    elif name == "pem":
        made.control = "pem"
        made.help = _help(info, N_("Paste it (-----BEGIN CERTIFICATE----- …) or choose its "
                                   "file."))  # fmt: skip
    elif annotation is str and 200 < _max_length(metadata) <= 1000:
        made.control = "textarea"
    return made


def _fields_of(model: type[BaseModel], prefix: str, *, owner: str, choices: Choices,
               references: Mapping[str, str] | None = None, left_out: Iterable[str] = ()
               ) -> list[Widget]:  # fmt: skip
    out = []
    skipped = set(left_out) | set(getattr(model, "server_set", ()))
    for name, info in model.model_fields.items():
        if name in skipped or (name in FIXED and not prefix):
            continue
        if name in CERTIFICATE_FACTS and "pem" in model.model_fields:
            continue
        path = f"{prefix}.{name}" if prefix else name
        out.append(_widget(path, name, info, owner=owner, choices=choices,
                           reference=(references or {}).get(name),
                           geo=not prefix and name == GEO_FIELD))  # fmt: skip
    return out


def blank(kind: KindSpec, owner: str, choices: Choices) -> list[Widget]:
    """The kind's controls, empty."""
    references = {r.id_field: r.target for r in kind.references}
    keys = [r.key_field for r in kind.references]
    widgets = _fields_of(kind.schema, "", owner=owner, choices=choices,
                         references=references, left_out=keys)  # fmt: skip
    for w in widgets:
        if w.control == "select" and w.path in references and not w.required:
            w.options = [("", gettext("(none)")), *w.options]
    return widgets


# --- a document shown in the controls ------------------------------------------------


def _local(value: Any) -> str:
    if value in (None, ""):
        return ""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    local = moment.astimezone(BRUSSELS)
    return local.strftime("%Y-%m-%dT%H:%M:%S" if local.second else "%Y-%m-%dT%H:%M")


def _geo_line(key: Mapping[str, Any], owner: str) -> str:
    scheme, code = str(key.get("scheme")), str(key.get("code"))
    country = str(key.get("country") or owner)
    spelled = "prefix" if scheme == "postal-code-prefix" else scheme
    line = code if scheme == GEO_DEFAULT else f"{spelled}: {code}"
    return line if country == owner or scheme == "country" else f"{line} ({country})"


def _facts(value: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for name in CERTIFICATE_FACTS:
        if value.get(name):
            text = str(value[name])
            out[gettext(label_of(name))] = (
                _local(text).replace("T", " ") + " " + gettext("Brussels")
                if name.startswith("not_") else text
            )  # fmt: skip
    return out


def fill(widgets: list[Widget], document: Mapping[str, Any], owner: str,
         defaults: bool = True) -> list[Widget]:  # fmt: skip
    """The controls with a document's values (in place), returned; with `defaults`, an
    empty control offers the contract's default (a form), and a new address lies in the
    owner's country; without, it stays empty (an entry's page)."""
    for w in widgets:
        if w.path.endswith("address.country") and owner in dict(w.options):
            w.default = owner
        key = w.path.rsplit(".", 1)[-1]
        _set(w, document.get(key), owner, defaults)
    return widgets


def _set(w: Widget, value: Any, owner: str, defaults: bool = True) -> None:
    if value is None and defaults:
        value = w.default
    if w.control == "group":
        # An erased person reads `[erased]`: said as such on the entry's page.
        w.value = value if isinstance(value, str) else ""
        fill(w.children, value if isinstance(value, dict) else {}, owner, defaults)
    elif w.control == "rows":
        items = [v for v in value or [] if isinstance(v, dict)]
        w.rows = []
        for i, item in enumerate([*items, *({} for _ in range(BLANK_ROWS))]):
            row = row_of(w, i)
            # A certificate's window at its defaults (its own validity) is shown empty.
            shown = {k: v for k, v in item.items()
                     if not (k in DEFAULTS and v == item.get(DEFAULTS[k]))}  # fmt: skip
            fill(row, shown, owner, defaults)
            for child in row:
                if child.control == "pem" and item:
                    child.facts = _facts(item)
            w.rows.append(row)
    elif w.control == "names":
        w.value = [(lang, str(text)) for lang, text in (value or {}).items()]
    elif w.control == "choices":
        w.value = [str(v) for v in value or []]
    elif w.control == "lines":
        w.value = "\n".join(str(v) for v in value or [])
    elif w.control == "geo":
        w.value = "\n".join(_geo_line(k, owner) for k in value or [] if isinstance(k, dict))
    elif w.control == "checkbox":
        w.value = "true" if value else ""
    elif w.control == "datetime":
        w.value = _local(value)
    else:
        w.value = "" if value is None else str(value)


def row_of(w: Widget, i: int) -> list[Widget]:
    """The controls of row `i` of a list of objects (its template's, renamed)."""

    def renamed(t: Widget) -> Widget:
        return Widget(t.path.replace("{i}", str(i)), t.label, t.help, t.required, t.control,
                      list(t.options), "", [renamed(c) for c in t.children],
                      default=t.default)  # fmt: skip

    return [renamed(t) for t in w.children]


def items_of(widgets: list[Widget]) -> list[tuple[str, str]]:
    """What a browser sends for these controls as they are filled."""
    out: list[tuple[str, str]] = []
    for w in widgets:
        if w.control == "group":
            out += items_of(w.children)
        elif w.control == "rows":
            for row in w.rows:
                out += items_of(row)
        elif w.control == "names":
            for lang, text in w.value or []:
                out += [(w.name + ".lang", lang), (w.name + ".text", text)]
        elif w.control == "choices":
            out += [(w.name, v) for v in w.value or []]
        elif w.control == "checkbox":
            out += [(w.name, "true")] if w.value else []
        else:
            out.append((w.name, str(w.value or "")))
    return out
