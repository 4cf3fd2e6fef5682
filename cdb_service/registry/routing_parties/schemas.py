from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdb_service.kernel import codes
from cdb_service.registry.fields import HttpsUrl, ShortText, member_of
from cdb_service.registry.schemas import EntryIn, Strict
from cdb_service.security.x509 import parse_single_certificate

PartyName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
PartyIdType = Annotated[str, member_of("party-id-types", codes.PARTY_ID_TYPES)]
CertificateUse = Annotated[str, member_of("certificate-uses", codes.CERTIFICATE_USES)]


class PartyIdentifier(Strict):
    party_id: ShortText
    party_id_type: PartyIdType = "urn:oasis:names:tc:ebcore:partyid-type:unregistered"


class Service(Strict):
    service: ShortText
    service_type: ShortText | None = None
    actions: list[ShortText] = Field(min_length=1)


class Certificate(BaseModel):
    """A certificate as uploaded (`use`, `pem`) with what the server reads from it."""

    # Derived fields sent back by a client are ignored and recomputed from the PEM.
    model_config = ConfigDict(extra="ignore")

    use: CertificateUse
    pem: str
    sha256: str = ""
    subject: str = ""
    issuer: str = ""
    not_after: dt.datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _ignore_derived(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: data[k] for k in ("use", "pem") if k in data}
        return data

    @field_validator("pem")
    @classmethod
    def _parse(cls, pem: str) -> str:
        return parse_single_certificate(pem).pem

    @model_validator(mode="after")
    def _derive(self) -> Certificate:
        facts = parse_single_certificate(self.pem)
        self.sha256, self.subject, self.issuer = facts.sha256, facts.subject, facts.issuer
        self.not_after = facts.not_after
        return self


class RoutingPartyIn(EntryIn):
    name: PartyName = Field(description="the Domibus party name")
    identifiers: list[PartyIdentifier] = Field(min_length=1)
    endpoint_url: HttpsUrl
    roles: list[ShortText] = Field(min_length=1)
    services: list[Service] = Field(default_factory=list)
    certificates: list[Certificate] = Field(default_factory=list)
    go_live_at: dt.datetime | None = None

    @field_validator("identifiers")
    @classmethod
    def _distinct(cls, value: list[PartyIdentifier]) -> list[PartyIdentifier]:
        pairs = [(i.party_id, i.party_id_type) for i in value]
        if len(set(pairs)) != len(pairs):
            raise ValueError("lists the same party id twice")
        return value
