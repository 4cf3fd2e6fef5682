from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field, field_validator

from cdb_service.kernel import codes
from cdb_service.registry.kinds.fields import CountryCode, LanguageCode, ShortText, member_of
from cdb_service.registry.kinds.schemas import Contact, EntryIn, NamedPerson

MemberRole = Annotated[str, member_of("member-roles", codes.MEMBER_ROLES)]


class NationalMemberIn(EntryIn):
    """Eurojust Regulation art. 7: a member of a national desk at Eurojust."""

    country: CountryCode = Field(description="the member state whose desk it is")
    role: MemberRole = Field(description="national-member, deputy or assistant")
    contact: Contact = Field(description="the desk's functional contact")
    person: NamedPerson = Field(
        default=None, description="the named member (optional personal data; redacted for readers)"
    )
    languages: list[LanguageCode] = Field(
        description="languages the desk works in (ISO 639-1)", default_factory=list
    )
    routing_party_id: uuid.UUID | None = Field(
        default=None, description="the access point of Eurojust's side that receives for this desk"
    )
    routing_party_name: ShortText | None = Field(
        default=None,
        description="that access point by its Domibus party name (instead of routing_party_id)",
    )

    @field_validator("owner")
    @classmethod
    def _owned_by_eurojust(cls, owner: str) -> str:
        if owner != codes.EUROJUST:
            raise ValueError(f"national members are owned by {codes.EUROJUST} (Eurojust)")
        return owner
