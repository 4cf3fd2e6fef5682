"""OpenAPI documentation pieces shared by every controller."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from litestar.enums import ParamType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.openapi.spec import Parameter as OpenAPIParameter
from pydantic import BaseModel, Field

from cdb_service.kernel.problems import catalogue_text


class FieldErrorDoc(BaseModel):
    loc: list[str | int] = Field(description="where: body fields, query.x or header.x")
    msg: str = Field(description="what is wrong with it")
    type: str = Field(description="the kind of error, as a code")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    # The catalogue of problem types, stated once, from the one place that builds them.
    type: str = Field(description=catalogue_text())
    title: str = Field(description="its short summary")
    status: int = Field(description="the HTTP status code")
    detail: str = Field(description="what happened in this request, in a sentence")
    errors: list[FieldErrorDoc] | None = Field(
        default=None, description="each field at fault (422, 400)"
    )


_TEXT = {
    400: "Malformed request (unreadable body, bad query parameter)",
    401: "No or bad credentials: client certificate, bearer token or binding",
    403: "Authenticated, but not allowed",
    404: "No such entry (or not at that revision)",
    406: "None of the media types the request accepts is offered (see this answer's forms)",
    409: "Conflict: a duplicate natural key, or entries still refer to it",
    410: "That revision is no longer retained",
    412: "If-Match names a version that is no longer current",
    413: "The body is larger than this route accepts",
    414: "The path or the query string is longer than the service reads",
    415: "Unsupported media type (the body is not in a format this route reads)",
    422: "Invalid content; `errors` names each field (`min_revision` after the head included)",
    428: "If-Match is required",
    429: "Too many requests from this client; `Retry-After` says when to come back",
    503: "Not ready, busy, or the database is unavailable; `Retry-After` says when to come back",
}
# What any route behind the perimeter and the gate may answer, whatever it does: a bad or
# too long request line (perimeter), no or bad credentials and a rate limit (gate), a role
# missing (role guard), a database fault (error handlers).
GATED = (400, 401, 403, 414, 429, 503)


def problem_answers(*statuses: int) -> dict[int, Any]:
    """Exactly these problem answers (a route outside the gate: `/metrics`)."""
    return {
        status: ResponseSpec(
            data_container=ProblemDetails,
            description=_TEXT[status],
            media_type="application/problem+json",
            generate_examples=False,
        )
        for status in sorted(set(statuses))
    }


def problems(*statuses: int) -> dict[int, Any]:
    """The problems a route under `/api` answers: its own and those of every gated route.
    (400 always: the perimeter refuses malformed query strings on every route, and it
    replaces litestar's own 400, a schema that is not what the service sends.)"""
    return problem_answers(*GATED, *statuses)


NOT_MODIFIED = {
    304: ResponseSpec(
        data_container=None, description="Unchanged: `If-None-Match` names the current ETag"
    )
}


def answer(model: Any, description: str = "OK", status: int = 200,
           media_type: str = "application/json") -> dict[int, Any]:  # fmt: skip
    """The success answer's schema, for handlers that build their body themselves (a
    `Response` of a dict, pre-encoded bytes): litestar cannot read it from the signature."""
    return {
        status: ResponseSpec(
            data_container=model,
            description=description,
            media_type=media_type,
            generate_examples=False,
        )
    }


@dataclass(frozen=True)
class ParameterDoc:
    """A parameter a handler reads itself (a kind's filters, If-Match), declared for clients."""

    name: str
    description: str
    format: OpenAPIFormat | None = None
    where: ParamType = ParamType.QUERY
    required: bool = False
    enum: tuple[str, ...] = ()  # the values a code-list parameter takes


IF_NONE_MATCH = ParameterDoc(
    "If-None-Match",
    "an ETag you hold (or `*`): 304 without a body while it is still current",
    where=ParamType.HEADER,
)

XML_ALTERNATIVE = (
    "The same answer as XML (`Accept: application/xml`), valid against the service's XSD "
    "(`/api/v1/schemas/cdb.xsd`); the root element is `{root}`."
)
PROBLEM_XML_ALTERNATIVE = (
    "RFC 9457's XML form (`Accept: application/xml`), namespace urn:ietf:rfc:7807."
)


def operation(*, parameters: Sequence[ParameterDoc] = (), body: Mapping[str, Schema] | None = None,
              xml_root: str | None = None,
              forms: Mapping[str, Schema] | None = None) -> type[Operation]:  # fmt: skip
    """An `Operation` that adds what litestar cannot see in a signature: query and header
    parameters read from the request, a request body read raw, the XML form of
    negotiated answers beside their JSON form, and the other media types a `format=`
    parameter chooses (`forms`, added to the 200 answer)."""

    @dataclass
    class Documented(Operation):
        # Read by web.xml_schema: the root element this route's XML answers carry.
        xml_element: ClassVar[str | None] = xml_root

        def __post_init__(self) -> None:
            extra = [
                OpenAPIParameter(name=q.name, param_in=q.where, required=q.required,
                                 description=q.description,
                                 schema=Schema(type=OpenAPIType.STRING, format=q.format,
                                               enum=list(q.enum) or None))
                for q in parameters
            ]  # fmt: skip
            if extra:
                self.parameters = [*(self.parameters or []), *extra]
            if body is not None:
                self.request_body = RequestBody(
                    content={media: OpenAPIMediaType(schema=s) for media, s in body.items()},
                    required=True,
                )
            answered = (self.responses or {}).get("200")
            content = getattr(answered, "content", None)
            if forms and content is not None:
                # litestar's placeholder for a handler that returns bytes: the forms say more.
                content.pop("application/octet-stream", None)
                content.update({media: OpenAPIMediaType(schema=s) for media, s in forms.items()})
            if xml_root is None:
                return
            for status, response in (self.responses or {}).items():
                content = getattr(response, "content", None)
                if not content:
                    continue
                if status.startswith("2") and "application/json" in content:
                    text = XML_ALTERNATIVE.format(root=xml_root)
                    content["application/xml"] = OpenAPIMediaType(
                        schema=Schema(type=OpenAPIType.STRING, description=text)
                    )
                elif "application/problem+json" in content:
                    content["application/problem+xml"] = OpenAPIMediaType(
                        schema=Schema(type=OpenAPIType.STRING,
                                      description=PROBLEM_XML_ALTERNATIVE)
                    )  # fmt: skip

    return Documented
