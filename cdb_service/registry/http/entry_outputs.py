"""What an entry answer carries, made in one place for every handler: the ETag and the
304 of a conditional read, named persons redacted for the caller or their reading
recorded (`Viewer.visible`), the form the caller accepts (JSON or XML), and the headers
of every write's answer.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response

from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store.reads import Page
from cdb_service.security.consultations import Viewer
from cdb_service.web.conditional import none_match
from cdb_service.web.consistency import REVISION_HEADER
from cdb_service.web.negotiation import negotiated
from cdb_service.web.pagination import encode_cursor


def etag(document: dict[str, Any]) -> str:
    return f'"{document["version"]}"'


def written_headers(document: dict[str, Any]) -> dict[str, str]:
    """Every write's answer: the new version's ETag and the revision it made (for
    `min_revision` on a read through another worker)."""
    return {"ETag": etag(document), REVISION_HEADER: str(document["revision"])}


def visible(spec: KindSpec, viewer: Viewer, document: dict[str, Any], action: str,
            version: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The document as this caller may see it: the kind's named persons redacted unless
    the policy lets the caller see them, and then their reading recorded."""
    return viewer.visible(spec.name, spec.private_fields, document, action, version)


def entry_answer(
    request: Request[Any, Any, Any],
    spec: KindSpec,
    viewer: Viewer,
    document: dict[str, Any],
    root: str,
) -> Response[Any]:
    """One entry with its ETag, or 304 when the caller already holds this version. `root`
    names the XML answer's root element (one per kind and shape, as the XSD types them)."""
    tag = etag(document)
    if none_match(request.scope, tag):
        return Response(None, status_code=304, headers={"ETag": tag})
    return negotiated(
        request.scope, visible(spec, viewer, document, "entry"), root, headers={"ETag": tag}
    )


def page_answer(
    request: Request[Any, Any, Any],
    spec: KindSpec,
    viewer: Viewer,
    page: Page,
    sort: str | None,
    total: int | None,
    root: str,
) -> Response[Any]:
    """A page of entries, the revision it reads, the cursor of the next page (carrying the
    sort, when sorted) and, when counted, the total."""
    carried = [sort, page.next_value] if sort is not None else None
    out: dict[str, Any] = {
        "items": [visible(spec, viewer, d, "page") for d in page.items],
        "revision": page.revision,
        "next": encode_cursor(page.revision, page.next, carried) if page.next else None,
    }
    if total is not None:
        out["total"] = total
    return negotiated(request.scope, out, root)


def history_answer(
    request: Request[Any, Any, Any],
    spec: KindSpec,
    viewer: Viewer,
    versions: list[dict[str, Any]],
    root: str,
) -> Response[Any]:
    """An entry's versions, each document as the caller may see it."""
    items = [v | {"document": visible(spec, viewer, v["document"], "history", v["version"])}
             for v in versions]  # fmt: skip
    return negotiated(request.scope, {"items": items}, root)


def written_answer(
    document: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """A write's answer: the new version, its ETag and revision. Whoever may write an entry
    may see its named persons (an administrator of its owner, an operator): nothing to
    redact, and no consultation to record, since the audit trail names the writer, the
    entry and the version the write made."""
    return Response(
        document,
        status_code=status,
        headers=(headers or {}) | written_headers(document),
    )
