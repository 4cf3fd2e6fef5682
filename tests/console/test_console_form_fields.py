"""Every field of every kind's form has a label and a help text from the contract, in every
language of the console (English, German, French), and every field whose values come from
a code list is a pick list: checked on the forms as they are rendered (the template the
console serves), for every kind."""

from __future__ import annotations

import typing
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from cdb_service.console import i18n, widgets
from cdb_service.console.web import _environment
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.fields import CodeListMember


class Controls(HTMLParser):
    """The form's controls, the labels that name them, and the help texts by id."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str]] = []
        self.labelled: set[str] = set()
        self.texts: dict[str, str] = {}
        self._open: list[tuple[str, str]] = []  # (tag, id) of elements whose text is kept
        self._in_label = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "label":
            self._in_label += 1
            if a.get("for"):
                self.labelled.add(a["for"])
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append(a | {"tag": tag, "in_label": str(self._in_label > 0)})
        if a.get("id"):
            self._open.append((tag, a["id"]))
            self.texts[a["id"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._in_label -= 1
        if self._open and self._open[-1][0] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for _, element in self._open:
            self.texts[element] += data


def _rendered(kind: str, language: str = "en") -> tuple[list[widgets.Widget], Controls]:
    i18n.speaking(language)
    spec = KINDS[kind]
    choices = {r.target: [("7f0c1c1e-0000-4000-8000-000000000001", "DE:X Amtsgericht X")]
               for r in spec.references}  # fmt: skip
    controls = widgets.fill(widgets.blank(spec, "DE", choices), {}, "DE")
    html = (
        _environment(language)
        .get_template("_fields.html")
        .render(user=SimpleNamespace(csrf="t"), widgets=controls, loose=[], speech=i18n.current())
    )
    parser = Controls()
    parser.feed(html)
    return controls, parser


# Labels the same in a language as in English: the word is the same (or a code).
SAME_WORDS = {
    "de": {"Code", "Name", "Version", "Status", "Service", "Instrument"},
    "fr": {"Code", "Contact", "Contacts", "Instruments", "Service", "Services", "Actions", "Type",
           "Description",
           "Source", "Version", "Instrument"},
}  # fmt: skip


@pytest.mark.parametrize("language", ["en", "de", "fr"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_field_has_a_label_and_a_help_text(kind: str, language: str) -> None:
    english, _ = _rendered(kind, "en")
    controls, page = _rendered(kind, language)
    said = {w.path: w for top in english for w in top.walk()}
    for top in controls:
        for w in top.walk():
            if "{i}" in w.path:
                continue  # a row's template; its rows are checked
            assert w.label and w.label != w.path, w.path
            assert len(w.help) > 10 and page.texts.get(f"{w.id}-help", "").strip(), w.path
            if language != "en":
                # In the language: not the English left in place.
                assert w.help != said[w.path].help, (language, w.path, w.help)
                assert w.label != said[w.path].label or w.label in SAME_WORDS[language], (
                    language, w.path, w.label)  # fmt: skip
    for control in page.controls:
        named = control.get("id") in page.labelled or control["in_label"] == "True"
        assert named, f"{kind}: {control} has no label"


def _code_list(annotation: Any) -> bool:
    """Whether the annotation (or what it holds: a list's item, an option) is a code list."""
    if any(isinstance(m, CodeListMember) for m in getattr(annotation, "__metadata__", ())):
        return True
    if typing.get_origin(annotation) in (typing.Literal,):
        return True
    if typing.get_origin(annotation) is dict:
        return False  # names per language: the language is a pick list of its own rows
    if typing.get_origin(annotation) is typing.Annotated:
        return _code_list(typing.get_args(annotation)[0])
    return any(_code_list(a) for a in typing.get_args(annotation))


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        # pydantic keeps a field's own `Annotated` metadata on the field, not the type.
        if info.metadata:
            annotation = typing.Annotated[annotation, *info.metadata]
        out.append((prefix + name, annotation))
        for arg in [annotation, *typing.get_args(annotation)]:
            for inner in [arg, *typing.get_args(arg)]:
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    out += _fields(inner, f"{prefix}{name}.")
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_code_list_field_is_a_pick_list(kind: str) -> None:
    controls, page = _rendered(kind)
    by_path = {w.path.replace(".0.", "."): w for top in controls for w in top.walk()}
    names = {c.get("name", ""): c for c in page.controls}
    code_lists = [(p, a) for p, a in _fields(KINDS[kind].schema) if _code_list(a)]
    assert code_lists or kind == "incidents"
    for path, _ in code_lists:
        if path == "owner" or path.startswith("geo."):
            # The owner follows the signed-in person; places are typed one a line, each
            # line naming its scheme (`nuts3: DE300`), the country being the owner's.
            continue
        w = by_path[path]
        assert w.control in ("select", "choices"), (path, w.control)
        tag = "select" if w.control == "select" else "input"
        rendered = [c for n, c in names.items() if n == w.name]
        assert rendered and rendered[0]["tag"] == tag, (path, rendered)
        assert len(w.options) >= 2, path


def test_a_court_s_references_are_chosen_by_code_and_name() -> None:
    controls, _ = _rendered("authorities")
    party = next(w for w in controls if w.path == "routing_party_id")
    assert party.control == "select" and ("", "(none)") in party.options
    assert any(label == "DE:X Amtsgericht X" for _, label in party.options)
    names = next(w for w in controls if w.path == "names")
    assert len(names.options) == 24  # every official EU language may be added
