"""The Domibus target: a package's PMode (and, on 5.1+, its truststore) through Domibus's
external REST API, as an operator would upload them in the admin console.

The contract, read from Domibus's sources (module Domibus-MSH-ext-services-delegate,
package eu.domibus.ext.rest; e.g. github.com/betagouv/domibus, a mirror of the
Commission's code, `Core/Domibus-MSH-ext-services-delegate/src/main/java/eu/domibus/ext/
rest/PModeFileExtResource.java` and `TruststoreExtResource.java`, and `error/
ExtExceptionHelper.java`):

- HTTP Basic authentication with a plugin or AP-admin user (`DomibusBasicAuth`; the
  truststore resource requires ROLE_ADMIN or ROLE_AP_ADMIN); a wrong one is a 401.
- `POST /ext/pmode` (since 4.1.1), multipart: part `file` (the PMode XML) and parameter
  `description` (not empty). 200 with `{message, issues}`; a PMode Domibus refuses is a
  406 with `{message}` (ErrorDTO); a missing part is Spring's 400.
- `GET /ext/pmode/current`: `{id, configurationDate, username, description}` of the PMode
  in force (PModeArchiveInfoDTO), an empty body when there is none.
- `POST /ext/truststore` (since 5.1), multipart: part `file` (the store) and parameter
  `password` (not blank); 200 with a plain-text sentence. The contract has no type
  field: Domibus takes the store's type from the file name's extension, so the file is
  sent as `truststore.jks` or `truststore.p12` (`store_type`).

Assumptions, where the sources are silent: the truststore uploaded is the package's
gateway truststore (`truststore.jks` / `truststore.p12`), the trust material a gateway
needs; a 403 (an account without the role) is treated like a 401.

Idempotent on retry: Domibus keeps every PMode upload, so before uploading the target
reads the current PMode, and if its description is this package's (it names the
package digest) the PMode is not sent again; a retry after a failed truststore upload
does not push the PMode twice. The password goes only into the Authorization header and
the truststore's `password` field: it is kept out of `repr` and of every message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cdb_service.sync import http_calls
from cdb_service.sync.target import TargetFailed, VerifiedPackage

KIND = "domibus"
STORE_MEMBERS = {"JKS": "truststore.jks", "PKCS12": "truststore.p12"}


@dataclass(frozen=True)
class DomibusTarget:
    """One Domibus gateway (its admin REST API at `base_url`, e.g.
    https://gw.example.eu/domibus, under which /ext/... lies)."""

    name: str
    base_url: str
    username: str
    password: str = field(repr=False)
    ca: Path | None = None  # the CA that signed the gateway's certificate; None: the system's
    timeout_s: float = 30.0
    truststore_api: bool = False  # Domibus 5.1 and later: upload the truststore too
    store_type: str = "JKS"  # which truststore of the package: JKS or PKCS12
    description: str = http_calls.DEFAULT_DESCRIPTION
    kind: str = field(default=KIND, init=False)

    def __post_init__(self) -> None:
        if self.store_type not in STORE_MEMBERS:
            raise ValueError(f"store_type must be one of {', '.join(STORE_MEMBERS)}")
        http_calls.check_template(self.description)

    @property
    def label(self) -> str:
        return f"Domibus {self.name}"

    def apply(self, package: VerifiedPackage) -> Mapping[str, Any]:
        pmode = http_calls.member(package, "pmode.xml", self.label)
        store_name = STORE_MEMBERS[self.store_type]
        store = http_calls.member(package, store_name, self.label) if self.truststore_api else None
        description = http_calls.describe(self.description, package)
        auth = httpx.BasicAuth(self.username, self.password)
        with http_calls.client(self.base_url, self.ca, self.timeout_s) as client:
            current = self._current(client, auth)
            uploaded = not (
                isinstance(current, Mapping) and current.get("description") == description
            )
            if uploaded:
                self._call(
                    lambda: client.post(
                        "/ext/pmode",
                        auth=auth,
                        data={"description": description},
                        files={"file": ("pmode.xml", pmode, "application/xml")},
                    ),
                    "uploading the PMode",
                )
                current = self._current(client, auth)
            truststore: dict[str, Any] | None = None
            if store is not None:
                said = self._call(
                    lambda: client.post(
                        "/ext/truststore",
                        auth=auth,
                        data={"password": package.store_password},
                        files={"file": (store_name, store, "application/octet-stream")},
                    ),
                    "uploading the truststore",
                )
                truststore = {"file": store_name, "message": " ".join(said.text.split())[:200]}
        if not isinstance(current, Mapping) or "id" not in current:
            raise TargetFailed(
                f"{self.label} names no current PMode after the upload", transient=False
            )
        return {
            "pmode_current": {
                key: current.get(key) for key in ("id", "configurationDate", "description")
            },
            "pmode_uploaded": uploaded,
            "truststore": truststore,
        }

    def _current(self, client: httpx.Client, auth: httpx.Auth) -> Any:
        what = "reading the current PMode"
        response = self._call(lambda: client.get("/ext/pmode/current", auth=auth), what)
        return http_calls.json_body(response, target=self.label, what=what)

    def _call(self, send: Any, what: str) -> httpx.Response:
        return http_calls.call(
            send, target=self.label, what=what, user=self.username, secret=self.password,
            timeout_s=self.timeout_s,
        )  # fmt: skip
