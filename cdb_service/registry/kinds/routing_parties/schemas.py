from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cdb_service.kernel import codes
from cdb_service.registry.kinds.fields import (
    HttpsUrl,
    Identifier,
    OwnerCode,
    label_of,
    member_of,
)
from cdb_service.registry.kinds.routing_parties.namespaces import outside_namespace
from cdb_service.registry.kinds.routing_parties.rollover import Window, gap
from cdb_service.registry.kinds.schemas import EntryIn, Strict
from cdb_service.security.x509 import parse_single_certificate

PartyName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
PartyIdType = Annotated[str, member_of("party-id-types", codes.PARTY_ID_TYPES)]
CertificateUse = Annotated[str, member_of("certificate-uses", codes.CERTIFICATE_USES)]


class PartyIdentifier(Strict):
    party_id: Identifier = Field(description="the AS4 party id (the message's To/From PartyId)")
    party_id_type: PartyIdType = Field(
        default="urn:oasis:names:tc:ebcore:partyid-type:unregistered",
        description="the party id's type: a party-id-types code (a URN)",
    )
    # Documents carry it only where an operator set it (`exclude_if`: declared in the
    # contract all the same, where a serializer function would hide the whole type).
    operator_confirmed: bool = Field(
        default=False,
        exclude_if=lambda flag: not flag,
        description="an operator allowed this party id outside the owner's namespace "
        "(set by operators only; left out when false)",
    )


class Service(Strict):
    service: Identifier = Field(description="the AS4 service this party receives")
    service_type: Identifier | None = Field(
        default=None, description="the service's type attribute, when it has one"
    )
    actions: list[Identifier] = Field(
        description="the AS4 actions it accepts under that service", min_length=1
    )


class Certificate(BaseModel):
    """A certificate as uploaded (`use`, `pem`) with what the server reads from it."""

    # Derived fields sent back by a client are ignored and recomputed from the PEM.
    model_config = ConfigDict(extra="ignore", field_title_generator=label_of)

    use: CertificateUse = Field(
        description="what the certificate is for: signing, encryption or tls"
    )
    pem: str = Field(description="the X.509 certificate, PEM-encoded")
    sha256: str = Field(default="", description="its SHA-256 fingerprint (set by the server)")
    subject: str = Field(
        default="", description="its subject distinguished name (set by the server)"
    )
    issuer: str = Field(default="", description="its issuer distinguished name (set by the server)")
    not_before: dt.datetime | None = Field(
        default=None, description="the start of its validity (set by the server)"
    )
    not_after: dt.datetime | None = Field(
        default=None, description="the end of its validity (set by the server)"
    )
    accept_from: dt.datetime | None = Field(
        default=None,
        description="from when access points accept it (truststores); default: not_before",
    )
    use_from: dt.datetime | None = Field(
        default=None,
        description="from when it is used for encryption and signing: after accept_from, so "
        "that every access point holds it before; default: not_before",
    )
    accept_until: dt.datetime | None = Field(
        default=None, description="until when it is accepted; default: not_after"
    )
    operator_confirmed: bool = Field(
        default=False,
        exclude_if=lambda flag: not flag,
        description="an operator confirmed that this party may hold a certificate naming no "
        "state (no C=) that another owner's party holds (set by operators only; left out "
        "when false)",
    )

    @model_validator(mode="before")
    @classmethod
    def _ignore_derived(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: data[k] for k in _CHOSEN if k in data}
        return data

    @property
    def names_no_state(self) -> bool:
        return self._country is None

    @field_validator("pem")
    @classmethod
    def _parse(cls, pem: str) -> str:
        return parse_single_certificate(pem).pem

    @model_validator(mode="after")
    def _derive(self) -> Certificate:
        facts = parse_single_certificate(self.pem)
        self.sha256, self.subject, self.issuer = facts.sha256, facts.subject, facts.issuer
        self.not_before, self.not_after = facts.not_before, facts.not_after
        self._country = facts.country
        self.accept_from = _aware(self.accept_from) or facts.not_before
        self.use_from = _aware(self.use_from) or facts.not_before
        self.accept_until = _aware(self.accept_until) or facts.not_after
        ordered = (facts.not_before <= self.accept_from <= self.use_from < self.accept_until
                   <= facts.not_after)  # fmt: skip
        if not ordered:
            raise ValueError(
                "its window must run not_before ≤ accept_from ≤ use_from < accept_until ≤ "
                f"not_after ({facts.not_before.isoformat()} … {facts.not_after.isoformat()}): "
                "accepted before it is used, used before it stops being accepted, all within "
                "its own validity"
            )
        return self

    _country: str | None = PrivateAttr(default=None)

    def names_another_state(self, owner: str) -> str | None:
        """The member state this certificate's subject names, if that is not `owner`'s:
        a member state's certificate belongs to that state's parties, and Eurojust's
        name the Netherlands (its seat) or no member state."""
        country = "EL" if self._country == "GR" else self._country
        if country not in codes.COUNTRIES or country == owner:
            return None
        if owner == codes.EUROJUST and country == EUROJUST_SEAT:
            return None
        return country


