"""Limits at the edge, in both TLS modes: docs/operations.md's table is what the service
and the shipped nginx enforce, and hostile connections cost little and end.

The table is read and held to the settings' defaults (direct TLS) and to
`deploy/nginx/cdb-service.conf` (behind nginx). Then each mode meets the same hostile
requests, on a real `cdb-service serve` (direct TLS), and on one in proxy mode behind
the shipped nginx: 10,000 header fields, one 1 MB header value, and a stream of
millions of small header fields, each answered 431/400 as a problem (or, for the
stream, the connection closed), with the serving processes' peak memory growth and an
honest concurrent resolve's p99 within issue 30's bounds (`hostile_watch`); a slow
request head, a TLS connection that never sends a request, and an idle keep-alive
connection are closed within their timeouts. The timeouts run at 3 s here instead of
the 60 s shipped (a setting for the service; the same directive, edited, for nginx), so
that the test waits seconds, not minutes; the table test holds the shipped values.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cdb_service.security.dev import DevPki
from cdb_service.security.tls import GROUPS, set_groups
from cdb_service.settings import Settings
from tests.support.hostile_watch import family, resolver, watch
from tests.support.nginx import DEPLOY_CONF, running_nginx
from tests.support.service_process import executable, running_service
from tests.support.tls import client_context

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
TIMEOUT_S = 3.0
# A closed connection is seen within this much of its timeout (a busy machine is slow).
SLACK_S = 3.0
PROBLEM = b"application/problem+json"


# --- the table --------------------------------------------------------------------------


def _table() -> list[list[str]]:
    text = OPERATIONS.read_text()
    section = text.split("## Limits at the edge", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_the_documented_limits_are_the_services_and_the_shipped_nginxs() -> None:
    rows = _table()
    assert len(rows) >= 8, "the table of limits is missing or short"
    defaults = Settings.model_fields
    conf = re.sub(r"\s+", " ", DEPLOY_CONF.read_text())
    direct_settings = 0
    for what, direct, behind_nginx, _answer in rows:
        for name, value in re.findall(r"`CDB_(\w+)=([\w.]+)`", direct):
            field = defaults[name.lower()]
            assert field.default == type(field.default)(value), f"{what}: CDB_{name}"
            direct_settings += 1
        directive = re.match(r"`([^`]+)`", behind_nginx)
        assert directive, f"{what}: no nginx directive named"
        if "nginx.conf" not in behind_nginx:
            assert f"{directive.group(1)};" in conf, f"{what}: `{directive.group(1)}` not in nginx"
    # Every connection limit the settings have is in the table.
    assert direct_settings >= 8
    # The same seconds and sizes on both sides where both are set.
    by_name = {row[0]: row for row in rows}
    header_timeout = by_name["request head arrives within (slow headers)"]
    assert "=60`" in header_timeout[1] and " 60s`" in header_timeout[2]
    groups = by_name["TLS key exchange groups"]
    assert groups[1].startswith(GROUPS.replace(":", ", ")), groups[1]


# --- the services under attack ----------------------------------------------------------------


@dataclass
class Edge:
    """One way in: where to connect, how to trust it, which processes pay for a request."""

    host: str
    port: int
    ca: Path
    pids: Callable[[], list[int]]
    resolve_client: Callable[[], tuple[object, Callable[[], object]]]
    behind_nginx: bool

    def connect(self, groups: str | None = None) -> ssl.SSLSocket:
        context = client_context(self.ca)
        if groups is not None:
            assert set_groups(context, groups)
        raw = socket.create_connection((self.host, self.port), timeout=30)
        return context.wrap_socket(raw, server_hostname="localhost")


def _prepare(data: Path) -> None:
    env = {"PATH": os.environ["PATH"], "CDB_DATA_DIR": str(data)}
    for command in (["migrate"], ["seed"], ["dev-token", "--client", "reader"]):
        subprocess.run([executable(), *command], env=env, check=True, capture_output=True)


SHORT = {"CDB_HEADER_TIMEOUT_S": str(TIMEOUT_S), "CDB_KEEPALIVE_TIMEOUT_S": str(TIMEOUT_S),
         "CDB_BODY_TIMEOUT_S": str(TIMEOUT_S), "CDB_MAX_CONNECTIONS": "20"}  # fmt: skip


def _short_nginx_timeouts(conf: str) -> str:
    for directive in ("client_header_timeout", "client_body_timeout", "keepalive_timeout"):
        conf = conf.replace(f"{directive} 60s;", f"{directive} {TIMEOUT_S:g}s;")
    return conf


@pytest.fixture(scope="module", params=["direct", "nginx"])
def edge(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:  # fmt: skip
    root = tmp_path_factory.mktemp(f"edge-{request.param}")
    data = root / "var"
    _prepare(data)
    pki = DevPki(data / "pki")
    if request.param == "direct":
        with running_service(root, SHORT, ca=pki.ca) as service:
            token = service.dev_token("reader")
            yield Edge("127.0.0.1", service.port, pki.ca, lambda: family(service.process.pid),
                       lambda: _honest(service.base_url, pki, token),
                       behind_nginx=False)  # fmt: skip
        return
    with running_service(root, {"CDB_TLS_MODE": "proxy"}) as service, \
            running_nginx(root / "nginx", upstream=f"unix:{data / 'cdb.sock'}",
                          cert=pki.server_cert, key=pki.server_key,
                          edit=_short_nginx_timeouts) as nginx:  # fmt: skip
        token = service.dev_token("reader")
        yield Edge("127.0.0.1", nginx.port, pki.ca,
                   lambda: family(service.process.pid) + family(nginx.process.pid),
                   lambda: _honest(nginx.base_url, pki, token), behind_nginx=True)  # fmt: skip


def _honest(base_url: str, pki: DevPki, token: str) -> tuple[object, Callable[[], object]]:
    context = client_context(pki.ca, pki.client_cert("reader"), pki.client_key("reader"))
    return resolver(base_url, context, {"Authorization": f"Bearer {token}"})


# --- hostile requests ---------------------------------------------------------------------------


def _answer(sock: ssl.SSLSocket, timeout: float = 30) -> tuple[bytes, bool]:
    """What the server wrote, and whether it then closed the connection."""
    sock.settimeout(timeout)
    seen = b""
    try:
        while chunk := sock.recv(65536):
            seen += chunk
    except TimeoutError:
        return seen, False
    except (ssl.SSLError, OSError):
        pass
    return seen, True


def _send_head(edge: Edge, fields: Iterator[bytes]) -> tuple[bytes, bool]:
    sock = edge.connect()
    try:
        sock.sendall(b"GET /api/v1/resolve?country=DE HTTP/1.1\r\nHost: localhost\r\n")
        for chunk in fields:
            sock.sendall(chunk)
        sock.sendall(b"\r\n")
    except (ssl.SSLError, OSError):
        pass  # refused while sending: the answer (if any) is read below
    try:
        return _answer(sock)
    finally:
        sock.close()


def _many_fields(count: int, per_chunk: int = 5000) -> Iterator[bytes]:
    for start in range(0, count, per_chunk):
        yield b"".join(b"X-F%d: v\r\n" % n for n in range(start, min(count, start + per_chunk)))


def _huge_value(size: int) -> Iterator[bytes]:
    yield b"X-Big: "
    for _ in range(size // 65536):
        yield b"a" * 65536
    yield b"\r\n"


HOSTILE = {
    "10,000 header fields": lambda: _many_fields(10_000),
    "one 1 MB header value": lambda: _huge_value(1024 * 1024),
    "a stream of 2,000,000 small header fields": lambda: _many_fields(2_000_000),
}


def _status(seen: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.1 (\d{3})", seen)
    return int(match.group(1)) if match else None


@pytest.mark.slow
@pytest.mark.parametrize("what", list(HOSTILE))
def test_a_hostile_request_head_is_refused_in_bounded_memory(edge: Edge, what: str) -> None:
    client, resolve = edge.resolve_client()
    try:
        with watch(edge.pids, resolve) as seen:  # type: ignore[arg-type]
            answer, closed = _send_head(edge, HOSTILE[what]())
    finally:
        client.close()  # type: ignore[attr-defined]
    status = _status(answer)
    mode = "behind nginx" if edge.behind_nginx else "direct TLS"
    print(f"\n{what} ({mode}): {status}")
    assert closed, f"{what}: the connection stayed open"
    if status is None:
        # The stream may be cut off before its answer can be read; never a 200.
        assert "stream" in what, f"{what}: closed without an answer"
    else:
        assert status in (400, 431), answer[:300]
        assert PROBLEM in answer.lower(), answer[:300]
    seen.check(f"{what} ({mode})")


@pytest.mark.slow
def test_a_slow_request_head_is_closed_within_the_timeout(edge: Edge) -> None:
    sock = edge.connect()
    started = time.monotonic()
    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
    sock.settimeout(0.5)
    answer, closed = b"", False
    while time.monotonic() - started < TIMEOUT_S + SLACK_S:
        try:
            sock.sendall(b"a")  # one byte each half second: never a whole head
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except (ssl.SSLError, OSError):
            closed = True
            break
        rest, closed = _answer(sock, SLACK_S) if chunk else (b"", True)
        answer = chunk + rest
        break
    took = time.monotonic() - started
    sock.close()
    assert closed, f"a slow request head was still open after {took:.1f} s"
    assert took >= TIMEOUT_S * 0.8, f"closed after {took:.1f} s, before its timeout"
    if not edge.behind_nginx:  # nginx closes without an answer
        assert _status(answer) == 408 and PROBLEM in answer.lower(), answer[:300]


@pytest.mark.slow
def test_a_connection_that_never_sends_a_request_is_closed(edge: Edge) -> None:
    sock = edge.connect()
    started = time.monotonic()
    answer, closed = _answer(sock, TIMEOUT_S + SLACK_S)
    took = time.monotonic() - started
    sock.close()
    assert closed and answer == b"", f"open after {took:.1f} s: {answer[:200]!r}"
    assert took >= TIMEOUT_S * 0.8


@pytest.mark.slow
def test_an_idle_keep_alive_connection_is_closed(edge: Edge) -> None:
    sock = edge.connect()
    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
    sock.settimeout(10)
    first = sock.recv(65536)
    assert _status(first) == 200, first[:200]
    started = time.monotonic()
    _rest, closed = _answer(sock, TIMEOUT_S + SLACK_S)
    took = time.monotonic() - started
    sock.close()
    assert closed, f"an idle keep-alive connection was open after {took:.1f} s"
    assert took >= TIMEOUT_S * 0.8


@pytest.mark.slow
@pytest.mark.parametrize("groups", ["X25519", "P-256", "P-384"])
def test_the_documented_key_exchange_groups_are_each_spoken(edge: Edge, groups: str) -> None:
    with edge.connect(groups) as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3")


@pytest.mark.slow
def test_no_other_key_exchange_group_is_spoken(edge: Edge) -> None:
    with pytest.raises(ssl.SSLError):
        edge.connect("P-521:ffdhe2048").close()


@pytest.mark.slow
def test_connections_beyond_the_workers_bound_are_refused_and_it_recovers(edge: Edge) -> None:
    if edge.behind_nginx:
        pytest.skip("nginx's bound is worker_connections in the operator's nginx.conf")
    held: list[ssl.SSLSocket] = []
    refused = b""
    try:
        for _ in range(30):
            sock = edge.connect()
            held.append(sock)
            sock.settimeout(0.3)
            try:
                refused = sock.recv(65536)
            except TimeoutError:
                continue
            if refused:
                break
        assert _status(refused) == 503, f"{len(held)} connections open, none refused"
        assert len(held) <= 21 and b"retry-after" in refused.lower(), refused[:300]
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    with edge.connect() as again:
        again.sendall(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert _status(_answer(again)[0]) == 200
