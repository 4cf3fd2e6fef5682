"""Validated field types shared by every kind's schema.

Each validator raises ValueError with a sentence that a member-state administrator
can act on; pydantic attaches it to the field's location.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic_core import core_schema

from cdb_service.kernel import codes
from cdb_service.kernel.owners import looks_like_owner
from cdb_service.kernel.text import unprintable

# Each field's label (its `title` in the contract), for the console's forms and the API's
# documents alike: the field's name in words, except where the name is a programmer's.
LABELS: Mapping[str, str] = {
    "ref": "National reference", "valid_from": "Valid from", "valid_to": "Valid until",
    "names": "Name", "kind": "Kind of authority", "contacts": "Contacts",
    "languages": "Languages accepted", "parent_id": "Part of (parent authority)",
    "parent_code": "Part of (parent authority's code)", "routing_party_id": "Routing party",
    "routing_party_name": "Routing party (Domibus party name)", "authority_id": "Authority",
    "authority_code": "Authority's code", "subject_matters": "Subject matters",
    "geo": "Places", "endpoint_url": "Endpoint URL (AS4)", "identifiers": "Party ids",
    "party_id": "Party id", "party_id_type": "Party id type", "service_type": "Service type",
    "go_live_at": "Goes live at", "shared_with": "Shared with owners",
    "sha256": "SHA-256 fingerprint", "not_before": "Valid from (not before)",
    "not_after": "Valid until (not after)", "accept_from": "Accepted from",
    "use_from": "Used from", "accept_until": "Accepted until",
    "operator_confirmed": "Confirmed by an operator", "pem": "Certificate (PEM)",
    "use": "Used for", "postal_code": "Postal code", "starts_at": "Starts at",
    "ends_at": "Ends at", "started_at": "Started at", "detected_at": "Detected at",
    "ended_at": "Ended at", "expected_recovery_at": "Expected recovery at",
    "day_of_month": "Day of the month", "duration_minutes": "Duration (minutes)",
    "time": "Time (HH:MM)", "person": "Named person (optional)", "type": "Type",
    "code": "Code", "name": "Name", "value": "Address or number", "label": "What it is for",
    "channel": "Channel", "title": "Function or title",
}  # fmt: skip


def label_of(name: str, _info: object = None) -> str:
    """A field's label: `LABELS`, or its name in words (`postal_code` → "Postal code")."""
    return LABELS.get(name) or name.replace("_", " ").capitalize()


@dataclass(frozen=True, eq=False)
class CodeListMember:
    """A value from one of the service's code lists: checked on the way in, and named in
    the JSON Schema (`enum`, and `x-code-list` with the list's name) so that the
    contract's documents (OpenAPI, the XSD of the XML answers) list the codes from the
    same table the check uses."""

    code_list: str
    values: Mapping[str, str]
    hint: str = ""

    def check(self, value: str) -> str:
        if value not in self.values:
            raise ValueError(codes.unknown_code(value, self.code_list, self.values, self.hint))
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Any:
        out = handler(schema)
        out["enum"] = list(self.values)
        out["x-code-list"] = self.code_list
        if self.code_list in codes.CODE_LIST_SOURCES:
            out["x-code-list-source"] = codes.CODE_LIST_SOURCES[self.code_list]
        return out


def member_of(code_list: str, values: Mapping[str, str], hint: str = "") -> CodeListMember:
    return CodeListMember(code_list, values, hint)


def _spelled(value: Any) -> Any:
    # Before type validation: a value that is no string is left for pydantic to name.
    return codes.code_of(value) if isinstance(value, str) else value


CountryCode = Annotated[
    str, BeforeValidator(_spelled), member_of("countries", codes.COUNTRIES, codes.GREECE_HINT)
]


@dataclass(frozen=True, eq=False)
class OwnerMember(CodeListMember):
    """An owner: a member state or EJ, or two letters an operator may have registered (a
    third country's central authority). Whether such a code is registered, the store
    asks within the write (`registry/store/participation.py`): the list lives in the
    registry, so the contract names the code list rather than enumerating it."""

    commission: bool = False

    def check(self, value: str) -> str:
        if (self.commission and value == codes.COMMISSION) or looks_like_owner(value):
            return value
        return super().check(value)

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Any:
        out = handler(schema)
        out["pattern"] = "^[A-Z]{2}$"
        out["x-code-list"] = self.code_list
        return out


# The same check and sentence as `codes.owner_code` for what is never an owner.
OwnerCode = Annotated[
    str,
    BeforeValidator(_spelled),
    OwnerMember("owners", codes.OWNERS, codes.GREECE_HINT),
    Field(
        description="the owner: a member state (ISO 3166-1 alpha-2, EL for Greece), EJ, "
        "or a third country an operator registered (code list `owners`)"
    ),
]
_OWNERS_AND_COMMISSION = {**codes.OWNERS, codes.COMMISSION: "European Commission"}
_COMMISSION_TOO = OwnerMember("owners", _OWNERS_AND_COMMISSION, codes.GREECE_HINT, True)


def _owner_or_commission(value: str) -> str:
    return _COMMISSION_TOO.check(value)


# Maintenance windows and incidents: the Commission owns those of central components
# (EC is in no code list, so the contract lists no codes here).
OwnerOrCommission = Annotated[str, BeforeValidator(_spelled), AfterValidator(_owner_or_commission)]
LanguageCode = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
    member_of("languages", codes.LANGUAGES),
]


def _printable(allow: str) -> AfterValidator:
    """Text that every database stores and every XML document can carry: no controls but
    `allow`, no lone surrogates, no non-characters."""

    def check(value: str) -> str:
        bad = unprintable(value, allow)
        if bad is not None:
            raise ValueError(f"must not contain the character U+{ord(bad):04X}")
        return value

    return AfterValidator(check)


# Free text may break lines; names and codes may not.
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), _printable("\n\t")
]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), _printable("")
]
Ref = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^\S+$"),
    _printable(""),
]
# What e-CODEX / AS4 names things with (party ids, services, actions, roles): URNs, URLs
# and words, never spaces or characters outside printable ASCII, which Domibus would
# take differently or not at all.
_IDENTIFIER = re.compile(r"^[\x21-\x7e]+$")


def _identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        bad = next(c for c in value if not _IDENTIFIER.match(c))
        raise ValueError(f"must be printable ASCII without spaces (a URN, URL or word); "
                         f"{bad!r} is not")  # fmt: skip
    return value


Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_identifier),
]
Priority = Annotated[int, Field(ge=0, le=10_000)]


def _https_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    if parts.scheme.lower() != "https":
        raise ValueError("must be an https:// URL (access points are reached over TLS only)")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    if " " in value.strip():
        raise ValueError("must not contain spaces")
    return value.strip()


HttpsUrl = Annotated[
    str, StringConstraints(min_length=9, max_length=2000), AfterValidator(_https_url)
]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^\+[0-9 ()./-]{6,30}$")


def check_contact_value(channel: str, value: str) -> str:
    if channel == "email" and not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    if channel in ("phone", "fax") and not _PHONE.match(value):
        raise ValueError(f"{value!r} is not an international number (+CC …)")
    if channel == "web":
        _https_url(value)
    return value
