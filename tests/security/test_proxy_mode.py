"""TLS mode "proxy", as deployed: the real service behind the real nginx config.

One `cdb-service serve` (dev profile, CDB_TLS_MODE=proxy, with the default settings
of that mode: a Unix socket for nginx, plain HTTP on 127.0.0.1 for health) and one
nginx built from `deploy/nginx/cdb-service.conf` in front of it, reaching the app on
that socket, for the whole module. nginx terminates TLS with the dev server
certificate, accepts any client certificate and forwards it; the app decides.
Directly at the app's TCP port, certificate headers count from no address at all:
a local process cannot pose as nginx.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cdb_service.security.dev import DevPki, token_for
from cdb_service.security.pki import issue, make_ca
from cdb_service.settings import Settings
from tests.support.nginx import Nginx, free_port, requires_nginx, running_nginx, stop
from tests.support.service_process import executable
from tests.support.tls import client_context

pytestmark = [requires_nginx, pytest.mark.slow]

PROXY = "127.0.0.1"  # where the app's TCP port listens (and nginx's)
STRANGER = "127.0.0.2"  # another loopback address
INSTRUMENTS = "/api/v1/code-lists/instruments"
PROBLEM = "application/problem+json"


@dataclass
class App:
    port: int
    pki: DevPki
    log: Path
    data: Path

    @property
    def socket(self) -> Path:
        return self.data / "cdb.sock"

    @property
    def base_url(self) -> str:
        return f"http://{PROXY}:{self.port}"

    def token(self, client: str) -> str:
        issuer = Settings(port=self.port).dev_issuer_url()
        return token_for(self.pki, client, issuer, "cdb-api", "cdb_owner")

    def pem(self, client: str) -> str:
        return self.pki.client_cert(client).read_text()


def _serve_proxy_mode(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDB_")}
    env |= {
        "CDB_PROFILE": "dev",
        "CDB_DATA_DIR": str(data_dir),
        "CDB_PORT": str(port),
        "CDB_HOST": PROXY,
        "CDB_TLS_MODE": "proxy",
        "CDB_AUDIT_REFUSAL_WINDOW_S": "0",
    }
    exe = executable()
    return subprocess.Popen([exe, "serve"], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)  # fmt: skip


def _wait_ready(
    port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the service exited:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"http://{PROXY}:{port}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the service was not ready in time:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    root = tmp_path_factory.mktemp("proxy-app")
    port, log = free_port(), root / "serve.log"
    process = _serve_proxy_mode(root / "var", port, log)
    try:
        _wait_ready(port, process, log)
        yield App(port, DevPki(root / "var" / "pki"), log, root / "var")
    finally:
        stop(process)


@pytest.fixture(scope="module")
def nginx(app: App, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    root = tmp_path_factory.mktemp("nginx")
    with running_nginx(root, upstream=f"unix:{app.socket}", cert=app.pki.server_cert,
                       key=app.pki.server_key) as running:  # fmt: skip
        yield running


@pytest.fixture(scope="module")
def stranger_pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A client certificate (and key) from a CA the service does not trust."""
    root = tmp_path_factory.mktemp("stranger")
    ca = make_ca("Some other CA", organisation="elsewhere")
    client = issue(ca, "reader", organisation="elsewhere", client=True)
    cert, key = root / "client.pem", root / "client-key.pem"
    cert.write_text(client.cert_pem)
    key.write_text(client.key_pem)
    return cert, key


def through_nginx(nginx: Nginx, app: App, client: str | None) -> httpx.Client:
    """An HTTPS client of nginx that presents dev client `client`'s certificate (or none)."""
    pki = app.pki
    if client is None:
        tls = client_context(pki.ca)
    else:
        tls = client_context(pki.ca, pki.client_cert(client), pki.client_key(client))
    return httpx.Client(base_url=nginx.base_url, verify=tls, timeout=10)


def direct(app: App, source: str) -> httpx.Client:
    """A plain-HTTP client of the app itself, connecting from loopback address `source`."""
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=app.base_url, transport=transport, timeout=10)


def nginx_header(pem: str) -> str:
    """What nginx sends as `$ssl_client_escaped_cert`: the PEM, URL-encoded."""
    return quote(pem, safe="")


def rfc9440_header(pem: str) -> str:
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    return f":{base64.b64encode(der).decode()}:"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["status"] == 401
    return str(body["detail"])


# --- through nginx ------------------------------------------------------------------


def test_certificate_and_bound_token_through_nginx_are_served(nginx: Nginx, app: App) -> None:
    with through_nginx(nginx, app, "reader") as client:
        response = client.get(INSTRUMENTS, headers=bearer(app.token("reader")))
    assert response.status_code == 200, response.text
    assert "eio" in {item["code"] for item in response.json()["items"]}


