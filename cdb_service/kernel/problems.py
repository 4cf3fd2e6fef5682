"""Errors that carry their own RFC 9457 problem: one mechanism for every layer.

The service layer raises these; the HTTP layer turns any of them into
`application/problem+json` without knowing which one it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROBLEM_BASE = "https://cdb.judex.europa.eu/problems/"


@dataclass(frozen=True)
class FieldError:
    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


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
        return body | self.extra


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
    return Problem(422, "Invalid content", detail, "invalid-content", shown, extra=extra)


def not_found(kind: str, key: object) -> Problem:
    return Problem(404, "Not found", f"no {kind} entry {key}", "not-found")


def conflict(detail: str, **extra: Any) -> Problem:
    return Problem(409, "Conflict", detail, "conflict", extra=extra)


def stale(expected: int, actual: int) -> Problem:
    return Problem(
        412,
        "Precondition failed",
        f"the entry is at version {actual}; you sent If-Match for version {expected}."
        " Read it again and re-apply your change.",
        "stale-version",
        extra={"current_version": actual},
    )
