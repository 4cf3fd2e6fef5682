"""The connector-ng target: a package's PMode and connectorstore registered as a new
processing mode of one business domain (message lane) of an e-CODEX connector-ng (7.0).

The contract, read from connector-ng's sources (github.com/e-CODEX/connector-ng):

- `POST /api/v1/auth/login`, JSON `{username, password}` (ConnectorLoginRequest) →
  `{accessToken, ...}`; 401 for wrong credentials
  (`connector-infrastructure/.../inbound/web/rest/controller/auth/
  ConnectorAuthenticationApi.java`, `.../request/login/ConnectorLoginRequest.java`).
  The token goes in `Authorization: Bearer …`.
- `POST /api/v1/admin/processing-modes`, multipart (`connector-application/src/main/java/
  eu/ecodex/connector/application/presentation/rest/api/admin/
  ConnectorProcessingModeAdminApi.java`): `processingModeXmlFile` (must be sent as
  application/xml or text/xml, else 400 "pmode file must be XML"), `truststoreFile`, and
  the part `metadata` (application/json, ConnectorProcessingModeCreationRequest):
  `{description, businessDomainIdentifier, truststore: {password, description, type}}`
  with `type` one of JKS, JCEKS, PKCS12, PKCS12S2 (ConnectorKeystoreType). 201 with
  ConnectorProcessingModeDto `{uuid, description, content, filename,
  businessDomainIdentifier, createdAt, updatedAt}`; 400 with ErrorResponse
  `{status, message}`; a business-domain failure is a 409 (GlobalExceptionHandler).

Assumptions, where the sources are silent or differ between versions: the issue names
`metadata` = `{description, businessDomainIdentifier}`; the sources require the
truststore's password, description and type in it too, so they are sent. The store sent
is the package's connectorstore (`connectorstore.jks` / `.p12`: the store connector 4.x
imports with its PMode); a package without one cannot be applied and says so. A fresh
login per package: tokens are short-lived and a package is applied rarely.

- `GET /api/v1/admin/processing-modes` (the same ConnectorProcessingModeAdminApi, every
  version: "Get all processing modes") → a list of ConnectorProcessingModeDto.

A package is registered once: before registering, the target lists the processing modes
and looks for one of its business domain whose description is this package's (the
description names the package digest). A registration whose answer was lost (a timeout
after connector-ng stored it, a dropped connection) is found there by the retry and not
sent again, as the Domibus target does with `GET /ext/pmode/current`. Only a retry that
lists before connector-ng has committed the first registration can still send it twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cdb_service.sync import http_calls
from cdb_service.sync.target import TargetFailed, VerifiedPackage

KIND = "connector-ng"
STORE_MEMBERS = {"JKS": "connectorstore.jks", "PKCS12": "connectorstore.p12"}
ANSWER_KEYS = ("uuid", "description", "filename", "businessDomainIdentifier", "createdAt")


@dataclass(frozen=True)
class ConnectorNgTarget:
    """One connector-ng (its REST API at `base_url`) and the business domain
    (`businessDomainIdentifier`, the message lane) the packages go to."""

    name: str
    base_url: str
    username: str
    password: str = field(repr=False)
    business_domain: str
    ca: Path | None = None  # the CA that signed the connector's certificate; None: the system's
    timeout_s: float = 30.0
    store_type: str = "JKS"  # which connectorstore of the package: JKS or PKCS12
    description: str = http_calls.DEFAULT_DESCRIPTION
    kind: str = field(default=KIND, init=False)

    def __post_init__(self) -> None:
        if self.store_type not in STORE_MEMBERS:
            raise ValueError(f"store_type must be one of {', '.join(STORE_MEMBERS)}")
        if not self.business_domain.strip():
            raise ValueError("business_domain must name the connector's business domain")
        http_calls.check_template(self.description)

    @property
    def label(self) -> str:
        return f"connector-ng {self.name}"

    def apply(self, package: VerifiedPackage) -> Mapping[str, Any]:
        pmode = http_calls.member(package, "pmode.xml", self.label)
        store_name = STORE_MEMBERS[self.store_type]
        store = http_calls.member(package, store_name, self.label)
        description = http_calls.describe(self.description, package)
        metadata = {
            "description": description,
            "businessDomainIdentifier": self.business_domain,
            "truststore": {
                "password": package.store_password,
                "description": f"connectorstore of {description}"[: http_calls.DESCRIPTION_MAX],
                "type": self.store_type,
            },
        }
        with http_calls.client(self.base_url, self.ca, self.timeout_s) as client:
            auth = self._login(client)
            there = self._registered(client, auth, description)
            if there is not None:
                return {"processing_mode": {key: there.get(key) for key in ANSWER_KEYS},
                        "registered": False}  # fmt: skip
            response = self._call(
                lambda: client.post(
                    "/api/v1/admin/processing-modes",
                    headers=auth,
                    files=[
                        ("processingModeXmlFile", ("pmode.xml", pmode, "application/xml")),
                        ("truststoreFile", (store_name, store, "application/octet-stream")),
                        (
                            "metadata",
                            ("metadata.json", json.dumps(metadata).encode(), "application/json"),
                        ),
                    ],
                ),
                "registering the processing mode",
            )
        what = "registering the processing mode"
        created = http_calls.json_body(response, target=self.label, what=what)
        if not isinstance(created, Mapping) or not created.get("uuid"):
            raise TargetFailed(
                f"{self.label} names no processing mode after {what}", transient=False
            )
        return {"processing_mode": {key: created.get(key) for key in ANSWER_KEYS},
                "registered": True}  # fmt: skip

    def _registered(self, client: httpx.Client, auth: Mapping[str, str],
                    description: str) -> Mapping[str, Any] | None:  # fmt: skip
        """The processing mode of this business domain that carries `description` (this
        package), if connector-ng has one already."""
        what = "listing the processing modes"
        response = self._call(
            lambda: client.get("/api/v1/admin/processing-modes", headers=dict(auth)), what
        )
        listed = http_calls.json_body(response, target=self.label, what=what)
        if not isinstance(listed, list):
            raise TargetFailed(f"{self.label}: {what}: the answer is not a list", transient=False)
        for mode in listed:
            if (isinstance(mode, Mapping) and mode.get("uuid")
                    and mode.get("businessDomainIdentifier") == self.business_domain
                    and mode.get("description") == description):  # fmt: skip
                return mode
        return None

    def _login(self, client: httpx.Client) -> dict[str, str]:
        what = "logging in"
        response = self._call(
            lambda: client.post(
                "/api/v1/auth/login", json={"username": self.username, "password": self.password}
            ),
            what,
        )
        body = http_calls.json_body(response, target=self.label, what=what)
        token = body.get("accessToken") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token:
            raise TargetFailed(f"{self.label} gave no access token ({what})", transient=False)
        return {"Authorization": f"Bearer {token}"}

    def _call(self, send: Any, what: str) -> httpx.Response:
        return http_calls.call(
            send, target=self.label, what=what, user=self.username, secret=self.password,
            timeout_s=self.timeout_s,
        )  # fmt: skip