# What a client may set of a certificate; the rest is read from the certificate itself.
_CHOSEN = ("use", "pem", "operator_confirmed", "accept_from", "use_from", "accept_until")


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("a window's times carry a time zone offset (e.g. 2027-01-12T00:00Z)")
    return value


EUROJUST_SEAT = "NL"
UNREGISTERED = "urn:oasis:names:tc:ebcore:partyid-type:unregistered"


def owner_prefixes(owner: str) -> tuple[str, ...]:
    """How an owner's party names (and unregistered party ids) begin: its code in lower
    case and a hyphen (`fr-`); Eurojust's also `eurojust-`. No owner can then take a
    name that another will need."""
    own = (f"{owner.lower()}-",)
    return (*own, "eurojust-") if owner == codes.EUROJUST else own


def _wanted(owner: str) -> str:
    return " or ".join(repr(p) for p in owner_prefixes(owner))


class RoutingPartyIn(EntryIn):
    name: PartyName = Field(description="the Domibus party name")
    identifiers: list[PartyIdentifier] = Field(description="its AS4 party ids", min_length=1)
    endpoint_url: HttpsUrl = Field(description="the access point's AS4 endpoint (https)")
    roles: list[Identifier] = Field(
        description="the AS4 roles it takes (e.g. the responder role)", min_length=1
    )
    services: list[Service] = Field(
        description="the AS4 services and actions it receives", default_factory=list
    )
    certificates: list[Certificate] = Field(
        description="its certificates (signing, encryption, TLS)", default_factory=list
    )
    go_live_at: dt.datetime | None = Field(
        default=None, description="when it starts receiving; before then it is not routed to"
    )
    shared_with: list[OwnerCode] = Field(
        default_factory=list, max_length=len(codes.OWNERS),
        description="other owners whose entries may name this party (it always serves its "
        "own owner); an owner left out cannot attach to it",
    )  # fmt: skip

    @field_validator("name")
    @classmethod
    def _name_in_the_owner_s_namespace(cls, name: str, info: ValidationInfo) -> str:
        owner = info.data.get("owner")
        if owner and not name.lower().startswith(owner_prefixes(owner)):
            raise ValueError(f"a party name of {owner} begins with {_wanted(owner)}")
        return name

    @field_validator("identifiers")
    @classmethod
    def _ids_in_the_owner_s_namespace(
        cls, value: list[PartyIdentifier], info: ValidationInfo
    ) -> list[PartyIdentifier]:
        owner: str = info.data.get("owner") or ""
        for identifier in value if owner else ():
            if identifier.operator_confirmed:
                continue  # an operator's exception (checked to be one: EntryIndex.grant_errors)
            own = identifier.party_id.lower().startswith(owner_prefixes(owner))
            if identifier.party_id_type == UNREGISTERED and not own:
                raise ValueError(
                    f"an unregistered party id of {owner} begins with {_wanted(owner)} "
                    f"({identifier.party_id!r} does not)"
                )
            why = outside_namespace(identifier.party_id, identifier.party_id_type, owner)
            if why:
                raise ValueError(f"{why}; an operator may allow it (operator_confirmed)")
        return value

    @field_validator("certificates")
    @classmethod
    def _the_owner_s_certificates(
        cls, value: list[Certificate], info: ValidationInfo
    ) -> list[Certificate]:
        owner: str = info.data.get("owner") or ""
        for certificate in value if owner else ():
            country = certificate.names_another_state(owner)
            if country:
                raise ValueError(
                    f"the certificate of {certificate.subject} names {country} (C={country}); "
                    f"only {country}'s parties may hold it"
                )
        return value

    @field_validator("certificates")
    @classmethod
    def _no_gap(cls, value: list[Certificate]) -> list[Certificate]:
        windows = [Window.of(c.model_dump()) for c in value]
        why = gap([w for w in windows if w is not None], dt.datetime.now(dt.UTC))
        if why:
            raise ValueError(why)
        return value

    @field_validator("shared_with")
    @classmethod
    def _others_only(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("owner") in value:
            raise ValueError("lists the party's own owner (a party always serves its owner)")
        return sorted(set(value))

    @field_validator("identifiers")
    @classmethod
    def _distinct(cls, value: list[PartyIdentifier]) -> list[PartyIdentifier]:
        pairs = [(i.party_id, i.party_id_type) for i in value]
        if len(set(pairs)) != len(pairs):
            raise ValueError("lists the same party id twice")
        return value
