"""The XSD of the XML answers, generated from the models that type their JSON form.

Why generated: `web/xml_form.py` writes every answer member by member, so the schema of
an XML answer is its answer model's JSON Schema said in XSD. Written by hand, the XSD
fell back to `xs:any` for every kind's fields; generated, it types each kind's fields,
carries their descriptions as `xs:documentation` and follows every change of a model
(the same models give `openapi.yaml`). Which answers exist is read from the routes:
every handler declared with `operation(xml_root=...)` and a 200 `answer(model)` adds
its root element, so a read that gains an XML form is in the XSD without a list here.

The translation of a JSON Schema into XSD is `web/xsd_builder.py`'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from cdb_service.web.xsd_builder import XsdBuilder

_PARAM = re.compile(r"\{(\w+):\w+\}")  # `{entry_id:uuid}` as a client reads it: `{entry_id}`


@dataclass(frozen=True)
class XmlAnswer:
    """One root element: the model of its content and the routes that answer it."""

    root: str
    model: Any
    routes: tuple[str, ...]


def xml_answers(app: Litestar) -> tuple[XmlAnswer, ...]:
    """Every XML answer the app's routes declare, by root element name."""
    found: dict[str, tuple[Any, list[str]]] = {}
    for handler, path in _handlers(app):
        root = getattr(handler.operation_class, "xml_element", None)
        if root is None:
            continue
        spec = (handler.responses or {}).get(200)
        if not isinstance(spec, ResponseSpec):
            raise ValueError(f"{path}: an XML answer (`{root}`) needs a 200 `answer(model)`")
        model, routes = found.setdefault(root, (spec.data_container, []))
        if model is not spec.data_container:
            raise ValueError(f"root element `{root}` names two models ({path})")
        methods = "/".join(sorted(handler.http_methods))
        routes.append(f"{methods} {_PARAM.sub(_plain, path)}")
    return tuple(
        XmlAnswer(root, model, tuple(sorted(set(routes))))
        for root, (model, routes) in sorted(found.items())
    )


def _plain(parameter: re.Match[str]) -> str:
    return f"{{{parameter[1]}}}"


def _handlers(app: Litestar) -> Iterator[tuple[HTTPRouteHandler, str]]:
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if isinstance(handler, HTTPRouteHandler):
                yield handler, route.path


def xml_schema(app: Litestar, problem_extensions: Any) -> bytes:
    """The XSD of the app's XML answers (cached: the same routes give the same bytes)."""
    version = app.openapi_config.version if app.openapi_config else "0"
    return render(xml_answers(app), version, problem_extensions)


@cache
def render(answers: Sequence[XmlAnswer], version: str, problem_extensions: Any = None) -> bytes:
    """The XSD declaring `answers` (and the problem extension members of the model
    `problem_extensions`), with `version` as the schema's version."""
    mode: JsonSchemaMode = "serialization"  # answers: what is written, not what is read
    inputs = [(a.root, mode, TypeAdapter(a.model)) for a in answers]
    if problem_extensions is not None:
        inputs.append(("problem", mode, TypeAdapter(problem_extensions)))
    keyed, defs = TypeAdapter.json_schemas(inputs, ref_template="#/$defs/{model}")
    builder = XsdBuilder(defs.get("$defs", {}), version)
    for answer in answers:
        doc = "The answer of " + "; ".join(answer.routes) + "."
        builder.root(answer.root, doc, keyed[(answer.root, "serialization")])
    if problem_extensions is not None:
        builder.problem_members(keyed[("problem", "serialization")])
    return builder.serialise()
