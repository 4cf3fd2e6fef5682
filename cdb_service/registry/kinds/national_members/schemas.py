from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field, field_validator

from cdb_service.kernel import codes
from cdb_service.registry.kinds.fields import CountryCode, LanguageCode, ShortText, member_of
from cdb_service.registry.kinds.schemas import Contact, EntryIn, Person

MemberRole = Annotated[str, member_of("member-roles", codes.MEMBER_ROLES)]


class NationalMemberIn(EntryIn):
    """Eurojust Regulation art. 7: a member of a national desk at Eurojust."""

    country: CountryCode = Field(description="the member state whose desk it is")
    role: MemberRole
    contact: Contact
    person: Person | None = None
    languages: list[LanguageCode] = Field(default_factory=list)
    routing_party_id: uuid.UUID | None = None
    routing_party_name: ShortText | None = None

    @field_validator("owner")
    @classmethod
    def _owned_by_eurojust(cls, owner: str) -> str:
        if owner != codes.EUROJUST:
            raise ValueError(f"national members are owned by {codes.EUROJUST} (Eurojust)")
        return owner
