"""What a resolve query is: its parameters, how each is read and checked, what its ETag covers.

Declared once, here, for every way a look-up arrives: the routes (`lookup/controller.py`)
read their query parameters with these functions and document them with `docs`; the
fast path (`lookup/fast.py`) takes exactly `NAMES` and the same reading, so its answer
is the route's; the console's resolve page asks the same way. The contract follows:
each parameter's description, whether it is required, and the values of its code list
(an enum generated from `kernel/codes.py`) come from the declarations below.

A bad value is the client's mistake, said per field: an unknown code, a place that is
not the country's, a parameter missing 422; a date that is not one 400 (what the
framework answered when it parsed dates itself).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from litestar.datastructures import MultiDict
from litestar.openapi.spec import OpenAPIFormat

from cdb_service.kernel import codes
from cdb_service.kernel.calendar import today
from cdb_service.kernel.geo import normalise_geo_code, normalise_postal_code
from cdb_service.kernel.owners import DEFAULT, Owners
from cdb_service.kernel.problems import FieldError, invalid, malformed
from cdb_service.lookup.index import LookupIndex
from cdb_service.lookup.resolver import Query
from cdb_service.web.docs import ParameterDoc


@dataclass(frozen=True)
class QueryParameter:
    """One query parameter of the look-ups: its name, what it means, its code list."""

    name: str
    description: str
    code_list: str | None = None  # a key of `codes.CODE_LISTS`: the values it takes
    required: bool = False
    format: OpenAPIFormat | None = None

    @property
    def doc(self) -> ParameterDoc:
        values = tuple(codes.CODE_LISTS[self.code_list]) if self.code_list else ()
        return ParameterDoc(self.name, self.description, self.format, required=self.required,
                            enum=values)  # fmt: skip


COUNTRY = QueryParameter(
    "country",
    "The member state whose authorities are asked for: ISO 3166-1 alpha-2, EL for Greece "
    "(code list `countries`; lower case is accepted), or a third country an operator "
    "registered as an owner (code list `owners`). A state that does not take part in "
    "`instrument` (code list `participation`) is answered with no match, explained "
    "`not-participating`.",
    "countries",
    required=True,
)
INSTRUMENT = QueryParameter(
    "instrument", "The legal instrument the message is sent under (code list `instruments`).",
    "instruments", required=True,
)  # fmt: skip
COMPETENCE = QueryParameter(
    "competence",
    "What the recipient is to do: receive, execute or issue requests, or assist as the "
    "central authority (code list `competences`).",
    "competences",
    required=True,
)
POSTAL_CODE = QueryParameter(
    "postal_code",
    "The place the message concerns, as a postal code of `country` in its national format "
    "(spaces and the country prefix are tolerated); matched through the gazetteer to the "
    "LAU and NUTS regions that contain it.",
)
LAU = QueryParameter(
    "lau", "The place as a LAU (local administrative unit) code of `country`, as Eurostat's "
    "correspondence tables write it.",
)  # fmt: skip
NUTS = QueryParameter(
    "nuts",
    "The place as a NUTS 1, 2 or 3 code of `country` (for example DE3, DE30, DE300).",
)
SUBJECT_MATTER = QueryParameter(
    "subject_matter",
    "The subject matter of the case (code list `subject-matters`): criteria that name "
    "subject matters match only theirs; criteria that name none match every one.",
    "subject-matters",
)
STAGE = QueryParameter(
    "stage",
    "The stage of the proceedings (code list `stages`): criteria that name stages match "
    "only theirs; criteria that name none match every one.",
    "stages",
)
DATE = QueryParameter(
    "date",
    "The day the answer is valid for (legal validity, YYYY-MM-DD); default: today in Brussels.",
    format=OpenAPIFormat.DATE,
)
DESK_COUNTRY = replace(
    COUNTRY,
    description="The member state whose national desk at Eurojust is asked for: ISO 3166-1 "
    "alpha-2, EL for Greece (code list `countries`; lower case is accepted).",
)
RECIPIENT_CODE_DOC = (
    "The authority's code (`CC:LOCAL`), the value of an e-CODEX message's finalRecipient or "
    "originalSender."
)

# `GET /resolve`, `/resolve/national-member` and `/resolve/recipient/{code}` (with the code).
RESOLVE = (COUNTRY, INSTRUMENT, COMPETENCE, POSTAL_CODE, LAU, NUTS, SUBJECT_MATTER, STAGE, DATE)
NATIONAL_MEMBER = (DESK_COUNTRY, DATE)
RECIPIENT = (DATE,)
NAMES = frozenset(p.name for p in RESOLVE)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def given(params: MultiDict[str]) -> dict[str, str]:
    """A request's query parameters by name; one given more than once counts with its
    last value, as the framework read it when the handlers declared each parameter."""
    return dict(params.multi_items())


def docs(parameters: tuple[QueryParameter, ...]) -> tuple[ParameterDoc, ...]:
    """The parameters as the route's OpenAPI operation declares them."""
    return tuple(p.doc for p in parameters)


