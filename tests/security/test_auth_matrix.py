"""The authentication and authorisation matrix, over real TLS, against a real process.

One `cdb-service serve` for the module: dev profile but with none of its
conveniences (`CDB_DEV_ISSUER=false`, no seed), direct TLS with a test PKI of its
own, bound tokens required, and a test OpenID issuer (`tests/issuer.py`) whose
keys the tests control. Every row sends one request that is wrong in exactly one
way: the same request with that one thing right is the positive row (201), so each
refusal is owed to the check the row names. For each refusal the row asserts the
status, an `application/problem+json` body, the `WWW-Authenticate` challenge,
that the registry did not change, and the one audit event the refusal wrote (read
straight from the service's SQLite file).

A certificate of an unknown CA and an expired certificate never reach HTTP in
direct TLS: the server's TLS layer verifies any certificate that is presented
(CERT_OPTIONAL still verifies) and drops the connection, so there is no problem
response and no audit event for those two rows here. The proxy path has the
HTTP answer: an unknown CA through nginx is in tests/test_proxy_mode.py; the
expired certificate is here, through a second process in `CDB_TLS_MODE=proxy`.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import factories
from tests.support.issuer import DROP, Issuer, new_key
from tests.support.service_process import (
    EXPIRED,
    PROBLEM,
    STRANGER,
    Pki,
    Service,
    make_pki,
    running_service,
)

pytestmark = pytest.mark.slow

AUTHORITIES = "/api/v1/authorities"
REFETCH_INTERVAL_S = 1.0
CLIENTS = {  # name: (scope, owner)
    "reader": ("cdb.read", None),
    "admin-de": ("cdb.read cdb.write", "DE"),
    "admin-fr": ("cdb.read cdb.write", "FR"),
}
CHALLENGE = 'Bearer realm="cdb"'
INVALID_TOKEN = 'Bearer realm="cdb", error="invalid_token"'
INSUFFICIENT_SCOPE = 'Bearer error="insufficient_scope"'


@dataclass(frozen=True)
class Snapshot:
    head: int
    authorities: int
    audit_seq: int


@dataclass
class Matrix:
    pki: Pki
    issuer: Issuer
    service: Service

    def claims(self, client: str, bound_to: str | None = None, **overrides: Any) -> dict[str, Any]:
        """Good claims for `client`, bound to `bound_to`'s certificate (default: its own)."""
        scope, owner = CLIENTS[client]
        thumbprint = self.pki.thumbprint(bound_to or client)
        return self.issuer.claims(client, scope, owner, thumbprint, **overrides)

    def token(self, client: str, **overrides: Any) -> str:
        return self.issuer.sign(self.claims(client, **overrides))

    def http(self, certificate: str | None) -> httpx.Client:
        return httpx.Client(
            base_url=self.service.base_url, verify=self.pki.context(certificate), timeout=10
        )

    def post(self, certificate: str | None, token: str | None, code: str,
             owner: str = "DE") -> httpx.Response:  # fmt: skip
        """Try to create an authority of `owner`, as `certificate`, with `token`."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = factories.authority(owner=owner, code=f"{owner}:{code}")
        with self.http(certificate) as client:
            return client.post(AUTHORITIES, json=body, headers=headers)

    def snapshot(self) -> Snapshot:
        s = self.service
        return Snapshot(s.registry_head(), s.authority_count(), s.audit_seq())

    def refused(self, before: Snapshot, response: httpx.Response, status: int,
                challenge: str, reason: str, certificate: str | None,
                subject: str = "anonymous") -> dict[str, Any]:  # fmt: skip
        """The refusal as it must look: the answer, nothing written, one audit event."""
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"] == challenge
        body = response.json()
        assert body["status"] == status
        assert reason in body["detail"], body
        after = self.snapshot()
        assert (after.head, after.authorities) == (before.head, before.authorities)
        events = self.service.audit_after(before.audit_seq)
        assert len(events) == 1, events
        event = events[0]
        assert event["outcome"] == f"denied-{status}"
        assert event["action"] == "access"
        assert event["target"] == f"POST {AUTHORITIES}"
        assert event["detail"] == {"reason": body["detail"]}
        assert event["subject"] == subject
        assert event["source_ip"] == "127.0.0.1"
        if certificate is None:
            assert (event["cert_subject"], event["cert_thumbprint"]) == (None, None)
        else:
            assert event["cert_subject"] == self.pki.subject(certificate)
            assert event["cert_thumbprint"] == self.pki.thumbprint(certificate)
        return event


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), tuple(CLIENTS))


@pytest.fixture(scope="module")
def issuer(pki: Pki) -> Iterator[Issuer]:
    with Issuer(pki.server_cert, pki.server_key).running() as running:
        yield running


def security_variables(pki: Pki, issuer: Issuer) -> dict[str, str]:
    return {
        "CDB_DEV_ISSUER": "false",
        "CDB_AUTO_SEED": "false",
        "CDB_REQUIRE_BOUND_TOKENS": "true",
        "CDB_CLIENT_CA_FILES": json.dumps([str(pki.ca)]),
        "CDB_OIDC_ISSUER": issuer.url,
        "CDB_OIDC_CA_FILE": str(pki.ca),
        "CDB_OIDC_JWKS_REFETCH_INTERVAL_S": str(REFETCH_INTERVAL_S),
        "CDB_OIDC_JWKS_TTL_S": "3600",  # no TTL refetch during the module
    }


@pytest.fixture(scope="module")
def matrix(pki: Pki, issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    variables = security_variables(pki, issuer) | {
        "CDB_TLS_CERT_FILE": str(pki.server_cert),
        "CDB_TLS_KEY_FILE": str(pki.server_key),
    }
    with running_service(tmp_path_factory.mktemp("direct"), variables, ca=pki.ca) as service:
        matrix = Matrix(pki, issuer, service)
        # One good read loads the issuer's keys: discovery once, the JWKS once. From
        # here on a token with a published kid never makes the service fetch again.
        with matrix.http("admin-de") as client:
            response = client.get(
                AUTHORITIES, headers={"Authorization": f"Bearer {matrix.token('admin-de')}"}
            )
        assert response.status_code == 200, response.text
        assert response.json()["items"] == []
        assert issuer.counts() == (1, 1)
        yield matrix


# --- the positive row: the request every other row spoils in one way -----------------


def test_admin_of_de_with_a_bound_token_creates_a_de_authority(matrix: Matrix) -> None:
    before = matrix.snapshot()
    response = matrix.post("admin-de", matrix.token("admin-de"), "GOOD")
    assert response.status_code == 201, response.text
    assert response.json()["owner"] == "DE"
    after = matrix.snapshot()
    assert (after.head, after.authorities) == (before.head + 1, before.authorities + 1)
    [event] = matrix.service.audit_after(before.audit_seq)
    assert (event["action"], event["outcome"]) == ("create authorities", "ok")
    assert (event["subject"], event["client_id"]) == ("admin-de", "admin-de")
    assert event["cert_subject"] == matrix.pki.subject("admin-de")
    assert event["cert_thumbprint"] == matrix.pki.thumbprint("admin-de")
    with matrix.http("admin-de") as client:
        listed = client.get(
            AUTHORITIES, headers={"Authorization": f"Bearer {matrix.token('admin-de')}"}
        )
    assert [item["code"] for item in listed.json()["items"]] == ["DE:GOOD"]


# --- the certificate ------------------------------------------------------------------


def test_no_client_certificate(matrix: Matrix) -> None:
    # The TLS layer lets a connection without a certificate through (health checks);
    # the gate refuses /api, even with a good token (bound to admin-de's certificate).
    before = matrix.snapshot()
    response = matrix.post(None, matrix.token("admin-de"), "NO-CERT")
    matrix.refused(before, response, 401, CHALLENGE, "client certificate is required", None)


def _tls12_handshake(matrix: Matrix, certificate: str) -> str:
    """A bare TLS 1.2 handshake presenting `certificate`; the negotiated version."""
    context = matrix.pki.context(certificate)
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # 1.2: the verdict comes in the handshake
    with (
        socket.create_connection(("127.0.0.1", matrix.service.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return str(tls.version())


@pytest.mark.parametrize("certificate", [STRANGER, EXPIRED])
def test_a_certificate_of_an_unknown_ca_or_an_expired_one_fails_the_handshake(
    matrix: Matrix, certificate: str
) -> None:
    """No HTTP answer and no audit event can exist: the TLS layer drops the connection."""
    before = matrix.snapshot()
    # A token bound to that very certificate: only the certificate is wrong.
    token = matrix.issuer.sign(matrix.claims("admin-de", bound_to=certificate))
    with pytest.raises(httpx.TransportError):
        matrix.post(certificate, token, "BAD-CERT")
    with pytest.raises(ssl.SSLError):
        _tls12_handshake(matrix, certificate)
    # The same handshake with a certificate the service trusts completes.
    assert _tls12_handshake(matrix, "reader") == "TLSv1.2"
    assert matrix.snapshot() == before


# --- the token --------------------------------------------------------------------------


def test_no_token(matrix: Matrix) -> None:
    # RFC 6750 3.1: no credentials at all is answered with a bare challenge, no error code.
    before = matrix.snapshot()
    response = matrix.post("admin-de", None, "NO-TOKEN")
    matrix.refused(before, response, 401, CHALLENGE, "bearer access token is required",
                   "admin-de")  # fmt: skip


def test_expired_token(matrix: Matrix) -> None:
    now = int(time.time())
    token = matrix.token("admin-de", iat=now - 1200, nbf=now - 1200, exp=now - 600)
    before = matrix.snapshot()
    response = matrix.post("admin-de", token, "EXPIRED-TOKEN")
    matrix.refused(before, response, 401, INVALID_TOKEN, "expired", "admin-de")


def test_token_of_another_issuer(matrix: Matrix) -> None:
    # Signed with the configured issuer's own published key; only `iss` differs.
    token = matrix.token("admin-de", iss="https://issuer.example.org")
    before = matrix.snapshot()
    response = matrix.post("admin-de", token, "WRONG-ISS")
    matrix.refused(before, response, 401, INVALID_TOKEN, "iss", "admin-de")


def test_token_for_another_audience(matrix: Matrix) -> None:
    token = matrix.token("admin-de", aud="another-api")
    before = matrix.snapshot()
    response = matrix.post("admin-de", token, "WRONG-AUD")
    matrix.refused(before, response, 401, INVALID_TOKEN, "aud", "admin-de")


def test_token_with_alg_none(matrix: Matrix) -> None:
    token = matrix.issuer.unsigned_token(matrix.claims("admin-de"))
    before, fetches = matrix.snapshot(), matrix.issuer.counts()
    response = matrix.post("admin-de", token, "ALG-NONE")
    matrix.refused(before, response, 401, INVALID_TOKEN, "algorithm 'none'", "admin-de")
    assert matrix.issuer.counts() == fetches  # refused before any key was looked at


def test_token_hs256_keyed_with_the_issuers_public_key(matrix: Matrix) -> None:
    token = matrix.issuer.hs256_with_public_key_token(matrix.claims("admin-de"))
    before, fetches = matrix.snapshot(), matrix.issuer.counts()
    response = matrix.post("admin-de", token, "HS256")
    matrix.refused(before, response, 401, INVALID_TOKEN, "algorithm 'HS256'", "admin-de")
    assert matrix.issuer.counts() == fetches


def test_token_with_an_unknown_kid_refetches_the_jwks_once_then_is_refused(
    matrix: Matrix,
) -> None:
    issuer = matrix.issuer
    # A key the issuer never published; the token is otherwise exactly the positive row's.
    unpublished = new_key()
    token = issuer.sign(matrix.claims("admin-de"), key=unpublished)
    # The service refetches for an unknown kid only if its copy is older than the interval.
    time.sleep(max(0.0, issuer.last_jwks_fetch + REFETCH_INTERVAL_S + 0.5 - time.monotonic()))
    discovery, jwks = issuer.counts()
    before = matrix.snapshot()
    response = matrix.post("admin-de", token, "UNKNOWN-KID")
    matrix.refused(before, response, 401, INVALID_TOKEN, "unknown key", "admin-de")
    assert issuer.counts() == (discovery, jwks + 1)  # exactly one refetch, no rediscovery

    # At once again: within the interval, no second fetch (a flood of made-up kids
    # cannot make the service hammer the issuer).
    before = matrix.snapshot()
    response = matrix.post("admin-de", token, "UNKNOWN-KID")
    matrix.refused(before, response, 401, INVALID_TOKEN, "unknown key", "admin-de")
    assert issuer.counts() == (discovery, jwks + 1)

    # Control: once the issuer publishes that key, the very same token is good (read only).
    issuer.published.append(unpublished)
    try:
        time.sleep(max(0.0, issuer.last_jwks_fetch + REFETCH_INTERVAL_S + 0.5 - time.monotonic()))
        with matrix.http("admin-de") as client:
            listed = client.get(AUTHORITIES, headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200, listed.text
        assert issuer.counts() == (discovery, jwks + 2)
    finally:
        issuer.published.remove(unpublished)


def test_token_bound_to_another_certificate(matrix: Matrix) -> None:
    # admin-de's good token, replayed by reader (a valid client) over reader's certificate.
    before = matrix.snapshot()
    response = matrix.post("reader", matrix.token("admin-de"), "REPLAYED")
    matrix.refused(before, response, 401, INVALID_TOKEN, "bound to another client certificate",
                   "reader")  # fmt: skip


def test_unbound_token_when_bound_tokens_are_required(matrix: Matrix) -> None:
    token = matrix.token("admin-de", cnf=DROP)
    before = matrix.snapshot()
    response = matrix.post("admin-de", token, "UNBOUND")
    matrix.refused(before, response, 401, INVALID_TOKEN, "not bound", "admin-de")


# --- the policy -------------------------------------------------------------------------


def test_reader_may_not_write(matrix: Matrix) -> None:
    before = matrix.snapshot()
    response = matrix.post("reader", matrix.token("reader"), "BY-READER")
    event = matrix.refused(before, response, 403, INSUFFICIENT_SCOPE, "needs the scope cdb.write",
                           "reader", subject="reader")  # fmt: skip
    assert event["client_id"] == "reader"


def test_administrator_of_another_owner_may_not_write_de_entries(matrix: Matrix) -> None:
    before = matrix.snapshot()
    response = matrix.post("admin-fr", matrix.token("admin-fr"), "BY-FR")
    event = matrix.refused(before, response, 403, INSUFFICIENT_SCOPE,
                           "an administrator of FR cannot change entries of DE", "admin-fr",
                           subject="admin-fr")  # fmt: skip
    assert event["client_id"] == "admin-fr"
    # Control: admin-fr may create an entry of its own owner.
    response = matrix.post("admin-fr", matrix.token("admin-fr"), "OWN", owner="FR")
    assert response.status_code == 201, response.text


# --- the expired certificate through the proxy-header path -----------------------------


@pytest.fixture(scope="module")
def proxy_service(
    pki: Pki, issuer: Issuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """A second process: CDB_TLS_MODE=proxy, plain HTTP, trusting 127.0.0.1 as its proxy."""
    variables = security_variables(pki, issuer) | {
        "CDB_TLS_MODE": "proxy",
        "CDB_TRUSTED_PROXIES": '["127.0.0.1/32"]',
    }
    with running_service(tmp_path_factory.mktemp("proxy"), variables) as service:
        yield service


def _as_proxy(service: Service, pki: Pki, certificate: str, token: str) -> httpx.Response:
    """What nginx sends after terminating TLS: the certificate as `X-SSL-Client-Cert`."""
    transport = httpx.HTTPTransport(local_address="127.0.0.1")
    headers = {"X-SSL-Client-Cert": pki.escaped_pem(certificate),
               "Authorization": f"Bearer {token}"}  # fmt: skip
    with httpx.Client(base_url=service.base_url, transport=transport, timeout=10) as client:
        return client.post(AUTHORITIES, json=factories.authority(code="DE:VIA-PROXY"),
                           headers=headers)  # fmt: skip


def test_expired_certificate_from_the_trusted_proxy_is_a_401_problem(
    proxy_service: Service, pki: Pki, issuer: Issuer
) -> None:
    proxied = Matrix(pki, issuer, proxy_service)
    # The token is good and bound to the expired certificate: only its expiry is wrong.
    token = issuer.sign(proxied.claims("admin-de", bound_to=EXPIRED))
    before = proxied.snapshot()
    response = _as_proxy(proxy_service, pki, EXPIRED, token)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == CHALLENGE
    detail = response.json()["detail"]
    assert "expired on" in detail
    after = proxied.snapshot()
    assert (after.head, after.authorities) == (before.head, before.authorities)
    [event] = proxy_service.audit_after(before.audit_seq)
    assert (event["outcome"], event["target"]) == ("denied-401", f"POST {AUTHORITIES}")
    assert event["detail"] == {"reason": detail}
    assert event["source_ip"] == "127.0.0.1"

    # Control: the same request with admin-de's (valid) certificate and its bound token.
    response = _as_proxy(proxy_service, pki, "admin-de", proxied.token("admin-de"))
    assert response.status_code == 201, response.text


def test_the_audit_event_of_a_refused_certificate_names_it(
    proxy_service: Service, pki: Pki, issuer: Issuer
) -> None:
    proxied = Matrix(pki, issuer, proxy_service)
    before = proxied.snapshot()
    token = issuer.sign(proxied.claims("admin-de", bound_to=EXPIRED))
    assert _as_proxy(proxy_service, pki, EXPIRED, token).status_code == 401
    [event] = proxy_service.audit_after(before.audit_seq)
    assert event["cert_subject"] == pki.subject(EXPIRED)
    assert event["cert_thumbprint"] == pki.thumbprint(EXPIRED)
