"""Tokens from a real OpenID provider (npm `oidc-provider`, tests/support/oidc/) on a real service.

For the module: the provider on a free loopback port with one client per role
(mutual-TLS client credentials, certificate-bound access tokens), and one
`cdb-service serve` whose `CDB_OIDC_ISSUER` is that provider, trusting the test
CA for the provider's HTTPS. Tokens are fetched from the provider over mutual
TLS with each client's certificate, exactly as a national system would.

Key rotation: the provider is stopped and started again on the same port with a
new signing key (new `kid`, the old one no longer published). The still-running
service learns the new key on first sight of its kid (one JWKS refetch).
"""

from __future__ import annotations

import base64
import json
import selectors
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import factories
from tests.support.issuer import new_key
from tests.support.nginx import free_port
from tests.support.service_process import PROBLEM, Pki, Service, make_pki, running_service, stop

OIDC_DIR = Path(__file__).resolve().parents[1] / "support" / "oidc"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NODE is None, reason="node is not installed (apt-get install nodejs)"),
    pytest.mark.skipif(
        not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir(),
        reason="the test OpenID provider is missing: run `npm ci --prefix tests/support/oidc`",
    ),
]

AUTHORITIES = "/api/v1/authorities"
REFETCH_INTERVAL_S = 1.0
CLIENTS = {  # name: (scope, owner)
    "reader": ("cdb.read", None),
    "admin-de": ("cdb.read cdb.write", "DE"),
}


def secret(client: str) -> str:
    return f"{client}-secret-0123456789abcdef"


def client_metadata() -> list[dict[str, Any]]:
    out = []
    for name, (scope, owner) in CLIENTS.items():
        client: dict[str, Any] = {
            "client_id": name,
            "client_secret": secret(name),
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": scope,
            "tls_client_certificate_bound_access_tokens": True,
        }
        if owner:
            client["cdb_owner"] = owner
        out.append(client)
    return out


def claims_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


def header_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


@dataclass
class Provider:
    root: Path
    pki: Pki
    # Client metadata (default: `client_metadata()`), token lifetime (s), and the CA
    # that client certificates are checked against for tls_client_auth.
    clients: list[dict[str, Any]] | None = None
    ttl: int | None = None
    client_ca: Path | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    kid: str = ""
    starts: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        """Start on `port` with a freshly generated signing key (the only one published)."""
        key = new_key()
        self.kid = str(key.kid)
        self.starts += 1
        jwks = self.root / f"jwks-{self.starts}.json"
        jwks.write_text(json.dumps({"keys": [key.as_dict(private=True)]}))
        clients = self.root / "clients.json"
        clients.write_text(json.dumps(self.clients or client_metadata()))
        log = (self.root / f"provider-{self.starts}.log").open("wb")
        command = [
            str(NODE), str(OIDC_DIR / "provider.mjs"), "--port", str(self.port),
            "--issuer", self.url, "--tls-cert", str(self.pki.server_cert),
            "--tls-key", str(self.pki.server_key), "--jwks", str(jwks),
            "--clients", str(clients), "--audience", "cdb-api",
        ]  # fmt: skip
        if self.ttl is not None:
            command += ["--ttl", str(self.ttl)]
        if self.client_ca is not None:
            command += ["--client-ca", str(self.client_ca)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
        log.close()
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                stop(self.process)
                raise AssertionError(f"the provider did not get ready:\n{self.log_tail()}")
        line = self.process.stdout.readline().decode().strip()
        assert line == f"READY {self.url}", f"{line!r}\n{self.log_tail()}"

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            assert self.process.returncode == 0, self.log_tail()
            if self.process.stdout:
                self.process.stdout.close()
            self.process = None

    def service_variables(self, pki: Pki) -> dict[str, str]:
        """A service that takes this provider's bound tokens only, over the PKI's TLS."""
        return {
            "CDB_DEV_ISSUER": "false",
            "CDB_REQUIRE_BOUND_TOKENS": "true",
            "CDB_TLS_CERT_FILE": str(pki.server_cert),
            "CDB_TLS_KEY_FILE": str(pki.server_key),
            "CDB_CLIENT_CA_FILES": json.dumps([str(pki.ca)]),
            "CDB_OIDC_ISSUER": self.url,
            "CDB_OIDC_CA_FILE": str(pki.ca),
        }

    def log_tail(self, size: int = 3000) -> str:
        path = self.root / f"provider-{self.starts}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    def grants(self) -> dict[str, int]:
        """Tokens issued so far per client id (this start of the provider)."""
        counts: dict[str, int] = {}
        for line in self.log_tail(10**7).splitlines():
            if line.startswith("grant.success "):
                client = line.split(" ", 1)[1].strip()
                counts[client] = counts.get(client, 0) + 1
        return counts

    def token_tls(self, client_id: str, certificate: str | None = None) -> str:
        """A token for a tls_client_auth client: its certificate is its only credential."""
        metadata = next(c for c in self.clients or [] if c["client_id"] == client_id)
        name = certificate or metadata["tls_client_auth_subject_dn"].removeprefix("CN=")
        form = {"grant_type": "client_credentials", "client_id": client_id,
                "scope": metadata["scope"]}  # fmt: skip
        with httpx.Client(verify=self.pki.context(name), timeout=10) as http:
            response = http.post(f"{self.url}/token", data=form)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def token(self, client: str) -> str:
        """Client credentials over mutual TLS with the client's certificate.

        The request names the scopes wanted (oidc-provider grants none unasked).
        """
        form = {"grant_type": "client_credentials", "resource": "cdb-api",
                "scope": CLIENTS[client][0]}  # fmt: skip
        with httpx.Client(verify=self.pki.context(client), timeout=10) as http:
            response = http.post(
                f"{self.url}/token",
                data=form,
                auth=(client, secret(client)),
            )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"].lower() in ("bearer", "dpop")
        return str(body["access_token"])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), tuple(CLIENTS))


