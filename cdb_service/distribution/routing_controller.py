"""`GET /api/v1/routing-table`: what an e-CODEX connector polls every few minutes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import Parameter
from litestar.response.base import ASGIResponse
from litestar.serialization import encode_json
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import revisions as rev
from cdb_service.distribution import pmode, routing_table
from cdb_service.distribution.routing_table import TableDigests
from cdb_service.kernel.calendar import today
from cdb_service.kernel.problems import NOT_FOUND, FieldError, invalid
from cdb_service.lookup.follower import IndexFollower
from cdb_service.security.signing_keys import SigningKeys
from cdb_service.web.conditional import conditional, none_match, not_modified
from cdb_service.web.docs import operation, problems
from cdb_service.web.negotiation import require_json

FORMATS = ("json", "pmode")
OMITTED = "CDB-Omitted-Parties"
SIGNATURE = "CDB-Signature"
SIGNATURE_TYPE = "cdb-routing-table+jws"
XML = "application/xml"
PMODE_FORM = Schema(
    type=OpenAPIType.STRING,
    description="`format=pmode`: a Domibus PMode configuration, valid against Domibus's "
    "domibus-pmode.xsd",
)


class IdentifierDoc(BaseModel):
    party_id: str = Field(description="the AS4 party id")
    party_id_type: str = Field(description="its type (a party-id-types URN)")


class ServiceDoc(BaseModel):
    service: str = Field(description="the AS4 service")
    service_type: str | None = Field(description="the service's type attribute, when it has one")
    actions: list[str] = Field(description="the AS4 actions accepted under it")


class CertificateDoc(BaseModel):
    use: str = Field(description="signing, encryption or tls")
    sha256: str = Field(description="its SHA-256 fingerprint")
    subject: str = Field(description="its subject distinguished name")
    not_after: str | None = Field(description="the end of its validity")
    accept_from: str | None = Field(
        description="from when truststores hold it (null: its own validity, for a certificate "
        "recorded before windows existed)"
    )
    use_from: str | None = Field(
        description="from when it is used for encryption and signing (null: as accept_from)"
    )
    accept_until: str | None = Field(description="until when truststores hold it")
    pem: str = Field(description="the certificate, PEM-encoded")


class RoutingPartyDoc(BaseModel):
    id: str = Field(description="the routing party's entry id")
    name: str = Field(description="its Domibus party name")
    owner: str = Field(description="its owner")
    identifiers: list[IdentifierDoc] = Field(description="its AS4 party ids")
    endpoint_url: str = Field(description="its AS4 endpoint")
    roles: list[str] = Field(description="the AS4 roles it takes")
    services: list[ServiceDoc] = Field(description="the services and actions it receives")
    certificates: list[CertificateDoc] = Field(description="its certificates")
    go_live_at: str | None = Field(description="when it starts receiving")
    valid_from: str | None = Field(description="first day of validity")
    valid_to: str | None = Field(description="last day of validity")
    final_recipients: list[str] = Field(description="the finalRecipient codes it serves")


class WarningDoc(BaseModel):
    """A party left out of every PMode because its data cannot be expressed validly."""

    party: str = Field(description="the party left out")
    owner: str = Field(description="its owner (who must correct it)")
    code: str = Field(description="why, as a code")
    detail: str = Field(description="why, in a sentence")


class RoutingTableDoc(BaseModel):
    """format=json; with format=pmode the body is a Domibus PMode configuration (XML)."""

    revision: int = Field(description="the registry revision it was read at")
    valid_at: str = Field(description="the day it holds for (today)")
    generated_at: str = Field(description="when it was made")
    parties: list[RoutingPartyDoc] = Field(description="every routing party valid that day")
    warnings: list[WarningDoc] = Field(description="parties left out of a PMode, and why")


WHOLE_NETWORK_DOC = (
    "format=pmode without `party`: set to true to take the whole network's PMode anyway; "
    "its `party` attribute then names the first party by name, a placeholder to replace "
    "with the access point's own party before uploading"
)


class RoutingTableController(Controller):
    path = "/routing-table"
    tags = ["routing-table"]  # noqa: RUF012

    @get(
        "/",
        summary="Every routing party with the recipients it serves (JSON or a Domibus PMode)",
        description=(
            "Annex I 7.2(c). `format=json` (default) lists every routing party valid today "
            "with its identifiers, endpoint, roles, services, certificates and the "
            "finalRecipient codes it serves; `format=pmode` is a Domibus PMode configuration "
            "(XML) whose own party is `party`, required unless `whole_network=true`, "
            "validated before it is served: a party whose data cannot be expressed validly is "
            "left out, named in the `CDB-Omitted-Parties` header and in the JSON form's "
            "`warnings`. The weak `ETag` is a digest of the parties and the recipients they "
            "serve: a write that changes neither (an authority's contacts, a criterion) leaves "
            "it as it was, so a connector polling with `If-None-Match` gets 304 and reloads "
            "nothing. Every 200 carries `CDB-Signature`: a detached JWS (RFC 7515 appendix "
            "F) over the body as sent before any content coding, made with a key of "
            "`/.well-known/jwks.json`."
        ),
        responses={
            200: ResponseSpec(
                data_container=RoutingTableDoc,
                description="the routing table (JSON), or with format=pmode a PMode (XML)",
                generate_examples=False,
            ),
            304: ResponseSpec(data_container=None, description="unchanged since the ETag"),
            **problems(404, 406, 422),
        },
        operation_class=operation(forms={XML: PMODE_FORM}),
    )
    async def routing_table(
        self,
        request: Request[Any, Any, Any],
        lookup: NamedDependency[IndexFollower],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        routing_digests: NamedDependency[TableDigests],
        signing: NamedDependency[SigningKeys],
        format: str = Parameter(
            default="json", description="json (default) or pmode (Domibus PMode XML)"
        ),
        party: str | None = Parameter(
            default=None,
            description="format=pmode: the receiving party's name (the access point's own)",
        ),
        whole_network: bool = Parameter(default=False, description=WHOLE_NETWORK_DOC),
    ) -> ASGIResponse:
        if format not in FORMATS:
            raise invalid([FieldError(("query", "format"), f"{format!r} is not json or pmode")])
        if format == "json":
            require_json(request.scope)
        if format == "pmode" and party is None and not whole_network:
            raise invalid([FieldError(
                ("query", "party"),
                "format=pmode needs the receiving party (your access point's name); "
                "whole_network=true takes the whole network's PMode instead",
            )])  # fmt: skip
        day = today()
        chosen = party if format == "pmode" else None
        digests = routing_digests
        # A 200's tag is the digest of the table in its own body. A 304 is decided first
        # from the digest this process computed at the in-memory lookup index's revision
        # (it follows the head within a second): no database work at all, and a change is
        # at most that second late. A revision not seen yet costs one read of the table.
        index = lookup.index
        if index is not None and (known := digests.get(index.revision, day)) is not None:
            tag = routing_table.etag(known, format, chosen)
            if none_match(request.scope, tag):
                return not_modified(tag)
        async with rev.read_snapshot(sessions) as session:
            table = await routing_table.read_table(session, day)
        digest = table.digest()
        digests.put(table.revision, day, digest)
        tag = routing_table.etag(digest, format, chosen)
        if format == "json":
            body = encode_json(routing_table.as_json(table, dt.datetime.now(dt.UTC)))
            return conditional(request.scope, tag, body, headers=_signed(signing, body))
        names = table.party_names()
        if not names:
            raise NOT_FOUND("no routing party is valid today: there is no PMode to build")
        if party is not None and party not in names:
            raise invalid(
                [FieldError(("query", "party"), f"{party!r} is not a routing party valid today")]
            )
        # The whole network's placeholder is the first party that a PMode can carry.
        receiving = party or next(
            (p["name"] for p in table.parties if pmode.inexpressible(p) is None), names[0]
        )
        why = next((pmode.inexpressible(p) for p in table.parties
                    if p["name"] == receiving), None)  # fmt: skip
        if why is not None:
            raise invalid([FieldError(("query", "party"), f"{receiving!r} cannot be expressed "
                          f"as a valid PMode: {why}; its owner must correct it")])  # fmt: skip
        built = routing_table.as_pmode(table, receiving)
        # The parties left out are named in a header (and in the JSON form's warnings).
        headers = {OMITTED: ", ".join(name for name, _ in built.omitted)} if built.omitted else {}
        return conditional(
            request.scope, tag, built.xml, XML, headers | _signed(signing, built.xml)
        )


def _signed(signing: SigningKeys, body: bytes) -> dict[str, str]:
    """The body's detached signature, as a header (a 304 carries no body and none)."""
    return {SIGNATURE: signing.sign_detached(body, SIGNATURE_TYPE)}
