"""Errors that carry their own RFC 9457 problem: one mechanism for every layer, one
catalogue of problem types.

The service layer raises these; the HTTP layer turns any of them into
`application/problem+json` without knowing which one it is. Each problem type (its
status, `type` URI and title) is declared once below, in `CATALOGUE`; call sites build
a problem through its type or a named builder, never by spelling the triple again, and
the OpenAPI document lists the same catalogue under each status it declares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from cdb_service.kernel.text import carriable

PROBLEM_BASE = "https://cdb.judex.europa.eu/problems/"


@dataclass(frozen=True)
class FieldError:
    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"
    # The entry a batch error concerns ("authorities DE:COURT-1"), where a batch line
    # number alone would send the administrator hunting through the file.
    entry: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"loc": list(self.loc), "msg": self.msg, "type": self.type}
        return out | {"entry": self.entry} if self.entry else out


@dataclass
class Problem(Exception):
    status: int
    title: str
    detail: str = ""
    slug: str = "about:blank"
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail or self.title)

    @property
    def type(self) -> str:
        return self.slug if self.slug == "about:blank" else PROBLEM_BASE + self.slug

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail or self.title,
        }
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        # A problem often quotes the client's input: hostile text must not make it
        # unencodable (JSON has no lone surrogates, XML no NUL).
        return cast(dict[str, Any], carriable(body | self.extra))


@dataclass(frozen=True)
class ProblemType:
    """One kind of refusal: what a client may branch on (`type`), with its status and
    title. Calling it builds the problem with this occasion's detail."""

    slug: str
    status: int
    title: str
    # What it means and what the client does about it (the contract's text).
    description: str

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def __call__(
        self,
        detail: str = "",
        errors: Sequence[FieldError] = (),
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Problem:
        return Problem(self.status, self.title, detail, self.slug, list(errors),
                       extra=extra or {}, headers=headers or {})  # fmt: skip


MALFORMED = ProblemType(
    "malformed-request", 400, "Malformed request",
    "the request cannot be read: an unknown or unreadable query parameter, a body that is "
    "not JSON, a cursor this service did not give out",
)  # fmt: skip
UNAUTHORIZED = ProblemType(
    "unauthorized", 401, "Unauthorized",
    "no or bad credentials (client certificate, bearer token, or their binding); "
    "`WWW-Authenticate` says which",
)  # fmt: skip
FORBIDDEN = ProblemType(
    "forbidden", 403, "Forbidden", "authenticated, but this caller may not do this"
)
CSRF = ProblemType(
    "csrf", 403, "Forbidden",
    "a console form that was not sent from the console's own page (missing or old token)",
)  # fmt: skip
NOT_FOUND = ProblemType("not-found", 404, "Not found", "no such entry (or not at that revision)")
NOT_ACCEPTABLE = ProblemType(
    "not-acceptable", 406, "Not acceptable",
    "none of the media types the request accepts is offered (JSON, XML)",
)  # fmt: skip
CONFLICT = ProblemType(
    "conflict", 409, "Conflict",
    "a duplicate natural key, another owner's key, or entries that still refer to the entry",
)  # fmt: skip
REVISION_GONE = ProblemType(
    "revision-gone", 410, "Gone",
    "the revision is older than the change feed keeps: take a fresh extract",
)  # fmt: skip
STALE_VERSION = ProblemType(
    "stale-version", 412, "Precondition failed",
    "If-Match names a version that is no longer current: read the entry again",
)  # fmt: skip
URI_TOO_LONG = ProblemType(
    "uri-too-long", 414, "URI too long", "the path or the query string is longer than accepted"
)
CONTENT_TOO_LARGE = ProblemType(
    "content-too-large", 413, "Content too large",
    "the body is within the size accepted, but reading it would cost more than a request may: "
    "a workbook that unpacks to too many bytes, rows, cells or strings, a cell too long, or "
    "more time than the read budget; split it",
)  # fmt: skip
REQUEST_TIMEOUT = ProblemType(
    "request-timeout", 408, "Request timeout",
    "the request's headers did not arrive in time; the connection is closed",
)  # fmt: skip
HEADERS_TOO_LARGE = ProblemType(
    "headers-too-large", 431, "Request header fields too large",
    "the request's headers are more, or longer, than accepted; the connection is closed",
)  # fmt: skip
UNSUPPORTED_MEDIA_TYPE = ProblemType(
    "unsupported-media-type", 415, "Unsupported media type",
    "the body is not in a format this route reads",
)  # fmt: skip
INVALID_CONTENT = ProblemType(
    "invalid-content", 422, "Invalid content",
    "the request was read, but its content is not valid; `errors` names each field",
)  # fmt: skip
PRECONDITION_REQUIRED = ProblemType(
    "precondition-required", 428, "Precondition required",
    "a change needs If-Match with the ETag the client read",
)  # fmt: skip
RATE_LIMITED = ProblemType(
    "rate-limited", 429, "Too many requests",
    "this client sent more than it may; `Retry-After` says when to come back",
)  # fmt: skip
NOT_READY = ProblemType(
    "not-ready", 503, "Not ready",
    "this instance is not ready: its lookup data is still loading, or it is stopping; "
    "`Retry-After` says when to come back",
)  # fmt: skip
BUSY = ProblemType(
    "busy", 503, "Busy",
    "the service already runs as many of these as it may; `Retry-After` says when to come back",
)  # fmt: skip
REVISION_NOT_REACHED = ProblemType(
    "revision-not-reached", 503, "Service unavailable",
    "this server has not reached `min_revision` yet; `Retry-After` says when to come back",
)  # fmt: skip
DATABASE_UNAVAILABLE = ProblemType(
    "database-unavailable", 503, "Service unavailable",
    "the database cannot be reached; `write` says whether a write may have been applied",
)  # fmt: skip
DATABASE_TIMEOUT = ProblemType(
    "database-timeout", 503, "Service unavailable",
    "the database did not answer in time; `write` says whether a write may have been applied",
)  # fmt: skip
STORAGE_FULL = ProblemType(
    "storage-full", 503, "Service unavailable",
    "the database's storage is full; `write` says whether a write may have been applied",
)  # fmt: skip

# Every type the service answers with, by status: what the OpenAPI document lists.
CATALOGUE: tuple[ProblemType, ...] = (
    MALFORMED, UNAUTHORIZED, FORBIDDEN, CSRF, NOT_FOUND, NOT_ACCEPTABLE, REQUEST_TIMEOUT,
    CONFLICT, REVISION_GONE, STALE_VERSION, URI_TOO_LONG, CONTENT_TOO_LARGE,
    HEADERS_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, INVALID_CONTENT,
    PRECONDITION_REQUIRED, RATE_LIMITED, NOT_READY, BUSY, REVISION_NOT_REACHED,
    DATABASE_UNAVAILABLE, DATABASE_TIMEOUT, STORAGE_FULL,
)  # fmt: skip


def catalogue_text() -> str:
    """The catalogue as the contract states it once (the problem schema's `type`)."""
    return (
        "The problem type, a URI a client may branch on (`about:blank` where the framework "
        "refuses by itself: no such route, a method not allowed, a body too large). "
        "The service's types, by status:\n"
        + "".join(f"\n- {t.status} `{t.type}` ({t.title}): {t.description}" for t in CATALOGUE)
    )


# What the framework answers by itself (no route, a body too large, a method not
# allowed) has no type of ours: `about:blank`, titled by its status.
_PLAIN_TITLES = {400: MALFORMED.title, 401: UNAUTHORIZED.title, 403: FORBIDDEN.title,
                 404: NOT_FOUND.title, 405: "Method not allowed",
                 413: "Request too large"}  # fmt: skip


def plain(status: int, detail: str) -> Problem:
    return Problem(status, _PLAIN_TITLES.get(status, "Request failed"), detail)


# A refusal lists this many field errors at most, and says how many there were: a
# body with 200,000 bad values gets a short answer, not one larger than the body.
MAX_FIELD_ERRORS = 100
_IN_DETAIL = 5


def invalid(errors: list[FieldError], detail: str = "") -> Problem:
    shown = errors[:MAX_FIELD_ERRORS]
    if not detail:
        detail = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors[:_IN_DETAIL])
        if len(errors) > _IN_DETAIL:
            detail += f"; and {len(errors) - _IN_DETAIL} more (see errors)"
    extra = {"errors_total": len(errors)} if len(errors) > len(shown) else {}
    return INVALID_CONTENT(detail, shown, extra=extra)


