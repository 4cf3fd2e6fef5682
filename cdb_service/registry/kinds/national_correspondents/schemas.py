from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator

from cdb_service.kernel import codes
from cdb_service.registry.kinds.fields import CountryCode, LanguageCode, ShortText, member_of
from cdb_service.registry.kinds.schemas import Contact, EntryIn, NamedPerson

CorrespondentType = Annotated[str, member_of("correspondent-types", codes.CORRESPONDENT_TYPES)]


class NationalCorrespondentIn(EntryIn):
    """Eurojust Regulation art. 20: a member of the national coordination system."""

    country: CountryCode = Field(description="the member state it is a correspondent of")
    type: CorrespondentType = Field(
        description="its role: a correspondent-types code (eurojust, terrorism, ...)"
    )
    authority_id: uuid.UUID | None = Field(default=None, description="the authority it sits in")
    authority_code: ShortText | None = Field(
        default=None, description="the authority it sits in, by code (instead of authority_id)"
    )
    contact: Contact = Field(description="its functional contact")
    person: NamedPerson = Field(
        default=None,
        description="the named correspondent (optional personal data; redacted for readers)",
    )
    languages: list[LanguageCode] = Field(
        description="languages it works in (ISO 639-1)", default_factory=list
    )

    @field_validator("country")
    @classmethod
    def _owned_by_its_state(cls, country: str, info: ValidationInfo) -> str:
        owner = info.data.get("owner")
        if owner and owner != country:
            raise ValueError(f"a correspondent of {country} is owned by {country}, not {owner}")
        return country
