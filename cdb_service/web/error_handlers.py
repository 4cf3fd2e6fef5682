"""Turn every error into an RFC 9457 problem: one handler set for the whole app."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from cdb_service.db.outage import database_unavailable
from cdb_service.kernel.problems import FieldError, Problem, invalid
from cdb_service.logging import get_logger

PROBLEM_JSON = "application/problem+json"
log = get_logger("cdb.errors")


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=problem.as_dict(),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers | (headers or {}),
    )


def on_problem(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, Problem)
    return problem_response(exc)


def on_validation(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Litestar's validation errors: content errors in a body are 422, the rest 400."""
    assert isinstance(exc, ValidationException)
    body_errors: list[FieldError] = []
    other_errors: list[FieldError] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        source = str(getattr(item.get("source"), "value", item.get("source") or "body"))
        key = str(item.get("key") or "")
        msg = str(item.get("message", "")).removeprefix("Value error, ")
        if source == "body" and key == "data" and msg == "'data'":
            # What litestar reports when there is no body at all.
            return problem_response(Problem(
                422, "Invalid content", "the request body is empty; send a JSON document "
                "(Content-Type: application/json)", "invalid-content",
                [FieldError(("body",), "the request body is empty")]))  # fmt: skip
        if source == "body" and not key and msg.startswith("Input should be a valid dict"):
            msg = "the request body must be a JSON object"
        if source == "body" and key not in ("", "request"):
            loc = tuple(int(p) if p.isdigit() else p for p in key.split(".") if p != "[key]")
            body_errors.append(FieldError(loc, msg))
        else:
            other_errors.append(FieldError((source, key) if key else (source,), msg))
    if body_errors and not other_errors:
        return problem_response(invalid(body_errors))
    errors = other_errors + body_errors
    detail = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors) or str(exc.detail)
    return problem_response(Problem(400, "Malformed request", detail, "malformed-request", errors))


def on_http(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, HTTPException)
    titles = {400: "Malformed request", 404: "Not found", 405: "Method not allowed",
              401: "Unauthorized", 403: "Forbidden", 413: "Request too large"}  # fmt: skip
    title = titles.get(exc.status_code, "Request failed")
    headers = dict(exc.headers or {})
    return problem_response(Problem(exc.status_code, title, str(exc.detail)), headers)


# How long a client should wait before retrying a write during a failover.
RETRY_AFTER_S = 5


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if database_unavailable(exc):
        log.warning("database unavailable", path=request.url.path, error=repr(exc))
        return problem_response(Problem(
            503, "Service unavailable", "the registry database cannot be reached (a failover "
            "may be under way); if this was a write, it was applied whole or not at all: retry "
            "with the same Idempotency-Key and you get its one result",
            headers={"Retry-After": str(RETRY_AFTER_S)}))  # fmt: skip
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return problem_response(
        Problem(500, "Internal error", "the server failed; the request id names it in the logs")
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    Problem: on_problem,
    ValidationException: on_validation,
    HTTPException: on_http,
    Exception: on_unexpected,
}

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_JSON", "MediaType", "problem_response"]
