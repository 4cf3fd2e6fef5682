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
    id: uuid.UUID = Field(description="the authority's entry id")
    code: str = Field(description="the e-CODEX finalRecipient / originalSender value")
    kind: str = Field(description="an authority-kinds code")
    names: dict[str, str] = Field(description="the name per language")
    owner: str = Field(description="the authority's owner (member state or EJ)")


class RecipientAuthority(AuthoritySummary):
    valid_on_date: bool = Field(description="whether the authority is valid on the asked date")


class ToParty(Answer):
    party_id: str = Field(description="the AS4 To PartyId")
    party_id_type: str = Field(description="its type (a party-id-types URN)")
    role: str | None = Field(description="the responder role, for the AS4 message's To")


class RoutedService(Answer):
    service: str = Field(description="the AS4 service")
    service_type: str | None = Field(
        default=None, description="the service's type attribute, when it has one"
    )
    actions: list[str] = Field(description="the AS4 actions accepted under it")


class Routing(Answer):
    """Where to send: the AS4 party, its endpoint and service."""

    final_recipient: str = Field(description="the e-CODEX finalRecipient: the authority's code")
    routing_party_id: uuid.UUID = Field(description="the routing party's entry id")
    party_name: str = Field(description="the routing party's Domibus party name")
    to_party: ToParty = Field(description="who to address the AS4 message to")
    endpoint_url: str = Field(description="the receiving access point's AS4 endpoint")
    service: RoutedService | None = Field(
        description="the service for this instrument, when the party names one"
    )
    certificate_expired: bool = Field(
        description="whether one of the party's certificates has expired"
    )
    expired_certificates: list[str] = Field(description="SHA-256 of each expired certificate")


class CriterionRef(Answer):
    id: uuid.UUID = Field(description="the jurisdiction criterion's entry id")
    ref: str | None = Field(description="its national register identifier")
    priority: int = Field(description="its priority (lower is preferred among equals)")


class MatchedBy(Answer):
    scheme: Literal[
        "country", "nuts1", "nuts2", "nuts3", "lau", "postal-code", "postal-code-prefix"
    ] = Field(description="the scheme of the criterion's geo key that matched")
    code: str = Field(description="the place's code in that scheme")


class Match(Answer):
    authority: AuthoritySummary = Field(description="the competent authority")
    criterion: CriterionRef = Field(description="the criterion that made it competent")
    matched_by: MatchedBy = Field(description="the geo key of the criterion that matched the query")
    routing: Routing | None = Field(description="null: the authority has no routing party")


class ResolveQuery(Answer):
    """The query as understood (codes normalised, the default date filled in)."""

    country: str = Field(description="as asked")
    instrument: str = Field(description="as asked")
    competence: str = Field(description="as asked")
    date: dt.date = Field(description="the date the answer holds for (default: today)")
    postal_code: str | None = Field(default=None, description="as asked")
    lau: str | None = Field(default=None, description="as asked")
    nuts: str | None = Field(default=None, description="as asked")
    subject_matter: str | None = Field(default=None, description="as asked")
    stage: str | None = Field(default=None, description="as asked")


class PassedOver(Answer):
    code: str = Field(description="the authority's code")
    why: str = Field(description="why it was not a match")


class Explanation(Answer):
    reason: Literal[
        "no-criterion",
        "subject-matter-not-covered",
        "stage-not-covered",
        "not-valid-on-date",
        "only-unroutable",
        "place-not-covered",
        "not-participating",
    ] = Field(
        description="why nothing matched, as a code (`not-participating`: the state does "
        "not take part in the instrument, code list `participation`)"
    )
    detail: str = Field(description="the same, in a sentence")
    candidates: list[PassedOver] | None = Field(
        default=None, description="authorities that came close, and why each was passed over"
    )


class Fallback(Answer):
    """One fallback, one shape: a central authority or a national correspondent."""

    role: Literal["central-authority", "national-correspondent"] = Field(
        description="whom to turn to instead"
    )
    authority: AuthoritySummary | None = Field(description="the central authority")
    routing: Routing | None = Field(description="how to reach it")
    correspondent: NationalCorrespondent | None = Field(description="the national correspondent")  # type: ignore[valid-type]


class Fallbacks(Answer):
    central_authorities: list[Fallback] = Field(
        description="the state's central authorities for the instrument"
    )
    national_correspondents: list[Fallback] = Field(
        description="the state's national correspondents"
    )


class Resolution(Answer):
    """The competent authorities, ranked; Eurojust's apart; an empty answer explained."""

    revision: int = Field(description="the registry revision the answer was computed at")
    query: ResolveQuery = Field(description="the query, normalised")
    matches: list[Match] = Field(
        description="national authorities, best first (geographic specificity, priority, code)"
    )
    eurojust: list[Match] = Field(
        description="Eurojust's matches, listed apart and never ranked with them"
    )
    ambiguous: bool = Field(description="several authorities share the best rank")
    narrow_by: list[str] = Field(description="query parameters (or `address`) that separate them")
    explanation: Explanation | None = Field(default=None, description="when nothing matched")
    fallbacks: Fallbacks | None = Field(default=None, description="when nothing matched")


class Recipient(Answer):
    revision: int = Field(description="the registry revision the answer was computed at")
    authority: RecipientAuthority = Field(description="the authority behind the code")
    routing: Routing | None = Field(description="its routing (null: no routing party)")
    ambiguous: bool = Field(description="always false: a code names one authority")
    narrow_by: list[str] = Field(description="always empty (the same shape as a resolution)")


class MemberToParty(Answer):
    party_id: str = Field(description="the AS4 To PartyId")
    party_id_type: str = Field(description="its type (a party-id-types URN)")


class MemberRouting(Answer):
    final_recipient: str = Field(description="the e-CODEX finalRecipient of the desk")
    endpoint_url: str = Field(description="the receiving access point's AS4 endpoint")
    to_party: MemberToParty = Field(description="who to address the AS4 message to")


class Desk(Answer):
    member: NationalMember = Field(description="the national member's entry")  # type: ignore[valid-type]
    routing: MemberRouting | None = Field(
        description="how to reach the desk (null: no routing party)"
    )


class NationalDesk(Answer):
    revision: int = Field(description="the registry revision the answer was computed at")
    country: str = Field(description="the member state whose desk it is")
    members: list[Desk] = Field(description="its members (national member, deputies, assistants)")
    ambiguous: bool = Field(
        description="whether several members share the first role (the sender chooses)"
    )
    narrow_by: list[str] = Field(
        description="always empty: the sender chooses among the first role"
    )