def malformed(detail: str, *errors: FieldError) -> Problem:
    return MALFORMED(detail, errors)


def bad_parameters(errors: list[FieldError]) -> Problem:
    """Query parameters a route does not take, or cannot read: each named."""
    return MALFORMED("; ".join(f"{e.loc[1]}: {e.msg}" for e in errors), errors)


def unknown_cursor() -> Problem:
    return MALFORMED("the cursor is not one this service gave out",
                     [FieldError(("query", "cursor"), "unknown cursor")])  # fmt: skip


def not_found(kind: str, key: object) -> Problem:
    return NOT_FOUND(f"no {kind} entry {key}")


def conflict(detail: str, **extra: Any) -> Problem:
    return CONFLICT(detail, extra=extra)


def stale(expected: int, actual: int) -> Problem:
    return STALE_VERSION(
        f"the entry is at version {actual}; you sent If-Match for version {expected}."
        " Read it again and re-apply your change.",
        extra={"current_version": actual},
    )


def not_ready(retry_after_s: int = 5) -> Problem:
    """The lookup index is still being built: a client is told when to come back, as
    every other 503 tells it."""
    return NOT_READY("the lookup data is still loading",
                     headers={"Retry-After": str(retry_after_s)})  # fmt: skip


def internal_error() -> Problem:
    return Problem(500, "Internal error", "the server failed; the request id names it in the logs")
