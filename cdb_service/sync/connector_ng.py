"""The connector-ng target: a package's PMode and connectorstore as the processing mode of
one business domain (message lane) of an e-CODEX connector-ng (7.0).

The contract, read from connector-ng's sources (github.com/e-CODEX/connector-ng), in
its newest stored version, the only one that can change a business domain's processing
mode once it has one (paths below `connector-infrastructure/src/main/java/eu/ecodex/
connector/infrastructure/inbound/web/rest/`):

- `POST /api/v1/auth/login`, JSON `{username, password}` → `{accessToken, ...}`; 401
  for wrong credentials (`controller/auth/ConnectorAuthenticationApi.java`,
  `request/login/ConnectorLoginRequest.java`). The token goes in `Authorization: Bearer`.
- `POST /api/v1/admin/processing-modes`, multipart (`controller/admin/pmode/
  ConnectorProcessingModeAdminController.java` registerPmode; part names from
  connector-ng's `ConnectorRegisterProcessingModeIT` and
  `ConnectorProcessingModeAdminControllerTest`): file `processingModeFile` (sent as
  application/xml, else 400), file `truststore.truststoreFile` (its type is read from
  its name's extension: `.jks`, `.p12`), fields `description`, `businessDomainIdentifier`,
  `truststore.password`. 201 ConnectorProcessingModeDto `{uuid, description, content,
  filename, businessDomainIdentifier, createdAt, updatedAt}`; 400, 404 (no such business
  domain) and 409 with ErrorResponse `{status, message}` (`advice/GlobalExceptionHandler`).
  A business domain has at most one processing mode: a second registration is a 409,
  "The business domain [%s] already has a processing mode"
  (`connector-application/.../service/pmode/ConnectorRegisterProcessingModeService.java`
  at c2a08323).
- `GET /api/v1/admin/processing-modes` (listPmodes): every processing mode, its PMode as
  `content`; `GET /api/v1/admin/processing-modes/{uuid}` (retrievePmode):
  ConnectorProcessingModeDetailDto, with `truststore` `{filename, password, type}`.
- `PATCH /api/v1/admin/processing-modes/{uuid}/truststore` (updateTruststore; connector-
  ng's `ConnectorUpdateProcessingModeTruststoreIT`), multipart: file `truststoreFile`,
  field `password` → 200 `{filename, password, type}`; 404 for an unknown uuid. The
  processing mode keeps its PMode and its description.

Older stored versions (`connector-application/.../presentation/rest/api/admin/
ConnectorProcessingModeAdminApi.java` at 01327c35 and 42e1bc80; the infrastructure
module's at d82742ca and 2cd25d28) register with `processingModeXmlFile`,
`truststoreFile` and a JSON part `metadata` and list; the one at 69523303 registers
without a truststore and retrieves by uuid; none of them has the PATCH. No version can
replace a processing mode's PMode or delete a processing mode (the application's ports,
`connector-application/.../port/api/pmode/`, are register, list, retrieve, verify and
update the truststore).

So a package goes to connector-ng thus:
1. the business domain has no processing mode: it is registered (description: the
   package, by digest);
2. it has one whose PMode is this package's and whose truststore has this package's
   file name (`connectorstore-<digest>.jks`, read by `GET …/{uuid}`): the package is
   there already, nothing is sent (a registration or update whose answer was lost is
   found so by the retry, as the Domibus target does with `/ext/pmode/current`). The
   description (it names the package that registered the processing mode) is not enough:
   an update in place keeps it, so it may name an older package than the one there;
3. it has one with this package's PMode (a certificate rollover changes the stores, not
   the PMode): its truststore is replaced in place by the package's connectorstore (one
   PATCH; the processing mode keeps its uuid and its first package's description);
4. it has one with another PMode: connector-ng offers no way to replace it, so the
   target fails, not transiently, and says so: an operator replaces it by hand (or
   through connector-ng's console), and the next round finds step 2 or 3.
One call changes connector-ng in each case, so no failure leaves a half-applied package:
a retry starts again from the list. Only a retry that lists before connector-ng has
committed the first attempt can still send the package twice.

The store sent is the package's connectorstore (`connectorstore.jks` / `.p12`: the store
connector 4.x imports with its PMode); a package without one cannot be applied and says
so. A fresh login per package: tokens are short-lived and a package is applied rarely.
"""