def test_the_request_id_is_nginx_s_and_the_client_s_is_kept_apart(nginx: Nginx, app: App) -> None:
    with through_nginx(nginx, app, "reader") as client:
        response = client.get(
            INSTRUMENTS, headers=bearer(app.token("reader")) | {"X-Request-ID": "via-nginx-1"}
        )
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert response.headers["x-client-request-id"] == "via-nginx-1"
    # ... and it is nginx's id (the app kept it): the nginx access log has it too.
    # nginx writes its log line after the response has gone out: give it a moment.
    deadline = time.monotonic() + 5
    while not any(line.startswith(f"{request_id} 200 ") for line in nginx.access_log.splitlines()):
        assert time.monotonic() < deadline, "nginx's access log never showed the request id"
        time.sleep(0.05)


def test_an_audit_event_names_the_client_address_and_both_request_ids(
    nginx: Nginx, app: App
) -> None:
    """A reader's write refused through nginx, from 127.0.0.2: the event carries the
    address nginx saw (not nginx's own, not the socket's), nginx's id and the client's."""
    tls = client_context(app.pki.ca, app.pki.client_cert("reader"), app.pki.client_key("reader"))
    transport = httpx.HTTPTransport(local_address=STRANGER, verify=tls)
    with httpx.Client(base_url=nginx.base_url, transport=transport, timeout=10) as client:
        refused = client.post(
            "/api/v1/authorities",
            json={},
            headers=bearer(app.token("reader")) | {"X-Request-ID": "mine-7"},
        )
    assert refused.status_code == 403, refused.text
    with sqlite3.connect(app.data / "cdb.sqlite3") as db:
        row = db.execute(
            "SELECT source_ip, client_request_id, outcome FROM audit_events "
            "WHERE request_id = ?", (refused.headers["x-request-id"],),
        ).fetchone()  # fmt: skip
    assert row == (STRANGER, "mine-7", "denied-403")


def test_the_dev_issuer_works_through_nginx(nginx: Nginx, app: App) -> None:
    with through_nginx(nginx, app, "reader") as client:
        issued = client.post("/dev-issuer/token", data={"grant_type": "client_credentials"})
        assert issued.status_code == 200, issued.text
        listed = client.get(INSTRUMENTS, headers=bearer(issued.json()["access_token"]))
    assert listed.status_code == 200, listed.text


def test_health_through_nginx_needs_no_certificate(nginx: Nginx, app: App) -> None:
    with through_nginx(nginx, app, None) as client:
        assert client.get("/health/ready").status_code == 200


def test_no_client_certificate_through_nginx_is_a_401_problem(nginx: Nginx, app: App) -> None:
    # Even a valid token does not stand in for the certificate.
    with through_nginx(nginx, app, None) as client:
        detail = assert_unauthorized(client.get(INSTRUMENTS, headers=bearer(app.token("reader"))))
    assert "client certificate is required" in detail


def test_a_certificate_from_another_ca_through_nginx_is_a_401_problem(
    nginx: Nginx, app: App, stranger_pem: tuple[Path, Path]
) -> None:
    cert, key = stranger_pem
    tls = client_context(app.pki.ca, cert, key)
    # nginx (optional_no_ca) lets the handshake through; the app refuses.
    with httpx.Client(base_url=nginx.base_url, verify=tls, timeout=10) as client:
        response = client.get(INSTRUMENTS, headers=bearer(app.token("reader")))
    assert "trusted CA" in assert_unauthorized(response)


@pytest.mark.parametrize("header", ["X-SSL-Client-Cert", "Client-Cert"])
def test_a_forged_certificate_header_next_to_a_real_certificate_is_overwritten(
    nginx: Nginx, app: App, header: str
) -> None:
    """The caller holds reader's certificate and claims admin-de's in a header: no."""
    forged = app.pem("admin-de")
    value = nginx_header(forged) if header == "X-SSL-Client-Cert" else rfc9440_header(forged)
    with through_nginx(nginx, app, "reader") as client:
        response = client.get(INSTRUMENTS, headers=bearer(app.token("admin-de")) | {header: value})
    # nginx replaced the header with the certificate actually presented (reader's),
    # so the admin-de token is bound to another certificate than the one presented.
    assert "bound to another client certificate" in assert_unauthorized(response)


@pytest.mark.parametrize("header", ["X-SSL-Client-Cert", "Client-Cert"])
def test_a_forged_certificate_header_without_a_certificate_is_dropped(
    nginx: Nginx, app: App, header: str
) -> None:
    """No certificate on the connection, admin-de's in a header: nginx drops the header."""
    forged = app.pem("admin-de")
    value = nginx_header(forged) if header == "X-SSL-Client-Cert" else rfc9440_header(forged)
    with through_nginx(nginx, app, None) as client:
        response = client.get(INSTRUMENTS, headers=bearer(app.token("admin-de")) | {header: value})
    assert "client certificate is required" in assert_unauthorized(response)


# --- directly at the app: only nginx's channel is believed ---------------------------


def _as_a_proxy_would_send(app: App, header: str, client: str) -> dict[str, str]:
    pem = app.pem(client)
    value = nginx_header(pem) if header == "X-SSL-Client-Cert" else rfc9440_header(pem)
    return bearer(app.token(client)) | {header: value}


