"""Conditional GET for every route with validators: ETag, If-None-Match, 304.

If-None-Match is read the way RFC 9110 §13.1.2 says: a list of entity tags, or
`*` for "any current representation", compared weakly (`W/"7"` matches `"7"`).
The raw header lines are scanned instead of litestar's `Headers`, which costs more
than the whole look-up on `/resolve`.
"""

from __future__ import annotations

from collections.abc import Mapping

from litestar import MediaType
from litestar.response.base import ASGIResponse
from litestar.types import Scope


def _opaque(tag: str) -> str:
    return tag.strip().removeprefix("W/")


def none_match(scope: Scope, tag: str) -> bool:
    """Whether the request's If-None-Match names `tag` (or is `*`)."""
    wanted = _opaque(tag)
    for name, value in scope["headers"]:
        if name.lower() == b"if-none-match":
            for offered in value.decode("latin-1").split(","):
                if offered.strip() == "*" or _opaque(offered) == wanted:
                    return True
    return False


def not_modified(tag: str, headers: Mapping[str, str] | None = None) -> ASGIResponse:
    """304 with the ETag, and the `Vary` the full answer would carry (RFC 9110 15.4.5):
    a cache keeps the JSON and XML forms apart on revalidation too."""
    vary = {k: v for k, v in (headers or {}).items() if k.lower() == "vary"}
    return ASGIResponse(status_code=304, headers={"ETag": tag, **vary})


def conditional(
    scope: Scope,
    tag: str,
    body: bytes,
    media_type: str = MediaType.JSON,
    headers: Mapping[str, str] | None = None,
) -> ASGIResponse:
    """304 when the client holds `tag`; otherwise the body with its ETag."""
    if none_match(scope, tag):
        return not_modified(tag, headers)
    sent = {"ETag": tag, "Cache-Control": "no-cache", **(headers or {})}
    return ASGIResponse(body=body, media_type=media_type, headers=sent)
