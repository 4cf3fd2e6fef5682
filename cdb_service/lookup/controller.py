"""`GET /api/v1/resolve…`: who is competent and where to send, for every outgoing message."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response.base import ASGIResponse
from litestar.serialization import encode_json

from cdb_service.db.revisions import MAX_REVISION
from cdb_service.kernel import codes
from cdb_service.kernel.calendar import today
from cdb_service.kernel.geo import normalise_geo_code, normalise_postal_code
from cdb_service.kernel.problems import FieldError, Problem, invalid, not_found
from cdb_service.lookup import answers, resolver
from cdb_service.lookup.deps import lookup_of
from cdb_service.lookup.index import IndexFollower, LookupIndex
from cdb_service.registry.reads import EntryReads
from cdb_service.settings import Settings
from cdb_service.web.consistency import MIN_REVISION_DOC, require_revision
from cdb_service.web.deps import component
from cdb_service.web.docs import NOT_MODIFIED, answer, operation, problems
from cdb_service.web.negotiation import negotiated_bytes


def _etag(index: LookupIndex, day: dt.date) -> str:
    """Everything an answer depends on beyond its URL: the registry revision, the
    gazetteer (a load moves no revision), how many certificates have expired by now
    (answers flag them), and the day asked about (validity)."""
    expired = index.expired_count(dt.datetime.now(dt.UTC).isoformat())
    return f'"{index.revision}:{index.gazetteer.identity}:{expired}:{day.isoformat()}"'


def _index(lookup: IndexFollower) -> LookupIndex:
    index = lookup.index
    if index is None:
        raise Problem(503, "Not ready", "the lookup data is still loading", "not-ready")
    return index


async def _reach(request: Request[Any, Any, Any], lookup: IndexFollower,
                 min_revision: int | None) -> None:  # fmt: skip
    """Hold the answer until this worker's index has applied `min_revision` (bounded)."""
    if min_revision is None:
        return
    settings: Settings = component(request.scope, "settings")
    reads: EntryReads = component(request.scope, "reads")
    await require_revision(min_revision, reads.head, settings.min_revision_wait_s,
                           settings.retry_after_s, lookup.reached)  # fmt: skip


def _code(errors: list[FieldError], name: str, value: str | None, code_list: str,
          hint: str = "") -> str:  # fmt: skip
    if value is None:
        errors.append(FieldError(("query", name), "is required"))
        return ""
    values = codes.CODE_LISTS[code_list]
    if value not in values:
        errors.append(FieldError(("query", name), codes.unknown_code(value, code_list, values,
                                                                     hint)))  # fmt: skip
    return value


def build_query(country: str | None, instrument: str | None, competence: str | None,
                postal_code: str | None, lau: str | None, nuts: str | None,
                subject_matter: str | None, stage: str | None,
                date: dt.date | None) -> resolver.Query:  # fmt: skip
    errors: list[FieldError] = []
    cc = _code(errors, "country", country.upper() if country else None, "countries",
               "; Greece is EL")  # fmt: skip
    _code(errors, "instrument", instrument, "instruments")
    _code(errors, "competence", competence, "competences")
    if subject_matter is not None:
        _code(errors, "subject_matter", subject_matter, "subject-matters")
    if stage is not None:
        _code(errors, "stage", stage, "stages")
    normalised: dict[str, str | None] = {"postal_code": None, "lau": None, "nuts": None}
    if cc in codes.COUNTRIES:
        for name, value in (("postal_code", postal_code), ("lau", lau), ("nuts", nuts)):
            if value is None:
                continue
            try:
                if name == "postal_code":
                    normalised[name] = normalise_postal_code(cc, value)
                elif name == "lau":
                    normalised[name] = normalise_geo_code(cc, "lau", value)
                else:
                    level = len(value.strip()) - 2
                    if level not in (1, 2, 3):
                        raise ValueError(f"{value!r} is not a NUTS 1, 2 or 3 code of {cc}")
                    normalised[name] = normalise_geo_code(cc, f"nuts{level}", value)
            except ValueError as error:
                errors.append(FieldError(("query", name), str(error)))
    if errors:
        raise invalid(errors)
    return resolver.Query(
        country=cc,
        instrument=str(instrument),
        competence=str(competence),
        date=date or today(),
        subject_matter=subject_matter,
        stage=stage,
        **normalised,
    )


class ResolveController(Controller):
    path = "/resolve"
    tags = ["resolve"]  # noqa: RUF012

    @get(
        "/",
        summary="The competent authorities for a message, ranked, with routing",
        responses=problems(406, 422, 503) | answer(answers.Resolution) | NOT_MODIFIED,
        operation_class=operation(xml_root="resolve-answer"),
    )
    async def resolve(
        self,
        request: Request[Any, Any, Any],
        country: str | None = None,
        instrument: str | None = None,
        competence: str | None = None,
        postal_code: str | None = None,
        lau: str | None = None,
        nuts: str | None = None,
        subject_matter: str | None = None,
        stage: str | None = None,
        date: dt.date | None = Parameter(default=None, description="default: today in Brussels"),
        min_revision: int | None = Parameter(
            default=None, ge=0, le=MAX_REVISION, description=MIN_REVISION_DOC
        ),
    ) -> ASGIResponse:
        query = build_query(
            country, instrument, competence, postal_code, lau, nuts, subject_matter, stage, date
        )
        lookup = lookup_of(request.scope)  # the hottest route: see web.deps.component
        await _reach(request, lookup, min_revision)
        index = _index(lookup)
        body = lookup.answer(
            index, ("resolve", query), lambda: encode_json(resolver.resolve(index, query))
        )
        return negotiated_bytes(request.scope, _etag(index, query.date), body, "resolve-answer")

    @get(
        "/recipient/{code:str}",
        summary="The authority behind a finalRecipient / originalSender",
        responses=problems(404, 406, 422, 503) | answer(answers.Recipient) | NOT_MODIFIED,
        operation_class=operation(xml_root="recipient-answer"),
    )
    async def recipient(
        self,
        code: str,
        request: Request[Any, Any, Any],
        lookup: NamedDependency[IndexFollower],
        date: dt.date | None = None,
        min_revision: int | None = Parameter(
            default=None, ge=0, le=MAX_REVISION, description=MIN_REVISION_DOC
        ),
    ) -> ASGIResponse:
        await _reach(request, lookup, min_revision)
        index = _index(lookup)
        day = date or today()
        body = resolver.recipient(index, code, day)
        if body is None:
            raise not_found("authorities", f"with code {code!r}")
        return negotiated_bytes(
            request.scope, _etag(index, day), encode_json(body), "recipient-answer"
        )

    @get(
        "/national-member",
        summary="The national desk at Eurojust for a member state",
        responses=problems(406, 422, 503) | answer(answers.NationalDesk) | NOT_MODIFIED,
        operation_class=operation(xml_root="national-member-answer"),
    )
    async def national_member(
        self,
        request: Request[Any, Any, Any],
        lookup: NamedDependency[IndexFollower],
        country: str | None = None,
        date: dt.date | None = None,
        min_revision: int | None = Parameter(
            default=None, ge=0, le=MAX_REVISION, description=MIN_REVISION_DOC
        ),
    ) -> ASGIResponse:
        await _reach(request, lookup, min_revision)
        errors: list[FieldError] = []
        cc = _code(errors, "country", country.upper() if country else None, "countries")
        if errors:
            raise invalid(errors)
        index = _index(lookup)
        day = date or today()
        body = resolver.national_members(index, cc, day)
        return negotiated_bytes(
            request.scope, _etag(index, day), encode_json(body), "national-member-answer"
        )
