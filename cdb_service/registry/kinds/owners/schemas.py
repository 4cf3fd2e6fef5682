from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from cdb_service.kernel import codes
from cdb_service.kernel.owners import third_country_code
from cdb_service.registry.kinds.fields import ShortText, member_of
from cdb_service.registry.kinds.schemas import EntryIn

Instrument = Annotated[str, member_of("instruments", codes.INSTRUMENTS)]
RegisteredCode = Annotated[
    str,
    BeforeValidator(lambda v: codes.code_of(v) if isinstance(v, str) else v),
    AfterValidator(lambda v: v if v in codes.OWNERS else third_country_code(v)),
    Field(
        pattern="^[A-Z]{2}$",
        description="the owner's code: ISO 3166-1 alpha-2 (EL for Greece), or EJ; a member "
        "state's or EJ's entry replaces what it takes part in by default",
    ),
]


class OwnerIn(EntryIn):
    owner: Literal["EC"] = Field(  # type: ignore[assignment]
        default="EC",
        description="EC: the list of owners is the Commission's, kept by its operators",
    )
    code: RegisteredCode
    name: ShortText = Field(description="the owner's name, e.g. the state's English name")
    instruments: list[Instrument] = Field(
        default_factory=list,
        max_length=len(codes.INSTRUMENTS),
        description="the instruments it takes part in (code list `instruments`); its "
        "authorities resolve, and its criteria are accepted, for these only",
    )

    @field_validator("owner", mode="before")
    @classmethod
    def _spelled(cls, value: object) -> object:
        return codes.code_of(value) if isinstance(value, str) else value

    @field_validator("instruments")
    @classmethod
    def _distinct(cls, instruments: list[str]) -> list[str]:
        if len(set(instruments)) != len(instruments):
            raise ValueError("lists an instrument twice")
        return instruments
