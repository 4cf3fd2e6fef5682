"""Turn every error into an RFC 9457 problem: one handler set for the whole app."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from cdb_service.logging import get_logger
from cdb_service.problems import FieldError, Problem

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
    assert isinstance(exc, ValidationException)
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            key = item.get("key") or item.get("source") or "request"
            errors.append(
                FieldError((str(item.get("source", "")), str(key)), str(item.get("message")))
            )
    status = 400
    return problem_response(
        Problem(status, "Malformed request", str(exc.detail), "malformed-request", errors)
    )


def on_http(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, HTTPException)
    titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized", 403: "Forbidden"}
    title = titles.get(exc.status_code, "Request failed")
    headers = dict(exc.headers or {})
    return problem_response(Problem(exc.status_code, title, str(exc.detail)), headers)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
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
