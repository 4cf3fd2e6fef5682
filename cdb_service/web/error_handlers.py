"""Turn every error into an RFC 9457 problem: one handler set for the whole app."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from cdb_service.db.faults import DatabaseFault, Fault, FaultKind, classify
from cdb_service.kernel.problems import (
    DATABASE_TIMEOUT,
    DATABASE_UNAVAILABLE,
    MAX_FIELD_ERRORS,
    STORAGE_FULL,
    FieldError,
    Problem,
    internal_error,
    invalid,
    malformed,
    plain,
)
from cdb_service.logging import get_logger
from cdb_service.web.deps import settings_of
from cdb_service.web.negotiation import problem_form
from cdb_service.web.perimeter import SAFE_METHODS

PROBLEM_JSON = "application/problem+json"
log = get_logger("cdb.errors")


def problem_response(problem: Problem, headers: dict[str, str] | None = None,
                     request: Request[Any, Any, Any] | None = None) -> Response[Any]:  # fmt: skip
    """The problem in the form the client prefers (JSON unless it asks for XML)."""
    media_type, body = problem_form(request.scope if request is not None else None, problem)
    return Response(
        content=body,
        status_code=problem.status,
        media_type=media_type,
        headers=problem.headers | (headers or {}),
    )


def on_problem(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, Problem)
    return problem_response(exc, request=request)


def on_validation(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
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
            return problem_response(invalid(
                [FieldError(("body",), "the request body is empty")],
                "the request body is empty; send a JSON document (Content-Type: application/json)",
            ), request=request)  # fmt: skip
        if source == "body" and not key and msg.startswith("Input should be a valid dict"):
            msg = "the request body must be a JSON object"
        if source == "body" and key not in ("", "request"):
            loc = tuple(_index_or_name(p) for p in key.split(".") if p != "[key]")
            body_errors.append(FieldError(loc, msg))
        else:
            other_errors.append(FieldError((source, key) if key else (source,), msg))
    if body_errors and not other_errors:
        return problem_response(invalid(body_errors), request=request)
    errors = (other_errors + body_errors)[:MAX_FIELD_ERRORS]
    detail = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors[:5])
    return problem_response(malformed(detail or str(exc.detail), *errors), request=request)


def _index_or_name(part: str) -> str | int:
    # ASCII digits only: a key such as "¹" is a digit to str.isdigit() but not to int().
    return int(part) if part.isascii() and part.isdigit() else part[:100]


def on_recursion(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Raised while parsing input nested deeper than any document of ours."""
    return problem_response(malformed("the JSON is nested too deeply"), request=request)


def on_http(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    return problem_response(plain(exc.status_code, str(exc.detail)), headers, request)


DEFAULT_RETRY_AFTER_S = 5
_FAULT_TYPES = {
    FaultKind.UNAVAILABLE: DATABASE_UNAVAILABLE,
    FaultKind.TIMEOUT: DATABASE_TIMEOUT,
    FaultKind.STORAGE_FULL: STORAGE_FULL,
}
_FAULT_TITLES = {
    FaultKind.UNAVAILABLE: "the database cannot be reached",
    FaultKind.TIMEOUT: "the database did not answer within the service's time budget",
    FaultKind.STORAGE_FULL: "the database's storage is full",
}


def unavailable(
    request: Request[Any, Any, Any], fault: Fault, maybe_applied: bool | None
) -> Problem:
    """The 503 for a database fault, telling a writer whether to worry about a retry.

    `maybe_applied`: False — the write certainly did not happen; True — it may have
    (the fault struck during COMMIT); None — the request was not a write at all.
    """
    retry_after = _retry_after(request)
    extra: dict[str, Any] = {"reason": fault.kind.value, "retry_after_s": retry_after}
    detail = f"{_FAULT_TITLES[fault.kind]}; try again in {retry_after} s."
    if maybe_applied is not None:
        extra["write"] = "may-have-applied" if maybe_applied else "not-applied"
        if maybe_applied:
            detail += (" The write may have been applied: read the entry (or the change feed) "
                       "before repeating it, or repeat it with the same Idempotency-Key, which "
                       "returns the first result instead of a duplicate.")  # fmt: skip
        else:
            detail += " The write was not applied; it is safe to repeat it."
    return _FAULT_TYPES[fault.kind](detail, extra=extra, headers={"Retry-After": str(retry_after)})


def _retry_after(request: Request[Any, Any, Any]) -> int:
    settings = settings_of(request.scope)
    return settings.retry_after_s if settings is not None else DEFAULT_RETRY_AFTER_S


def on_database_fault(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, DatabaseFault)
    log.warning("database fault in a write", path=request.url.path, fault=exc.fault.kind.value,
                reason=exc.fault.reason, maybe_applied=exc.maybe_applied)  # fmt: skip
    return problem_response(unavailable(request, exc.fault, exc.maybe_applied), request=request)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    fault = classify(exc)
    if fault is not None:
        # Outside a unit of work nobody tracked whether a commit was under way: a write
        # request is told it may have applied (the safe assumption), a read nothing.
        write = None if request.method in SAFE_METHODS else True
        log.warning("database fault", path=request.url.path, fault=fault.kind.value,
                    reason=fault.reason)  # fmt: skip
        return problem_response(unavailable(request, fault, write), request=request)
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return problem_response(internal_error(), request=request)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    Problem: on_problem,
    DatabaseFault: on_database_fault,
    ValidationException: on_validation,
    HTTPException: on_http,
    RecursionError: on_recursion,
    Exception: on_unexpected,
}

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_JSON", "MediaType", "problem_response"]
