"""The fields every kind's document has, and the nested shapes several kinds share."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cdb_service.kernel import codes
from cdb_service.kernel.geo import normalise_postal_code
from cdb_service.registry.kinds.fields import (
    CountryCode,
    OwnerCode,
    Ref,
    ShortText,
    Text,
    check_contact_value,
    label_of,
    member_of,
)

# Fields the server sets on every kind: accepted in a PUT body (clients send back what
# they read) and ignored, never taken from the client. A kind's own server-set and
# derived fields are declared on its KindSpec, which hands them to its schema.
COMMON_SERVER_FIELDS = frozenset({"id", "version", "revision", "created_at", "updated_at"})


class Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, field_title_generator=label_of
    )


class EntryIn(Strict):
    """Common input of every kind."""

    server_set: ClassVar[frozenset[str]] = frozenset()

    owner: OwnerCode
    ref: Ref | None = Field(default=None, description="the national register's own identifier")
    valid_from: dt.date | None = Field(
        default=None, description="first day of legal validity, inclusive (open when left out)"
    )
    valid_to: dt.date | None = Field(default=None, description="last day of validity, inclusive")

    @model_validator(mode="before")
    @classmethod
    def _drop_server_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            ignored = COMMON_SERVER_FIELDS | cls.server_set
            if not ignored.isdisjoint(data):
                return {k: v for k, v in data.items() if k not in ignored}
        return data

    @field_validator("valid_to")
    @classmethod
    def _validity_in_order(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        start = info.data.get("valid_from")
        if value and start and start > value:
            raise ValueError(f"must not be before valid_from ({start.isoformat()})")
        return value


ContactChannel = Annotated[str, member_of("contact-channels", codes.CONTACT_CHANNELS)]


class Contact(Strict):
    """A functional contact: a mailbox or switchboard, not a person."""

    channel: ContactChannel = Field(
        default="email",
        description="how it is reached: a contact-channels code (email, phone, fax, web)",
    )
    value: ShortText = Field(description="the address or number, checked against the channel")
    label: ShortText | None = Field(
        default=None, description="what the contact is for, as shown to a sender"
    )

    @model_validator(mode="after")
    def _value_fits_channel(self) -> Contact:
        check_contact_value(self.channel, self.value)
        return self


class Person(Strict):
    """A named person: optional, left out of bulk extracts for readers (Annex I 5.5)."""

    name: ShortText = Field(
        description="the person's name (personal data: optional, redacted for readers)"
    )
    title: ShortText | None = Field(default=None, description="the person's function or title")


def _erased_is_absent(value: Any) -> Any:
    """An erased person read back (`[erased]`) and sent again is no person: stored as none."""
    return None if value == "[erased]" else value


# A named person as written: a person or none. An erased one reads `[erased]` (answers
# declare it: `registry/http/answers.py`); sent back as read, it is stored as none.
NamedPerson = Annotated[Person | None, BeforeValidator(_erased_is_absent)]


class Address(Strict):
    street: Text | None = Field(default=None, description="street and number")
    postal_code: ShortText | None = Field(
        default=None, description="postal code, in its country's syntax (kept as written)"
    )
    city: ShortText = Field(description="city or municipality")
    country: CountryCode = Field(description="EU country code (ISO 3166-1 alpha-2, EL for Greece)")

    @model_validator(mode="after")
    def _postal_code_of_its_country(self) -> Address:
        # Checked against the country's syntax (the same rule as geo keys and look-ups) but
        # kept as written: an address is printed on letters, where "75 001" may be wanted.
        if self.postal_code is not None:
            try:
                normalise_postal_code(self.country, self.postal_code)
            except ValueError as error:
                raise PydanticCustomError(
                    "postal_code", "postal_code: {why}", {"why": str(error)}
                ) from None
        return self
