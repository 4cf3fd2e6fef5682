"""A stand-in for e-CODEX connector-ng's (7.0) REST API: login and processing-mode
administration, written from connector-ng's own sources; it never calls a real connector.

Sources (https://github.com/e-CODEX/connector-ng):
`connector-infrastructure/src/main/java/eu/ecodex/connector/infrastructure/inbound/web/rest/controller/auth/ConnectorAuthenticationApi.java`
(`POST /api/v1/auth/login`, JSON, 401 for bad credentials),
`.../inbound/web/rest/request/login/ConnectorLoginRequest.java` (`{username, password}`),
the domain's LoginResponse / ConnectorLoginResponse (`{accessToken, ...}`),
`connector-application/src/main/java/eu/ecodex/connector/application/presentation/rest/api/admin/ConnectorProcessingModeAdminApi.java`
(`POST /api/v1/admin/processing-modes`, multipart `processingModeXmlFile`,
`truststoreFile`, part `metadata`; 201 ConnectorProcessingModeDto; 400 ErrorResponse;
`GET /api/v1/admin/processing-modes`, "Get all processing modes", a list of
ConnectorProcessingModeDto `{uuid, description, content, filename,
businessDomainIdentifier, createdAt, updatedAt}`),
its controller (the PMode part must be application/xml or text/xml),
`.../request/pmode/ConnectorProcessingModeCreationRequest.java`
(`{description, businessDomainIdentifier, truststore}`, all required),
`.../request/pmode/ConnectorKeystoreCreationRequest.java` (`{password, description,
type}`), ConnectorKeystoreType (JKS, JCEKS, PKCS12, PKCS12S2), and
`.../rest/advice/GlobalExceptionHandler.java` (a business-domain failure is a 409).

What it answers:
- `POST /api/v1/auth/login`: the right `{username, password}` → 200
  `{accessToken, refreshToken, expiresIn, refreshExpiresIn}`; else 401 ErrorResponse;
- every other call without a token it issued → 401;
- `POST /api/v1/admin/processing-modes`: a missing part → 400; a PMode part that is not
  XML by its content type → 400 "pmode file must be XML"; a `metadata` part that is not
  JSON or lacks a field → 400; a business domain it does not have → 409; else 201 with
  the new processing mode (a fresh uuid) kept in `processing_modes`;
- `GET /api/v1/admin/processing-modes`: the list.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.standins import Answer, Request, StandIn, json_answer

KEYSTORE_TYPES = ("JKS", "JCEKS", "PKCS12", "PKCS12S2")
XML_TYPES = ("application/xml", "text/xml")


@dataclass(frozen=True)
class ProcessingMode:
    uuid: str
    description: str
    business_domain: str
    filename: str | None
    created_at: dt.datetime
    content: bytes = field(repr=False)
    truststore: bytes = field(repr=False)
    truststore_meta: dict[str, Any] = field(repr=False)

    def dto(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "description": self.description,
            "content": self.content.decode("utf-8", "replace"),
            "filename": self.filename,
            "businessDomainIdentifier": self.business_domain,
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.created_at.isoformat(),
        }


def _error(status: int, message: str) -> Answer:
    return json_answer(status, {"status": status, "message": message})


class ConnectorNgStandIn(StandIn):
    def __init__(self, username: str = "cdb-sync", password: str = "connector-NG-7!",
                 *, business_domains: tuple[str, ...] = ("lane1",),
                 tls: tuple[Path, Path] | None = None, prefix: str = "") -> None:  # fmt: skip
        super().__init__(tls=tls, prefix=prefix)
        self.username = username
        self.password = password
        self.business_domains = set(business_domains)
        self.tokens: dict[str, str] = {}  # token → user
        self.processing_modes: list[ProcessingMode] = []

    def user_of(self, request: Request) -> str | None:
        if request.path == "/api/v1/auth/login":
            body = request.json()
            return str(body.get("username")) if isinstance(body, dict) else None
        return self.tokens.get(_bearer(request.headers.get("Authorization", "")) or "")

    def route(self, request: Request) -> Answer:
        method, path = request.method, request.path
        if (method, path) == ("POST", "/api/v1/auth/login"):
            return self._login(request)
        if _bearer(request.headers.get("Authorization", "")) not in self.tokens:
            return _error(401, "Full authentication is required to access this resource")
        if (method, path) == ("POST", "/api/v1/admin/processing-modes"):
            return self._create(request)
        if (method, path) == ("GET", "/api/v1/admin/processing-modes"):
            return json_answer(200, [mode.dto() for mode in self.processing_modes])
        return _error(404, f"No static resource {path.lstrip('/')}.")

    def _login(self, request: Request) -> Answer:
        body = request.json()
        if not isinstance(body, dict):
            return _error(400, "Required request body is missing")
        if (body.get("username"), body.get("password")) != (self.username, self.password):
            return _error(401, "Bad credentials")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = self.username
        return json_answer(200, {"accessToken": token, "refreshToken": secrets.token_urlsafe(24),
                                 "expiresIn": 300, "refreshExpiresIn": 1800})  # fmt: skip

    def _create(self, request: Request) -> Answer:
        pmode = request.files.get("processingModeXmlFile")
        store = request.files.get("truststoreFile")
        part = request.files.get("metadata")
        for name, present in (("processingModeXmlFile", pmode), ("truststoreFile", store),
                              ("metadata", part)):  # fmt: skip
            if present is None:
                return _error(400, f"Required part '{name}' is not present.")
        assert pmode is not None and store is not None and part is not None
        if pmode.content_type not in XML_TYPES:
            return _error(400, "pmode file must be XML")
        metadata = Request.parse_json(part.content)
        problem = _metadata_problem(metadata)
        if problem:
            return _error(400, problem)
        domain = metadata["businessDomainIdentifier"]
        if domain not in self.business_domains:
            return _error(409, f"Business domain {domain} not found")
        mode = ProcessingMode(str(uuid.uuid4()), metadata["description"], domain, pmode.filename,
                              dt.datetime.now(dt.UTC), pmode.content, store.content,
                              dict(metadata["truststore"]))  # fmt: skip
        self.processing_modes.append(mode)
        return json_answer(201, mode.dto())


def _metadata_problem(metadata: Any) -> str | None:
    if not isinstance(metadata, dict):
        return "metadata: not a JSON object"
    for name in ("description", "businessDomainIdentifier"):
        if not isinstance(metadata.get(name), str) or not metadata[name].strip():
            return f"{name}: must not be blank"
    store = metadata.get("truststore")
    if not isinstance(store, dict):
        return "truststore: must not be null"
    for name in ("password", "description"):
        if not isinstance(store.get(name), str) or not store[name].strip():
            return f"truststore.{name}: must not be blank"
    if store.get("type") not in KEYSTORE_TYPES:
        return "truststore.type: must be one of " + ", ".join(KEYSTORE_TYPES)
    return None


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value if scheme.lower() == "bearer" and value else None