@pytest.fixture(scope="module")
def provider(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    running = Provider(tmp_path_factory.mktemp("provider"), pki)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def service(
    pki: Pki, provider: Provider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    variables = provider.service_variables(pki) | {
        "CDB_AUTO_SEED": "false",
        "CDB_OIDC_JWKS_REFETCH_INTERVAL_S": str(REFETCH_INTERVAL_S),
        "CDB_OIDC_JWKS_TTL_S": "3600",
    }
    with running_service(tmp_path_factory.mktemp("service"), variables, ca=pki.ca) as running:
        yield running


def call(service: Service, pki: Pki, certificate: str, token: str, method: str = "GET",
         body: dict[str, Any] | None = None) -> httpx.Response:  # fmt: skip
    with httpx.Client(base_url=service.base_url, verify=pki.context(certificate),
                      timeout=10) as http:  # fmt: skip
        return http.request(method, AUTHORITIES, json=body,
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip


def test_the_provider_binds_its_tokens_to_the_client_certificate(
    provider: Provider, pki: Pki
) -> None:
    token = provider.token("admin-de")
    claims = claims_of(token)
    assert header_of(token)["alg"] == "ES256"
    assert header_of(token)["kid"] == provider.kid
    assert claims["iss"] == provider.url
    assert claims["aud"] == "cdb-api"
    assert claims["cdb_owner"] == "DE"
    assert set(claims["scope"].split()) == {"cdb.read", "cdb.write"}
    assert claims["cnf"] == {"x5t#S256": pki.thumbprint("admin-de")}


def test_a_provider_token_is_accepted_with_the_certificate_it_is_bound_to(
    provider: Provider, service: Service, pki: Pki
) -> None:
    token = provider.token("admin-de")
    listed = call(service, pki, "admin-de", token)
    assert listed.status_code == 200, listed.text
    created = call(service, pki, "admin-de", token, "POST",
                   factories.authority(code="DE:FROM-PROVIDER"))  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["code"] == "DE:FROM-PROVIDER"
    # The reader's own token works for the reader too (read only).
    assert call(service, pki, "reader", provider.token("reader")).status_code == 200


def test_the_same_token_replayed_with_another_certificate_is_refused(
    provider: Provider, service: Service, pki: Pki
) -> None:
    token = provider.token("admin-de")
    head, seq = service.registry_head(), service.audit_seq()
    response = call(service, pki, "reader", token, "POST",
                    factories.authority(code="DE:REPLAYED"))  # fmt: skip
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == 'Bearer realm="cdb", error="invalid_token"'
    assert "bound to another client certificate" in response.json()["detail"]
    assert service.registry_head() == head
    [event] = service.audit_after(seq)
    assert event["outcome"] == "denied-401"
    assert event["cert_subject"] == pki.subject("reader")
    # The rightful holder can still use it.
    assert call(service, pki, "admin-de", token).status_code == 200


def test_key_rotation_at_the_provider(provider: Provider, service: Service, pki: Pki) -> None:
    # Two tokens signed by the current key: one the service has seen (validated and
    # remembered), one it has never seen.
    seen, unseen = provider.token("admin-de"), provider.token("admin-de")
    assert call(service, pki, "admin-de", seen).status_code == 200
    old_kid = provider.kid

    provider.stop()
    provider.start()  # same port and issuer, a new key; the old one is no longer published
    assert provider.kid != old_kid
    # The service refetches for an unknown kid at most once per interval.
    time.sleep(REFETCH_INTERVAL_S + 0.5)

    fresh = provider.token("admin-de")
    assert header_of(fresh)["kid"] == provider.kid
    listed = call(service, pki, "admin-de", fresh)
    assert listed.status_code == 200, listed.text  # the new kid made it fetch the JWKS again
    created = call(service, pki, "admin-de", fresh, "POST",
                   factories.authority(code="DE:AFTER-ROTATION"))  # fmt: skip
    assert created.status_code == 201, created.text

    # A token signed by the withdrawn key that the service has not validated before:
    # its kid is not in the (refetched) key set any more → 401 invalid_token.
    time.sleep(REFETCH_INTERVAL_S + 0.5)
    refused = call(service, pki, "admin-de", unseen)
    assert refused.status_code == 401, refused.text
    assert refused.headers["www-authenticate"] == 'Bearer realm="cdb", error="invalid_token"'
    assert "unknown key" in refused.json()["detail"]

    # A token of the withdrawn key that the service HAS validated before: remembered
    # tokens stay good only while their key is still published, so withdrawing a key
    # revokes them too (no signature check needed to find out).
    revoked = call(service, pki, "admin-de", seen)
    assert revoked.status_code == 401, revoked.text
    assert "unknown key" in revoked.json()["detail"]
