from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from cdb_service.kernel import codes
from cdb_service.registry.kinds.fields import LanguageCode, ShortText, member_of
from cdb_service.registry.kinds.schemas import Address, Contact, EntryIn

AuthorityKind = Annotated[str, member_of("authority-kinds", codes.AUTHORITY_KINDS)]
AuthorityCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{2}:[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
        description="CC:LOCAL, the e-CODEX finalRecipient / originalSender value",
    ),
]


def _some(names: dict[str, str]) -> dict[str, str]:
    if not names:
        raise ValueError("give the name in at least one language")
    return names


# An object keyed by language. Not `Field(min_length=1)`: litestar's OpenAPI reads a
# length bound on a dict as an array's, so the bound is a validator plus its schema.
Names = Annotated[
    dict[LanguageCode, ShortText],
    AfterValidator(_some),
    Field(
        json_schema_extra={"minProperties": 1, "propertyNames": {"enum": sorted(codes.LANGUAGES)}},
        description="the name in each EU language given (ISO 639-1 code → name)",
    ),
]  # fmt: skip


class AuthorityIn(EntryIn):
    code: AuthorityCode
    kind: AuthorityKind = Field(
        description="what sort of authority: an authority-kinds code (court, prosecution, ...)"
    )
    names: Names
    address: Address | None = Field(default=None, description="its postal address")
    contacts: list[Contact] = Field(
        description="functional contacts: mailboxes and switchboards, not persons",
        default_factory=list,
    )
    languages: list[LanguageCode] = Field(
        default_factory=list, description="languages in which it accepts requests"
    )
    parent_id: uuid.UUID | None = Field(
        default=None, description="the authority it belongs to (its id)"
    )
    parent_code: AuthorityCode | None = Field(
        default=None,
        description="the authority it belongs to, by code (a batch's alternative to parent_id)",
    )
    routing_party_id: uuid.UUID | None = Field(
        default=None, description="the access point that receives its messages (its id)"
    )
    routing_party_name: ShortText | None = Field(
        default=None,
        description="that access point by its Domibus party name (instead of routing_party_id)",
    )

    @field_validator("code")
    @classmethod
    def _prefixed_by_owner(cls, code: str, info: ValidationInfo) -> str:
        owner = info.data.get("owner")
        if owner and not code.startswith(f"{owner}:"):
            raise ValueError(f"must start with the owner's code: {owner}:…")
        return code


# The object keyed by language has no title in the contract (its label is `LABELS`'):
# a client generator names an inline object's class after its title, and clients
# already use the name it had without one (`AuthorityInNames`).
AuthorityIn.model_fields["names"].title = None
