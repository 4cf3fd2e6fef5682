"""`GET /api/v1/resolve…`: who is competent and where to send, for every outgoing message."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Controller, MediaType, Request, get
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response.base import ASGIResponse
from litestar.serialization import encode_json

from cdb_service.kernel import codes
from cdb_service.kernel.geo import normalise_geo_code, normalise_postal_code
from cdb_service.kernel.problems import FieldError, Problem, invalid, not_found
from cdb_service.lookup import resolver
from cdb_service.lookup.index import LookupIndex
from cdb_service.runtime import Runtime
from cdb_service.web.docs import problems

BRUSSELS = ZoneInfo("Europe/Brussels")


def today() -> dt.date:
    return dt.datetime.now(BRUSSELS).date()


def _index(runtime: Runtime) -> LookupIndex:
    index = runtime.lookup.index
    if index is None:
        raise Problem(503, "Not ready", "the lookup data is still loading", "not-ready")
    return index


def _code(
    errors: list[FieldError], name: str, value: str | None, allowed: Any, hint: str = ""
) -> str:
    if value is None:
        errors.append(FieldError(("query", name), "is required"))
        return ""
    if value not in allowed:
        errors.append(FieldError(("query", name), f"{value!r} is not a known code{hint}"))
    return value


def build_query(country: str | None, instrument: str | None, competence: str | None,
                postal_code: str | None, lau: str | None, nuts: str | None,
                subject_matter: str | None, stage: str | None,
                date: dt.date | None) -> resolver.Query:  # fmt: skip
    errors: list[FieldError] = []
    cc = _code(
        errors, "country", country.upper() if country else None, codes.COUNTRIES, " (EL for Greece)"
    )
    _code(errors, "instrument", instrument, codes.INSTRUMENTS)
    _code(errors, "competence", competence, codes.COMPETENCES)
    if subject_matter is not None:
        _code(errors, "subject_matter", subject_matter, codes.SUBJECT_MATTERS)
    if stage is not None:
        _code(errors, "stage", stage, codes.STAGES)
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


def _conditional(request: Request[Any, Any, Any], tag: str, body: bytes) -> ASGIResponse:
    # Raw header scan: building litestar's Headers costs more than the whole look-up.
    for name, value in request.scope["headers"]:
        if name.lower() == b"if-none-match" and tag in value.decode("latin-1").replace(
            " ", ""
        ).split(","):
            return ASGIResponse(status_code=304, headers={"ETag": tag})
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    return ASGIResponse(body=body, media_type=MediaType.JSON, headers=headers)


class ResolveController(Controller):
    path = "/resolve"
    tags = ["resolve"]  # noqa: RUF012

    @get(
        "/",
        summary="The competent authorities for a message, ranked, with routing",
        responses=problems(422, 503),
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
    ) -> ASGIResponse:
        query = build_query(
            country, instrument, competence, postal_code, lau, nuts, subject_matter, stage, date
        )
        # The hottest route: the runtime straight from the app state, not through DI.
        runtime: Runtime = request.app.state.runtime
        index = _index(runtime)
        body = runtime.lookup.answer(
            index, ("resolve", query), lambda: encode_json(resolver.resolve(index, query))
        )
        return _conditional(request, f'"{index.revision}:{query.date.isoformat()}"', body)

    @get(
        "/recipient/{code:str}",
        summary="The authority behind a finalRecipient / originalSender",
        responses=problems(404, 503),
    )
    async def recipient(
        self,
        code: str,
        request: Request[Any, Any, Any],
        runtime: NamedDependency[Runtime],
        date: dt.date | None = None,
    ) -> ASGIResponse:
        index = _index(runtime)
        day = date or today()
        body = resolver.recipient(index, code, day)
        if body is None:
            raise not_found("authorities", f"with code {code!r}")
        return _conditional(request, f'"{index.revision}:{day.isoformat()}"', encode_json(body))

    @get(
        "/national-member",
        summary="The national desk at Eurojust for a member state",
        responses=problems(422, 503),
    )
    async def national_member(
        self,
        request: Request[Any, Any, Any],
        runtime: NamedDependency[Runtime],
        country: str | None = None,
        date: dt.date | None = None,
    ) -> ASGIResponse:
        errors: list[FieldError] = []
        cc = _code(errors, "country", country.upper() if country else None, codes.COUNTRIES)
        if errors:
            raise invalid(errors)
        index = _index(runtime)
        day = date or today()
        body = resolver.national_members(index, cc, day)
        return _conditional(request, f'"{index.revision}:{day.isoformat()}"', encode_json(body))
