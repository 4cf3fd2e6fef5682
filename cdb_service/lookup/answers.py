"""The shapes of the look-up answers (`/resolve`, `/resolve/recipient/{code}`,
`/resolve/national-member`), for the OpenAPI document.

`resolver.py` builds these answers as plain dicts (the hottest route encodes them
once per query and caches the bytes); these models describe them, and are not run
on every answer. Entries embedded in an answer use the kinds' own answer models.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import Field

from cdb_service.registry.http.answers import Answer, document_model

NationalCorrespondent = document_model("national-correspondents")
NationalMember = document_model("national-members")


class AuthoritySummary(Answer):
    id: uuid.UUID
    code: str = Field(description="the e-CODEX finalRecipient / originalSender value")
    kind: str
    names: dict[str, str] = Field(description="the name per language")
    owner: str


class RecipientAuthority(AuthoritySummary):
    valid_on_date: bool


class ToParty(Answer):
    party_id: str
    party_id_type: str
    role: str | None = Field(description="the responder role, for the AS4 message's To")


class RoutedService(Answer):
    service: str
    service_type: str | None = None
    actions: list[str]


class Routing(Answer):
    """Where to send: the AS4 party, its endpoint and service."""

    final_recipient: str
    routing_party_id: uuid.UUID
    party_name: str
    to_party: ToParty
    endpoint_url: str
    service: RoutedService | None
    certificate_expired: bool
    expired_certificates: list[str] = Field(description="SHA-256 of each expired certificate")


class CriterionRef(Answer):
    id: uuid.UUID
    ref: str | None
    priority: int


class MatchedBy(Answer):
    scheme: Literal[
        "country", "nuts1", "nuts2", "nuts3", "lau", "postal-code", "postal-code-prefix"
    ]
    code: str


class Match(Answer):
    authority: AuthoritySummary
    criterion: CriterionRef
    matched_by: MatchedBy
    routing: Routing | None = Field(description="null: the authority has no routing party")


class ResolveQuery(Answer):
    """The query as understood (codes normalised, the default date filled in)."""

    country: str
    instrument: str
    competence: str
    date: dt.date
    postal_code: str | None = None
    lau: str | None = None
    nuts: str | None = None
    subject_matter: str | None = None
    stage: str | None = None


class PassedOver(Answer):
    code: str
    why: str


class Explanation(Answer):
    reason: Literal["no-criterion", "not-valid-on-date", "only-unroutable", "place-not-covered"]
    detail: str
    candidates: list[PassedOver] | None = None


class Fallback(Answer):
    """One fallback, one shape: a central authority or a national correspondent."""

    role: Literal["central-authority", "national-correspondent"]
    authority: AuthoritySummary | None
    routing: Routing | None
    correspondent: NationalCorrespondent | None  # type: ignore[valid-type]


class Fallbacks(Answer):
    central_authorities: list[Fallback]
    national_correspondents: list[Fallback]


class Resolution(Answer):
    """The competent authorities, ranked; Eurojust's apart; an empty answer explained."""

    revision: int
    query: ResolveQuery
    matches: list[Match]
    eurojust: list[Match]
    ambiguous: bool = Field(description="several authorities share the best rank")
    narrow_by: list[str] = Field(description="query parameters (or `address`) that separate them")
    explanation: Explanation | None = Field(default=None, description="when nothing matched")
    fallbacks: Fallbacks | None = Field(default=None, description="when nothing matched")


class Recipient(Answer):
    revision: int
    authority: RecipientAuthority
    routing: Routing | None
    ambiguous: bool
    narrow_by: list[str]


class MemberToParty(Answer):
    party_id: str
    party_id_type: str


class MemberRouting(Answer):
    final_recipient: str
    endpoint_url: str
    to_party: MemberToParty


class Desk(Answer):
    member: NationalMember  # type: ignore[valid-type]
    routing: MemberRouting | None


class NationalDesk(Answer):
    revision: int
    country: str
    members: list[Desk]
    ambiguous: bool
    narrow_by: list[str]
