"""A console form read back into the document the API takes (an empty control is an
absent field), and the API's field errors placed beside the controls they name.

An edit is sent as the RFC 7396 merge patch between the document the form was opened
with and the one it sends, both read by this same code (`kernel.json_documents.
merge_patch_between`), so that only what the person changed is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from cdb_service.console.i18n import N_, current, gettext, language_names
from cdb_service.console.widgets import (
    BLANK_ROWS,
    BRUSSELS,
    GEO_DEFAULT,
    PREFIX,
    Widget,
    fill,
    row_of,
)
from cdb_service.kernel import codes
from cdb_service.kernel.problems import FieldError, invalid

# --- a form read back ----------------------------------------------------------------


class _Sent:
    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self.values: dict[str, list[str]] = {}
        for key, value in items:
            # A browser sends a text area's lines ended by CR LF (HTML's form encoding).
            self.values.setdefault(key, []).append(value.replace("\r\n", "\n"))

    def one(self, name: str) -> str:
        return (self.values.get(name) or [""])[0].strip()

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def row_count(self, path: str) -> int:
        head = f"{PREFIX}{path}."
        found = [k[len(head) :].split(".", 1)[0] for k in self.values if k.startswith(head)]
        return max((int(n) + 1 for n in found if n.isdigit() and len(n) < 4), default=0)


def read(widgets: list[Widget], items: Iterable[tuple[str, str]], owner: str
         ) -> tuple[dict[str, Any], list[FieldError]]:  # fmt: skip
    """The document a form sends (an empty control is an absent field), the controls
    filled with what was sent, and what could not be read."""
    sent = _Sent(items)
    errors: list[FieldError] = []
    return _read_all(widgets, sent, owner, errors), errors


def only_sent(document: dict[str, Any], widgets: list[Widget], items: Iterable[tuple[str, str]]
              ) -> dict[str, Any]:  # fmt: skip
    """The document's fields (and an object's members) whose controls the form sent: an
    edit changes only those, so that a form of fewer fields (an older page's, a
    script's) leaves the others as they are. A checkbox or a list of them sends nothing
    when none is ticked, so the form carries a marker `<name>.shown` for them."""
    keys = {key for key, _ in items}
    return _only(document, widgets, keys)


def _only(document: dict[str, Any], widgets: list[Widget], keys: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for w in widgets:
        key = w.path.rsplit(".", 1)[-1]
        if not any(k == w.name or k.startswith(w.name + ".") for k in keys):
            continue
        value = document.get(key)
        if w.control == "group" and isinstance(value, dict):
            out[key] = _only(value, w.children, keys)
        elif key in document:
            out[key] = value
    return out


def _read_all(widgets: list[Widget], sent: _Sent, owner: str, errors: list[FieldError]
              ) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {}
    for w in widgets:
        value = _read(w, sent, owner, errors)
        if value is not None:
            out[w.path.rsplit(".", 1)[-1]] = value
    return out


def _typed(widgets: list[Widget]) -> bool:
    """Whether anything was typed in these controls (a pick list's default is no typing)."""
    return any(w.value for w in widgets if w.control not in ("select", "rows", "group")) or any(
        _typed(w.children) for w in widgets if w.control == "group"
    )


def _read(w: Widget, sent: _Sent, owner: str, errors: list[FieldError]) -> Any:
    loc = tuple(int(p) if p.isdigit() else p for p in w.path.split("."))
    if w.control == "group":
        value = _read_all(w.children, sent, owner, errors)
        return value if _typed(w.children) or w.required else None
    if w.control == "rows":
        w.rows, values = [], []
        for i in range(min(sent.row_count(w.path), 1_000)):
            row = row_of(w, i)
            value = _read_all(row, sent, owner, errors)
            if _typed(row):
                values.append(value)
                w.rows.append(row)
        for i in range(len(values), len(values) + BLANK_ROWS):
            w.rows.append(fill(row_of(w, i), {}, owner))
        return values
    if w.control == "names":
        langs, texts = sent.all(w.name + ".lang"), sent.all(w.name + ".text")
        w.value, names = [], {}
        for lang, text in zip(langs, texts, strict=False):
            lang, text = lang.strip(), text.strip()
            if not lang and not text:
                continue
            w.value.append((lang, text))
            if not lang:
                errors.append(FieldError(loc, gettext("choose the language of “{text}”")
                                         .format(text=text)))  # fmt: skip
            elif lang in names:
                errors.append(FieldError(loc, gettext("{language} is given twice")
                                         .format(language=_language(lang))))  # fmt: skip
            else:
                names[lang] = text
        return names or None
    if w.control == "choices":
        w.value = [v for v in sent.all(w.name) if v]
        return w.value
    if w.control == "checkbox":
        w.value = "true" if sent.one(w.name) else ""
        return bool(w.value)
    if w.control == "pem":
        w.value = sent.one(w.name)
        upload = sent.one(w.name + ".file")
        if upload:
            w.value = upload
        return w.value or None
    text = sent.one(w.name)
    w.value = sent.all(w.name)[0] if sent.all(w.name) else ""
    if not text:
        return [] if w.control in ("lines", "geo") else None
    if w.control == "lines":
        return [line.strip() for line in text.splitlines() if line.strip()]
    if w.control == "geo":
        return _geo(text, loc, errors)
    if w.control == "number":
        try:
            return int(text)
        except ValueError:
            errors.append(FieldError(loc, gettext("must be a whole number")))
            return None
    if w.control == "datetime":
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            errors.append(FieldError(loc, gettext("must be a date and time, YYYY-MM-DD HH:MM")))
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=BRUSSELS)
        return moment.isoformat()
    return text


def _geo(text: str, loc: tuple[str | int, ...], errors: list[FieldError]) -> list[dict[str, str]]:
    schemes = {"prefix": "postal-code-prefix", **{s: s for s in codes.GEO_SCHEMES}}
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        scheme = GEO_DEFAULT
        head, colon, rest = line.partition(":")
        if colon:
            if head.strip().lower() not in schemes:
                said = gettext("line {number}: “{scheme}” is no scheme (postal-code, prefix, "
                               "lau, nuts1, nuts2, nuts3, country)")  # fmt: skip
                errors.append(FieldError(loc, said.format(number=number, scheme=head.strip())))
                continue
            scheme, line = schemes[head.strip().lower()], rest.strip()
        key = {"scheme": scheme, "code": line}
        if line.endswith(")") and "(" in line:
            code, _, country = line[:-1].rpartition("(")
            key |= {"code": code.strip(), "country": codes.code_of(country)}
        out.append(key)
    return out


# --- errors beside their controls ----------------------------------------------------

# pydantic's words for the common mistakes, as a form says them (translated where shown);
# the registry's own sentences are catalogue entries too (`gettext` of the message).
READABLE = {
    "Field required": N_("must be filled in"),
    "Input should be a valid date or datetime, input is too short":
        N_("must be a date, YYYY-MM-DD"),
    "Input should be a valid date or datetime, invalid character in year":
        N_("must be a date, YYYY-MM-DD"),
    "Input should be a valid integer, unable to parse string as an integer":
        N_("must be a whole number"),
    "String should have at least 1 character": N_("must be filled in"),
    "Input should be a valid URL, relative URL without a base": N_("must be a full address"),
    "Input should be a valid email address": N_("must be an e-mail address"),
}  # fmt: skip
# The registry's fixed sentences a form shows (its checks' words, `kinds/fields.py`): in
# the catalogues, so that `_said` finds them.
REGISTRY_SENTENCES = (
    N_("must be an https:// URL (access points are reached over TLS only)"),
    N_("must name a host"),
    N_("must not carry credentials"),
    N_("must not contain spaces"),
)


def _language(code: str) -> str:
    return dict(language_names(current().language)).get(code, code)


def _said(message: str) -> str:
    """An error's message in the request's language, where the catalogue has it."""
    return gettext(READABLE.get(message, message))


def place_errors(widgets: list[Widget], errors: Iterable[FieldError]) -> list[str]:
    """Each error beside its control (the deepest one its location names); those that
    belong to none are returned as sentences."""
    by_path = {w.path: w for top in widgets for w in top.walk()}
    loose = []
    for error in errors:
        loc = [str(p) for p in error.loc if p != "body"]
        target, rest = None, loc
        for n in range(len(loc), 0, -1):
            if ".".join(loc[:n]) in by_path:
                target, rest = by_path[".".join(loc[:n])], loc[n:]
                break
        if target is None:
            loose.append(f"{'.'.join(loc)}: {_said(error.msg)}" if loc else _said(error.msg))
            continue
        if target.control == "rows" and rest and rest[0].isdigit():
            rest = [gettext("row {number}").format(number=int(rest[0]) + 1), *rest[1:]]
        where = " ".join(rest)
        said = _said(error.msg)
        text = f"{where}: {said}" if where and target.control != "names" else said
        if target.control == "names" and rest:
            text = f"{_language(rest[0])}: {said}"
        target.error = f"{target.error}; {text}" if target.error else text
    return loose


def as_document(data: Any, current: dict[str, Any] | None) -> dict[str, Any]:
    """A validated write as the document it will store (with the entry's id, if any)."""
    out: dict[str, Any] = data.model_dump(mode="json")
    if current is not None:
        out["id"] = current["id"]
    return out


def version_number(form: dict[str, Any], name: str) -> int:
    try:
        return int(str(form.get(name)))
    except ValueError:
        raise invalid([FieldError((name,), "is not a version number")]) from None
