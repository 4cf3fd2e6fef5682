"""Content negotiation, one helper for every route that offers XML beside JSON.

JSON is the default: no `Accept`, `*/*` and `application/*` all get JSON. XML is given
to a client that prefers `application/xml` (q-values as RFC 9110 §12.5.1 says); a
client that accepts neither gets a 406 problem. Both forms share the ETag (the data is
the same) and say `Vary: Accept`, so that a cache keeps them apart.

Problems follow the same preference (`application/problem+xml`), but are never
refused: an error is answered in JSON to a client that accepts neither form.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib.resources import files
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.connection import ASGIConnection
from litestar.datastructures import Accept
from litestar.handlers import BaseRouteHandler
from litestar.response.base import ASGIResponse
from litestar.serialization import encode_json
from litestar.types import Scope

from cdb_service.kernel.problems import NOT_ACCEPTABLE, Problem
from cdb_service.web.conditional import conditional
from cdb_service.web.docs import ProblemDetails, problems
from cdb_service.web.xml_form import problem_to_xml, to_xml
from cdb_service.web.xml_schema import xml_schema

JSON = "application/json"
XML = "application/xml"
NDJSON = "application/x-ndjson"
PROBLEM_JSON = "application/problem+json"
PROBLEM_XML = "application/problem+xml"
VARY = {"Vary": "Accept"}
_OFFERED = (JSON, XML)


def _accept(scope: Scope) -> str | None:
    # Raw header lines, as web.conditional reads them: cheaper than litestar's Headers.
    for name, value in scope.get("headers", ()):
        if name.lower() == b"accept":
            return str(value.decode("latin-1"))
    return None


def _best(header: str, offered: tuple[str, ...]) -> str | None:
    try:
        return Accept(header).best_match(list(offered))
    except (ValueError, OverflowError):  # q=abc, q=1e999
        return offered[0]  # an unreadable Accept is ignored, as if it were absent


def preferred(scope: Scope, offered: tuple[str, ...]) -> str:
    """The offered form the client prefers, the first when it names none of them or its
    Accept cannot be read (a page that is always served: `/`)."""
    header = _accept(scope)
    if header is None or not header.strip():
        return offered[0]
    return _best(header, offered) or offered[0]


def wants_xml(scope: Scope) -> bool:
    """Whether to answer in XML; a 406 problem when neither JSON nor XML is acceptable."""
    header = _accept(scope)
    if header is None or not header.strip():
        return False
    chosen = _best(header, _OFFERED)
    if chosen is None:
        raise NOT_ACCEPTABLE(
            f"this answer is offered as {JSON} and {XML}; Accept was {header[:200]!r}"
        )
    return chosen == XML


def require_media(scope: Scope, *offered: str) -> None:
    """A 406 problem for a client whose Accept names none of the media types a read is
    offered in (no Accept, or an unreadable one, takes what is offered)."""
    header = _accept(scope)
    if header is not None and header.strip() and _best(header, offered) is None:
        raise NOT_ACCEPTABLE(
            f"this answer is offered as {' or '.join(offered)} only; Accept was {header[:200]!r}"
        )


def require_json(scope: Scope) -> None:
    """`require_media` for a read offered in JSON only (the feed, code lists, the
    gazetteer manifest, the quality report, the JSON routing table)."""
    require_media(scope, JSON)


async def json_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """`require_json` as a route guard. Async: litestar runs a sync guard in a thread."""
    require_json(connection.scope)


async def ndjson_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A guard for the streamed reads (extracts), offered as NDJSON only."""
    require_media(connection.scope, NDJSON)


def negotiated(scope: Scope, data: Any, root: str, status: int = 200,
               headers: Mapping[str, str] | None = None) -> Response[Any]:  # fmt: skip
    """`data` as JSON, or as XML (root element `root`) to a client that prefers it."""
    sent = {**(headers or {}), **VARY}
    if wants_xml(scope):
        # Through JSON first: the XML carries exactly what the JSON would (UUIDs, dates).
        body = to_xml(root, json.loads(encode_json(data)))
        return Response(body, status_code=status, media_type=XML, headers=sent)
    return Response(data, status_code=status, headers=sent)


def negotiated_bytes(scope: Scope, tag: str, body: bytes, root: str) -> ASGIResponse:
    """`web.conditional` for an answer already encoded as JSON (the look-ups cache their
    bytes): those bytes as they are, or their XML form."""
    if wants_xml(scope):
        return conditional(scope, tag, to_xml(root, json.loads(body)), XML, VARY)
    return conditional(scope, tag, body, JSON, VARY)


def problem_form(scope: Scope | None, problem: Problem) -> tuple[str, bytes]:
    """The media type and body of a problem, in the form the client prefers."""
    body = encode_json(problem.as_dict())
    header = _accept(scope) if scope is not None else None
    if header and "xml" in header:
        preferred = _best(header, (PROBLEM_JSON, PROBLEM_XML, JSON, XML))
        if preferred in (PROBLEM_XML, XML):
            return PROBLEM_XML, problem_to_xml(json.loads(body))
    return PROBLEM_JSON, body


_XSD = files("cdb_service.web") / "xsd"


class XmlSchemaController(Controller):
    """The XSDs every XML answer validates against (cdb.xsd imports problem.xsd).

    cdb.xsd is generated from the app's routes and their answer models (web.xml_schema),
    so it is what the service answers now; `web/xsd/cdb.xsd` is the same document,
    committed for readers (tests/ops/test_openapi.py fails when it is stale)."""

    path = "/schemas"
    tags = ["xml"]  # noqa: RUF012

    @get("/cdb.xsd", summary="The XML Schema of the XML answers", media_type="application/xml",
         responses=problems(),
         description="Typed per kind and per answer, generated from the same models as "
         "this document's JSON schemas; its `version` attribute is the API's version.")  # fmt: skip
    async def cdb(self, request: Request[Any, Any, Any]) -> bytes:
        return xml_schema(request.app, ProblemDetails)

    @get("/problem.xsd", summary="The XML Schema of problem details (RFC 9457, XML form)",
         media_type="application/xml", responses=problems())  # fmt: skip
    async def problem(self) -> bytes:
        return (_XSD / "problem.xsd").read_bytes()