from __future__ import annotations

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
MODES = "/api/v1/admin/processing-modes"


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
        store = http_calls.member(package, STORE_MEMBERS[self.store_type], self.label)
        # connector-ng reads the store's type from its name, and shows the name: it says
        # which package's store a processing mode carries.
        store_name = (
            f"connectorstore-{package.digest[:16]}.{'jks' if self.store_type == 'JKS' else 'p12'}"
        )
        description = http_calls.describe(self.description, package)
        with http_calls.client(self.base_url, self.ca, self.timeout_s) as client:
            auth = self._login(client)
            there = self._current(client, auth)
            if there is None:
                created = self._register(client, auth, pmode, store, store_name, description,
                                         package.store_password)  # fmt: skip
                return {"processing_mode": _small(created), "registered": True}
            if there.get("content") != pmode.decode("utf-8", "replace"):
                raise TargetFailed(
                    f"{self.label}: business domain {self.business_domain} has processing "
                    f"mode {there.get('uuid')} ({there.get('description')}) with another PMode "
                    "than this package's; connector-ng can replace only a processing mode's "
                    "truststore, not its PMode, nor delete it: replace it by hand",
                    transient=False,
                )
            uuid = str(there["uuid"])
            done = {"processing_mode": _small(there), "truststore": store_name,
                    "registered": False}  # fmt: skip
            if self._truststore_name(client, auth, uuid) == store_name:
                return done | {"updated": False}
            self._update_truststore(client, auth, uuid, store, store_name, package.store_password)
            return done | {"updated": True}

    def _current(self, client: httpx.Client, auth: Mapping[str, str]) -> Mapping[str, Any] | None:
        """The processing mode of this business domain (connector-ng keeps one at most)."""
        what = "listing the processing modes"
        response = self._call(lambda: client.get(MODES, headers=dict(auth)), what)
        listed = http_calls.json_body(response, target=self.label, what=what)
        if not isinstance(listed, list):
            raise TargetFailed(f"{self.label}: {what}: the answer is not a list", transient=False)
        for mode in listed:
            if (isinstance(mode, Mapping) and mode.get("uuid")
                    and mode.get("businessDomainIdentifier") == self.business_domain):  # fmt: skip
                return mode
        return None

    def _register(self, client: httpx.Client, auth: Mapping[str, str], pmode: bytes,
                  store: bytes, store_name: str, description: str,
                  store_password: str) -> Mapping[str, Any]:  # fmt: skip
        what = "registering the processing mode"
        response = self._call(
            lambda: client.post(
                MODES, headers=dict(auth),
                data={"description": description, "businessDomainIdentifier": self.business_domain,
                      "truststore.password": store_password},
                files=[("processingModeFile", ("pmode.xml", pmode, "application/xml")),
                       ("truststore.truststoreFile",
                        (store_name, store, "application/octet-stream"))],
            ),
            what,
        )  # fmt: skip
        created = http_calls.json_body(response, target=self.label, what=what)
        if not isinstance(created, Mapping) or not created.get("uuid"):
            raise TargetFailed(f"{self.label} names no processing mode after {what}",
                               transient=False)  # fmt: skip
        return created

    def _truststore_name(self, client: httpx.Client, auth: Mapping[str, str],
                         uuid: str) -> str | None:  # fmt: skip
        what = f"reading processing mode {uuid}"
        response = self._call(lambda: client.get(f"{MODES}/{uuid}", headers=dict(auth)), what)
        detail = http_calls.json_body(response, target=self.label, what=what)
        store = detail.get("truststore") if isinstance(detail, Mapping) else None
        name = store.get("filename") if isinstance(store, Mapping) else None
        return name if isinstance(name, str) else None

    def _update_truststore(self, client: httpx.Client, auth: Mapping[str, str], uuid: str,
                           store: bytes, store_name: str, store_password: str) -> None:  # fmt: skip
        what = f"replacing the truststore of processing mode {uuid}"
        response = self._call(
            lambda: client.patch(
                f"{MODES}/{uuid}/truststore", headers=dict(auth),
                data={"password": store_password},
                files=[("truststoreFile", (store_name, store, "application/octet-stream"))],
            ),
            what,
        )  # fmt: skip
        http_calls.json_body(response, target=self.label, what=what)

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


def _small(mode: Mapping[str, Any]) -> dict[str, Any]:
    """What the acknowledgement keeps of a processing mode (not its PMode)."""
    return {key: mode.get(key) for key in ANSWER_KEYS}
