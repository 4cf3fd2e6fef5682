"""A stand-in for e-CODEX connector-ng's (7.0) REST API: login and processing-mode
administration, written from connector-ng's own sources; it never calls a real connector.

It follows the newest stored version of the sources (https://github.com/e-CODEX/connector-ng),
the only one that can change a business domain's processing mode once it has one:
`connector-infrastructure/src/main/java/eu/ecodex/connector/infrastructure/inbound/web/rest/`
- `controller/auth/ConnectorAuthenticationApi.java` (`POST /api/v1/auth/login`, JSON
  `{username, password}` (`request/login/ConnectorLoginRequest.java`) → `{accessToken,
  ...}`, 401 for bad credentials);
- `controller/admin/pmode/ConnectorProcessingModeAdminController.java` (registerPmode,
  listPmodes, retrievePmode, downloadPmode, updateTruststore) with the paths, part names
  and statuses of connector-ng's own tests `ConnectorProcessingModeAdminControllerTest`,
  `ConnectorRegisterProcessingModeIT`, `ConnectorRetrieveProcessingModeIT` and
  `ConnectorUpdateProcessingModeTruststoreIT`;
- `request/pmode/ConnectorProcessingModeTruststoreRequest.java` (`password` not blank,
  `truststoreFile` not null); `dto/pmode/ConnectorProcessingModeDto.java`,
  `ConnectorProcessingModeDetailDto.java`, `ConnectorProcessingModeTruststoreDto.java`
  (`{filename, password, type}`, the type from the file name's extension);
- `advice/GlobalExceptionHandler.java` (at 06c2e6ab: ConnectorBusinessDomainAlreadyExists
  → 409, ConnectorBusinessDomainNotFound and ConnectorProcessingModeNotFound → 404,
  ConnectorBadRequest and validation → 400; every one an ErrorResponse `{status, message}`);
- `connector-application/.../service/pmode/ConnectorRegisterProcessingModeService.java`
  (at c2a08323: a business domain has at most one processing mode; a second registration
  is refused, "The business domain [%s] already has a processing mode") and
  `ConnectorUpdateProcessingModeTruststoreService.java` (at 29af8a7c: the truststore of
  an existing processing mode is replaced; "Processing mode with UUID %s not found").

No version has a way to change a processing mode's PMode or to delete one (the
application's ports, `port/api/pmode/`, are register, list, retrieve, verify and update
the truststore), so neither has the stand-in.

What it answers:
- `POST /api/v1/auth/login`: the right `{username, password}` → 200
  `{accessToken, refreshToken, expiresIn, refreshExpiresIn}`; else 401 ErrorResponse;
- every other call without a token it issued → 401;
- `POST /api/v1/admin/processing-modes`, multipart: files `processingModeFile` (its
  content type application/xml or text/xml, else 400 "Pmode file must be an XML file")
  and `truststore.truststoreFile`, fields `description`, `businessDomainIdentifier`,
  `truststore.password` (a missing or blank one → 400); a business domain it does not
  have → 404; one that has a processing mode already → 409; else 201 with the new
  processing mode (a fresh uuid) kept in `processing_modes`;
- `GET /api/v1/admin/processing-modes`: the list (ConnectorProcessingModeDto, with the
  PMode as `content`);
- `GET /api/v1/admin/processing-modes/{uuid}`: the detail, its `truststore` included;
  404 for an unknown uuid;
- `PATCH /api/v1/admin/processing-modes/{uuid}/truststore`, multipart: file
  `truststoreFile`, field `password` → 200 ConnectorProcessingModeTruststoreDto, the
  processing mode's truststore replaced (its PMode and description stay); 404 for an
  unknown uuid; 400 for a missing part or a blank password.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.standins import Answer, Request, StandIn, json_answer

XML_TYPES = ("application/xml", "text/xml")
MODES = "/api/v1/admin/processing-modes"
# KeystoreType.fromFileName: the type is read from the file name's extension.
STORE_TYPES = {".jks": "JKS", ".p12": "PKCS12", ".pfx": "PKCS12"}


@dataclass(frozen=True)
class ProcessingMode:
    uuid: str
    description: str
    business_domain: str
    filename: str | None
    created_at: dt.datetime
    content: bytes = field(repr=False)
    truststore: bytes = field(repr=False)
    truststore_filename: str | None = None
    truststore_password: str = field(default="", repr=False)
    updated_at: dt.datetime | None = None

    @property
    def truststore_type(self) -> str | None:
        name = (self.truststore_filename or "").lower()
        return next((kind for ext, kind in STORE_TYPES.items() if name.endswith(ext)), None)

    def dto(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "description": self.description,
            "content": self.content.decode("utf-8", "replace"),
            "filename": self.filename,
            "businessDomainIdentifier": self.business_domain,
            "createdAt": self.created_at.isoformat(),
            "updatedAt": (self.updated_at or self.created_at).isoformat(),
        }

    def truststore_dto(self) -> dict[str, Any]:
        return {"filename": self.truststore_filename, "password": self.truststore_password,
                "type": self.truststore_type}  # fmt: skip

    def detail(self) -> dict[str, Any]:
        return self.dto() | {"truststore": self.truststore_dto(), "parties": [],
                             "services": [], "actions": []}  # fmt: skip


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
        if (method, path) == ("POST", MODES):
            return self._create(request)
        if (method, path) == ("GET", MODES):
            return json_answer(200, [mode.dto() for mode in self.processing_modes])
        below = path.removeprefix(MODES + "/").split("/") if path.startswith(MODES + "/") else []
        if method == "GET" and len(below) == 1:
            found = self._mode(below[0])
            return found if isinstance(found, Answer) else json_answer(200, found.detail())
        if method == "PATCH" and len(below) == 2 and below[1] == "truststore":
            return self._update_truststore(below[0], request)
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
        pmode = request.files.get("processingModeFile")
        store = request.files.get("truststore.truststoreFile")
        if pmode is None:
            return _error(400, "The processing mode file must not be empty.")
        if store is None:
            return _error(400, "The truststore file must not be empty.")
        for name in ("description", "businessDomainIdentifier", "truststore.password"):
            if not request.fields.get(name, "").strip():
                return _error(400, f"{name}: must not be blank")
        if pmode.content_type not in XML_TYPES:
            return _error(400, "Pmode file must be an XML file")
        domain = request.fields["businessDomainIdentifier"]
        if domain not in self.business_domains:
            return _error(404, f"Business domain not found: {domain}")
        # ConnectorRegisterProcessingModeService: one processing mode per business domain.
        if any(mode.business_domain == domain for mode in self.processing_modes):
            return _error(409, f"The business domain [{domain}] already has a processing mode")
        mode = ProcessingMode(str(uuid.uuid4()), request.fields["description"], domain,
                              pmode.filename, dt.datetime.now(dt.UTC), pmode.content,
                              store.content, store.filename,
                              request.fields["truststore.password"])  # fmt: skip
        self.processing_modes.append(mode)
        return json_answer(201, mode.dto())

    def _update_truststore(self, mode_uuid: str, request: Request) -> Answer:
        store = request.files.get("truststoreFile")
        if store is None:
            return _error(400, "The truststore file must not be empty.")
        if not request.fields.get("password", "").strip():
            return _error(400, "The truststore password must not be empty.")
        found = self._mode(mode_uuid)
        if isinstance(found, Answer):
            return found
        updated = dataclasses.replace(found, truststore=store.content,
                                      truststore_filename=store.filename,
                                      truststore_password=request.fields["password"],
                                      updated_at=dt.datetime.now(dt.UTC))  # fmt: skip
        self.processing_modes[self.processing_modes.index(found)] = updated
        return json_answer(200, updated.truststore_dto())

    def _mode(self, mode_uuid: str) -> ProcessingMode | Answer:
        for mode in self.processing_modes:
            if mode.uuid == mode_uuid:
                return mode
        return _error(404, f"Processing mode with UUID {mode_uuid} not found")


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value if scheme.lower() == "bearer" and value else None