def day_of(values: Mapping[str, str]) -> dt.date:
    """`date`, or today in Brussels; a value that is not an ISO date is a 400."""
    text = values.get(DATE.name)
    if text is None:
        return today()
    try:
        if _DATE.fullmatch(text):
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    error = FieldError(("query", DATE.name), "is not a date (YYYY-MM-DD)")
    raise malformed("query.date: is not a date (YYYY-MM-DD)", error)


def _coded(errors: list[FieldError], parameter: QueryParameter, value: str | None,
           hint: str = "") -> str:  # fmt: skip
    """A code of the parameter's list (missing or unknown: an error, and "")."""
    assert parameter.code_list is not None
    if value is None:
        if parameter.required:
            errors.append(FieldError(("query", parameter.name), "is required"))
        return ""
    values = codes.CODE_LISTS[parameter.code_list]
    if value not in values:
        reason = codes.unknown_code(value, parameter.code_list, values, hint)
        errors.append(FieldError(("query", parameter.name), reason))
    return value


def _country(errors: list[FieldError], parameter: QueryParameter, value: str | None,
             owners: Owners) -> str:  # fmt: skip
    """A member state, or a third country registered as an owner."""
    code = codes.code_of(value) if value else None
    if code is not None and owners.is_third_country(code):
        return code
    return _coded(errors, parameter, code, codes.GREECE_HINT)


def _place(country: str, parameter: QueryParameter, value: str) -> str:
    """A postal code, LAU or NUTS code of `country` in its canonical form (ValueError)."""
    if parameter is POSTAL_CODE:
        return normalise_postal_code(country, value)
    if parameter is LAU:
        return normalise_geo_code(country, "lau", value)
    level = len(value.strip()) - 2
    if level not in (1, 2, 3):
        raise ValueError(f"{value!r} is not a NUTS 1, 2 or 3 code of {country}")
    return normalise_geo_code(country, f"nuts{level}", value)


def resolve_query(values: Mapping[str, str], owners: Owners = DEFAULT) -> Query:
    """The query `GET /resolve` asks, from its parameters by name; every mistake at once.
    `owners`: the owners the look-up index follows (third countries are asked about too)."""
    day = day_of(values)
    errors: list[FieldError] = []
    country = _country(errors, COUNTRY, values.get(COUNTRY.name), owners)
    instrument = _coded(errors, INSTRUMENT, values.get(INSTRUMENT.name))
    competence = _coded(errors, COMPETENCE, values.get(COMPETENCE.name))
    subject_matter = values.get(SUBJECT_MATTER.name)
    stage = values.get(STAGE.name)
    _coded(errors, SUBJECT_MATTER, subject_matter)
    _coded(errors, STAGE, stage)
    places: dict[str, str | None] = {p.name: None for p in (POSTAL_CODE, LAU, NUTS)}
    if country in codes.COUNTRIES:  # a place is checked against its country's syntax
        for parameter in (POSTAL_CODE, LAU, NUTS):
            value = values.get(parameter.name)
            if value is None:
                continue
            try:
                places[parameter.name] = _place(country, parameter, value)
            except ValueError as error:
                errors.append(FieldError(("query", parameter.name), str(error)))
    if errors:
        raise invalid(errors)
    return Query(country=country, instrument=instrument, competence=competence, date=day,
                 subject_matter=subject_matter, stage=stage, **places)  # fmt: skip


def desk_query(values: Mapping[str, str]) -> tuple[str, dt.date]:
    """The member state and day `GET /resolve/national-member` asks about."""
    day = day_of(values)
    errors: list[FieldError] = []
    country = _coded(
        errors, DESK_COUNTRY, codes.code_of(values.get(DESK_COUNTRY.name) or "") or None
    )
    if errors:
        raise invalid(errors)
    return country, day


def etag(index: LookupIndex, day: dt.date) -> str:
    """Everything a look-up's answer depends on beyond its URL: the registry revision,
    the gazetteer (a load moves no revision), how many certificates have expired by now
    (answers flag them), and the day asked about (validity)."""
    expired = index.expired_count(dt.datetime.now(dt.UTC).isoformat())
    return f'"{index.revision}:{index.gazetteer.identity}:{expired}:{day.isoformat()}"'
