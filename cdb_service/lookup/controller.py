"""`GET /api/v1/resolve…`: who is competent and where to send, for every outgoing message.

What a query is (its parameters, their checks, the ETag's inputs) is `lookup/query.py`'s;
the handlers read it from the request, wait for `min_revision` and answer.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response.base import ASGIResponse
from litestar.serialization import encode_json

from cdb_service.db.revisions import MAX_REVISION
from cdb_service.kernel.owners import DEFAULT
from cdb_service.kernel.problems import not_found, not_ready
from cdb_service.lookup import answers, query, resolver
from cdb_service.lookup.follower import IndexFollower
from cdb_service.lookup.index import LookupIndex
from cdb_service.web.consistency import MIN_REVISION_DOC, ReadYourWrites
from cdb_service.web.docs import NOT_MODIFIED, answer, operation, problems
from cdb_service.web.negotiation import negotiated_bytes


def _index(lookup: IndexFollower) -> LookupIndex:
    index = lookup.index
    if index is None:
        raise not_ready()
    return index


# Every look-up may wait for a revision the client has seen (`web/consistency.py`).
MinRevision = Annotated[int | None, Parameter(ge=0, le=MAX_REVISION, description=MIN_REVISION_DOC)]


class ResolveController(Controller):
    path = "/resolve"
    tags = ["resolve"]  # noqa: RUF012

    @get(
        "/",
        summary="The competent authorities for a message, ranked, with routing",
        responses=problems(406, 422, 503) | answer(answers.Resolution) | NOT_MODIFIED,
        operation_class=operation(parameters=query.docs(query.RESOLVE), xml_root="resolve-answer"),
    )
    async def resolve(
        self,
        request: Request[Any, Any, Any],
        lookup: NamedDependency[IndexFollower],
        read_your_writes: NamedDependency[ReadYourWrites],
        min_revision: MinRevision = None,
    ) -> ASGIResponse:
        # The index first (with `min_revision`, the one that has the caller's write): the
        # states asked about include the third countries registered up to its revision.
        await read_your_writes.require(min_revision, lookup.reached)
        index = lookup.index
        asked = query.resolve_query(query.given(request.query_params),
                                    index.owners if index is not None else DEFAULT)  # fmt: skip
        index = _index(lookup)
        body = lookup.answer(
            index, ("resolve", asked), lambda: encode_json(resolver.resolve(index, asked))
        )
        return negotiated_bytes(request.scope, query.etag(index, asked.date), body,
                                "resolve-answer")  # fmt: skip

    @get(
        "/recipient/{code:str}",
        summary="The authority behind a finalRecipient / originalSender",
        responses=problems(404, 406, 422, 503) | answer(answers.Recipient) | NOT_MODIFIED,
        operation_class=operation(
            parameters=query.docs(query.RECIPIENT), xml_root="recipient-answer"
        ),
    )
    async def recipient(
        self,
        request: Request[Any, Any, Any],
        lookup: NamedDependency[IndexFollower],
        read_your_writes: NamedDependency[ReadYourWrites],
        code: str = Parameter(description=query.RECIPIENT_CODE_DOC),
        min_revision: MinRevision = None,
    ) -> ASGIResponse:
        day = query.day_of(query.given(request.query_params))
        await read_your_writes.require(min_revision, lookup.reached)
        index = _index(lookup)
        body = resolver.recipient(index, code, day)
        if body is None:
            raise not_found("authorities", f"with code {code!r}")
        return negotiated_bytes(
            request.scope, query.etag(index, day), encode_json(body), "recipient-answer"
        )

    @get(
        "/national-member",
        summary="The national desk at Eurojust for a member state",
        responses=problems(406, 422, 503) | answer(answers.NationalDesk) | NOT_MODIFIED,
        operation_class=operation(
            parameters=query.docs(query.NATIONAL_MEMBER), xml_root="national-member-answer"
        ),
    )
    async def national_member(
        self,
        request: Request[Any, Any, Any],
        lookup: NamedDependency[IndexFollower],
        read_your_writes: NamedDependency[ReadYourWrites],
        min_revision: MinRevision = None,
    ) -> ASGIResponse:
        await read_your_writes.require(min_revision, lookup.reached)
        country, day = query.desk_query(query.given(request.query_params))
        index = _index(lookup)
        body = resolver.national_members(index, country, day)
        return negotiated_bytes(
            request.scope, query.etag(index, day), encode_json(body), "national-member-answer"
        )