@pytest.mark.parametrize("source", [PROXY, STRANGER])
@pytest.mark.parametrize("header", ["X-SSL-Client-Cert", "Client-Cert"])
def test_a_local_process_cannot_pose_as_nginx_at_the_tcp_port(
    app: App, header: str, source: str
) -> None:
    """A process on this host holding reader's stolen token and public certificate sends
    both as nginx would, from any loopback address: refused, in the default deployment."""
    with direct(app, source) as client:
        response = client.get(INSTRUMENTS, headers=_as_a_proxy_would_send(app, header, "reader"))
    assert "not a trusted proxy" in assert_unauthorized(response)


def test_the_socket_is_nginx_s_channel_and_closed_to_other_users(app: App) -> None:
    mode = app.socket.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
    # What nginx sends on it is believed (this is the channel the header is for).
    transport = httpx.HTTPTransport(uds=str(app.socket))
    with httpx.Client(base_url="http://cdb", transport=transport, timeout=10) as client:
        response = client.get(
            INSTRUMENTS, headers=_as_a_proxy_would_send(app, "X-SSL-Client-Cert", "reader")
        )
    assert response.status_code == 200, response.text


def test_a_proxy_on_the_socket_may_name_the_client_with_rfc_7239_forwarded(app: App) -> None:
    transport = httpx.HTTPTransport(uds=str(app.socket))
    headers = _as_a_proxy_would_send(app, "X-SSL-Client-Cert", "reader") | {
        "Forwarded": 'for=203.0.113.9;proto=https, for="192.0.2.7"'}  # fmt: skip
    with httpx.Client(base_url="http://cdb", transport=transport, timeout=10) as client:
        refused = client.post("/api/v1/authorities", json={}, headers=headers)
    assert refused.status_code == 403, refused.text
    with sqlite3.connect(app.data / "cdb.sqlite3") as db:
        row = db.execute("SELECT source_ip FROM audit_events WHERE request_id = ?",
                         (refused.headers["x-request-id"],)).fetchone()  # fmt: skip
    assert row == ("192.0.2.7",)  # the last element: the one this proxy added


def test_health_at_the_tcp_port_needs_no_certificate(app: App) -> None:
    with direct(app, STRANGER) as client:
        assert client.get("/health/ready").status_code == 200


def _raw_through_nginx(nginx: Nginx, app: App, request: bytes) -> tuple[int, str, str]:
    """Send bytes as they are (no client library tidies them) and read the answer."""
    import socket

    context = client_context(app.pki.ca)
    with (
        socket.create_connection(("127.0.0.1", nginx.port)) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    content_type = next((h.split(":", 1)[1].strip() for h in lines[1:]
                         if h.lower().startswith("content-type:")), "")  # fmt: skip
    return int(lines[0].split()[1]), content_type, body.decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n", 400),
        (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
         414),
        (b"POST /api/v1/import HTTP/1.1\r\nHost: localhost\r\nContent-Length: 20000000\r\n"
         b"Connection: close\r\n\r\n", 413),
        (b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 40_000
         + b"\r\nConnection: close\r\n\r\n", 400),
    ],
    ids=["malformed header", "URI too long", "body too large", "header too large"],
)  # fmt: skip
def test_nginx_answers_its_own_refusals_as_problems(
    nginx: Nginx, app: App, request_bytes: bytes, status: int
) -> None:
    got, content_type, body = _raw_through_nginx(nginx, app, request_bytes)
    assert got == status, body[:300]
    assert content_type == PROBLEM, body[:300]
    assert json.loads(body)["status"] == status


def test_nginx_verifying_certificates_itself_answers_495_and_496_as_problems(
    app: App, stranger_pem: tuple[Path, Path], tmp_path: Path
) -> None:
    """An operator may let nginx check certificates itself (`ssl_verify_client on` with
    the CA): a stranger's certificate (495) and none at all (496) are then nginx's own
    refusals, and they too read as problem details."""
    ca = app.pki.ca

    def verifying(site: str) -> str:
        assert "ssl_verify_client optional_no_ca;" in site
        return site.replace("ssl_verify_client optional_no_ca;",
                            f"ssl_verify_client on;\n    ssl_client_certificate {ca};")  # fmt: skip

    with running_nginx(tmp_path / "nginx", upstream=f"unix:{app.socket}",
                       cert=app.pki.server_cert, key=app.pki.server_key,
                       edit=verifying) as strict:  # fmt: skip
        cert, key = stranger_pem
        for tls in (client_context(ca, cert, key), client_context(ca)):
            with httpx.Client(base_url=strict.base_url, verify=tls, timeout=10) as client:
                response = client.get(INSTRUMENTS)
            assert response.status_code == 400, response.text[:300]
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["title"] == "Bad client certificate"
        with through_nginx(strict, app, "reader") as client:  # the CA's own still pass
            assert client.get(INSTRUMENTS, headers=bearer(app.token("reader"))).status_code == 200
