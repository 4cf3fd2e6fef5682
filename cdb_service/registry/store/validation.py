"""Client documents checked against their kind's schema: a 422 naming every wrong field."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from cdb_service.kernel.problems import FieldError, invalid
from cdb_service.registry.kinds.schemas import EntryIn
from cdb_service.registry.kinds.spec import KindSpec


def validate(kind: KindSpec, data: Any, loc_prefix: tuple[str | int, ...] = ()) -> EntryIn:
    try:
        return kind.schema.model_validate(data)
    except ValidationError as error:
        raise invalid(field_errors(error, loc_prefix)) from None


def field_errors(error: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[FieldError]:
    out = []
    for e in error.errors(include_url=False):
        msg = e["msg"].removeprefix("Value error, ")
        out.append(FieldError((*prefix, *e["loc"]), msg, e["type"]))
    return out
