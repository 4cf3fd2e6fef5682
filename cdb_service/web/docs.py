"""OpenAPI documentation pieces shared by every controller."""

from typing import Any

from litestar.openapi.datastructures import ResponseSpec
from pydantic import BaseModel, Field


class FieldErrorDoc(BaseModel):
    loc: list[str | int] = Field(description="where: body fields, query.x or header.x")
    msg: str
    type: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldErrorDoc] | None = None


_TEXT = {
    400: "Malformed request (unreadable body, bad query parameter)",
    401: "No or bad credentials: client certificate, bearer token or binding",
    403: "Authenticated, but not allowed",
    404: "No such entry (or not at that revision)",
    409: "Conflict: a duplicate natural key, or entries still refer to it",
    410: "That revision is no longer retained",
    412: "If-Match names a version that is no longer current",
    413: "The body is larger than this route accepts",
    422: "Invalid content; `errors` names each field",
    428: "If-Match is required",
    429: "Too many requests from this client; `Retry-After` says when to come back",
    503: "Not ready, or busy; `Retry-After` says when to come back",
}


def problems(*statuses: int) -> dict[int, Any]:
    return {
        status: ResponseSpec(
            data_container=ProblemDetails,
            description=_TEXT[status],
            media_type="application/problem+json",
            generate_examples=False,
        )
        for status in (401, 403, *statuses)
    }
