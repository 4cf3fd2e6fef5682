"""A stand-in for Domibus's external REST API (the `/ext` resources a plugin or AP-admin
user calls), written from Domibus's own sources; it never calls a real Domibus.

Sources (Domibus 5.1, module Domibus-MSH-ext-services-delegate, package
eu.domibus.ext.rest, as mirrored at https://github.com/betagouv/domibus):
`Core/Domibus-MSH-ext-services-delegate/src/main/java/eu/domibus/ext/rest/PModeFileExtResource.java`
(`/ext/pmode`, since 4.1.1), `.../rest/TruststoreExtResource.java` (`/ext/truststore`,
since 5.1, roles ROLE_ADMIN / ROLE_AP_ADMIN), `.../rest/error/ExtExceptionHelper.java`
and `ExtExceptionHandlerAdvice.java` (status codes), and the DTOs PModeArchiveInfoDTO
`{id, configurationDate, username, description}`, ValidationResponseDTO
`{message, issues}`, ErrorDTO `{message}`.

What it answers:
- every call: HTTP Basic authentication; a wrong user or password → 401 with
  `WWW-Authenticate: Basic` (Spring Security's entry point);
- `POST /ext/pmode` (multipart `file` + `description`): a missing part or an empty
  description → 400 (Spring's MissingServletRequestPartException / the @NotEmpty
  constraint); a PMode that is not well-formed XML → 406 with ErrorDTO (Domibus's
  PModeValidationException status); else the PMode becomes current with the next id
  and 200 `{message: "PMode file has been successfully uploaded", issues: []}`;
- `GET /ext/pmode/current`: the current PModeArchiveInfoDTO, or an empty 200 when none;
- `GET /ext/pmode/{id}`: that PMode's XML;
- `POST /ext/truststore` (multipart `file` + `password`): a missing part → 400; a blank
  password → 400 (RequestValidationException "…its password was empty."); else the
  truststore is replaced and the answer is the plain sentence Domibus sends;
- `GET /ext/truststore/download`: the current store's bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.standins import Answer, Request, StandIn, json_answer, text_answer


@dataclass(frozen=True)
class PMode:
    id: int
    description: str
    username: str
    configuration_date: dt.datetime
    content: bytes = field(repr=False)

    def info(self) -> dict[str, object]:
        return {
            "id": self.id,
            "configurationDate": self.configuration_date.isoformat(),
            "username": self.username,
            "description": self.description,
        }


EMPTY_PASSWORD = "Failed to upload the truststoreFile file since its password was empty."


class DomibusStandIn(StandIn):
    def __init__(self, username: str = "cdb-sync", password: str = "Domibus-5.1!",
                 *, tls: tuple[Path, Path] | None = None, prefix: str = "") -> None:  # fmt: skip
        super().__init__(tls=tls, prefix=prefix)
        self.username = username
        self.password = password
        self.pmodes: list[PMode] = []
        self.truststore: bytes | None = None
        self.truststore_filename: str | None = None
        self.truststore_password: str | None = None

    @property
    def current(self) -> PMode | None:
        return self.pmodes[-1] if self.pmodes else None

    def user_of(self, request: Request) -> str | None:
        credentials = _basic(request.headers.get("Authorization", ""))
        return credentials[0] if credentials else None

    def route(self, request: Request) -> Answer:
        if _basic(request.headers.get("Authorization", "")) != (self.username, self.password):
            return json_answer(401, {"message": "Bad credentials"},
                               {"WWW-Authenticate": 'Basic realm="Domibus"'})  # fmt: skip
        method, path = request.method, request.path
        if (method, path) == ("POST", "/ext/pmode"):
            return self._upload_pmode(request)
        if (method, path) == ("GET", "/ext/pmode/current"):
            current = self.current
            return json_answer(200, current.info()) if current else Answer(200)
        if method == "GET" and path.startswith("/ext/pmode/"):
            wanted = path.rsplit("/", 1)[1]
            for pmode in self.pmodes:
                if str(pmode.id) == wanted:
                    return Answer(200, pmode.content, "application/xml")
            return json_answer(404, {"message": "Could not download the PMode."})
        if (method, path) == ("POST", "/ext/truststore"):
            return self._upload_truststore(request)
        if (method, path) == ("GET", "/ext/truststore/download") and self.truststore:
            return Answer(200, self.truststore, "application/octet-stream")
        return json_answer(404, {"message": f"No handler for {method} {path}"})

    def _upload_pmode(self, request: Request) -> Answer:
        upload = request.files.get("file")
        description = request.fields.get("description")
        if upload is None or description is None:
            return Answer(400, b"")  # Spring: a required part or parameter is missing
        if not description.strip():
            return json_answer(400, {"message": "uploadPMode.pModeDescription: must not be empty"})
        try:
            ElementTree.fromstring(upload.content)
        except ElementTree.ParseError as error:
            return json_answer(406, {"message": f"Failed to upload the PMode file due to: {error}"})
        pmode = PMode(len(self.pmodes) + 1, description, self.username,
                      dt.datetime.now(dt.UTC), upload.content)  # fmt: skip
        self.pmodes.append(pmode)
        return json_answer(
            200, {"message": "PMode file has been successfully uploaded", "issues": []}
        )

    def _upload_truststore(self, request: Request) -> Answer:
        upload = request.files.get("file")
        password = request.fields.get("password")
        if upload is None or password is None:
            return Answer(400, b"")
        if not password.strip():
            return json_answer(400, {"message": EMPTY_PASSWORD})
        self.truststore = upload.content
        self.truststore_filename = upload.filename
        self.truststore_password = password
        return text_answer(200, "Truststore file has been successfully replaced.")


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return None
    return user, password
