"""Bounds measured on a real `cdb-service serve` process: the resident memory one hostile
request can add, and the ceiling on concurrent full extracts.

RSS is read from /proc for the server process (a bound, not a timing). The registry is
the dev seed plus generated geo keys, so that a full extract is several megabytes and
a client that does not read keeps its extract (and its slot) busy.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.service_process import Service, executable, running_service

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
GROWTH_BOUND = 64 * MiB
ANSWER_BOUND = 64 * 1024


@dataclass
class Dev:
    service: Service
    pki: Path

    def token(self, client: str) -> str:
        env = {"PATH": os.environ["PATH"], "CDB_DATA_DIR": str(self.service.data_dir),
               "CDB_PORT": str(self.service.port)}  # fmt: skip
        done = subprocess.run([executable(), "dev-token", "--client", client], env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        return done.stdout.strip()

    def tls(self, client: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.pem"))
        context.load_cert_chain(self.pki / f"client-{client}.pem",
                                self.pki / f"client-{client}-key.pem")  # fmt: skip
        return context

    def grew(self, before: int, what: str, answer_bytes: int) -> int:
        """RSS growth since `before`, printed for the record (pytest -s shows it)."""
        growth = self.rss() - before
        print(f"\n{what}: RSS +{growth / MiB:.1f} MiB, answer {answer_bytes} bytes")
        return growth

    def rss(self) -> int:
        status = Path(f"/proc/{self.service.process.pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
        return int(kib) * 1024


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    root = tmp_path_factory.mktemp("hostile")
    data = root / "var"
    env = {"PATH": os.environ["PATH"], "CDB_DATA_DIR": str(data)}
    for command in (
        ["migrate"],
        ["seed", "--scale", "100000"],
        ["dev-token", "--client", "reader"],
    ):
        subprocess.run([executable(), *command], env=env, check=True, capture_output=True)
    variables = {"CDB_MAX_EXTRACTS_PER_CLIENT": "2", "CDB_MAX_EXTRACTS": "4"}
    with running_service(root, variables, ca=data / "pki" / "ca.pem") as service:
        yield Dev(service, data / "pki")


def _post(dev: Dev, client: str, path: str, body: bytes, content_type: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {dev.token(client)}", "Content-Type": content_type}
    with httpx.Client(verify=dev.tls(client), timeout=120) as http:
        return http.post(f"{dev.service.base_url}{path}", content=body, headers=headers)


def test_a_readers_10_mb_invalid_body_is_refused_before_it_is_read(dev: Dev) -> None:
    body = b'{"owner":"DE","geo":[' + b'{"scheme":"postal","code":"?"},' * 330_000 + b"{}]}"
    before = dev.rss()
    answer = _post(dev, "reader", "/api/v1/jurisdiction-criteria", body, "application/json")
    assert answer.status_code == 403, answer.text[:300]
    assert len(answer.content) < ANSWER_BOUND
    assert dev.grew(before, "reader, 10 MB invalid body", len(answer.content)) < GROWTH_BOUND


def test_an_administrators_10_mb_invalid_criterion_is_too_large(dev: Dev) -> None:
    body = b'{"owner":"DE","geo":[' + b'{"scheme":"postal","code":"?"},' * 330_000 + b"{}]}"
    before = dev.rss()
    answer = _post(dev, "admin-de", "/api/v1/jurisdiction-criteria", body, "application/json")
    assert answer.status_code == 413, answer.text[:300]
    assert dev.grew(before, "administrator, 10 MB criterion", len(answer.content)) < GROWTH_BOUND


def test_an_administrators_10_mb_junk_import_has_a_short_answer_and_bounded_memory(
    dev: Dev,
) -> None:
    junk = b"".join(b'{"kind":"authorities","document":{"x":%d}}\n' % n for n in range(250_000))
    junk += b"\xff\xfe not utf-8\n" + b"[" * 100_000 + b"\n" + b"y" * (3 * MiB) + b"\n"
    assert len(junk) > 10 * MiB
    before = dev.rss()
    answer = _post(dev, "admin-de", "/api/v1/import?dry_run=true", junk, "application/x-ndjson")
    assert answer.status_code == 422, answer.text[:300]
    problem = answer.json()
    assert problem["errors_total"] > 250_000 and len(problem["errors"]) == 100
    assert len(answer.content) < ANSWER_BOUND
    assert dev.grew(before, "administrator, 10 MB junk import", len(answer.content)) < GROWTH_BOUND


def _open_extract(dev: Dev, token: str) -> tuple[ssl.SSLSocket, int, str]:
    """Start a full extract and read only the status line: the extract stays in flight."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    raw.connect(("127.0.0.1", dev.service.port))
    conn = dev.tls("reader").wrap_socket(raw, server_hostname="localhost")
    conn.sendall(f"GET /api/v1/extract HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
                 f"{token}\r\n\r\n".encode())  # fmt: skip
    head = conn.recv(4096).decode("latin-1")
    status = int(head.split(" ", 2)[1])
    retry = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                  if line.lower().startswith("retry-after:")), "")  # fmt: skip
    return conn, status, retry


def test_20_concurrent_full_extracts_by_one_client_meet_the_ceiling(dev: Dev) -> None:
    token = dev.token("reader")
    before = dev.rss()
    opened = [_open_extract(dev, token) for _ in range(20)]
    try:
        statuses = [status for _, status, _ in opened]
        assert statuses[:2] == [200, 200], statuses
        refused = [(status, retry) for _, status, retry in opened[2:]]
        assert all(status in (429, 503) and int(retry) >= 1 for status, retry in refused), refused
        assert dev.grew(before, "20 concurrent full extracts", 0) < GROWTH_BOUND
    finally:
        for conn, _, _ in opened:
            conn.close()
    # Abandoned extracts give their slots back.
    with httpx.Client(verify=dev.tls("reader"), timeout=120) as http:
        for _ in range(50):
            answer = http.get(f"{dev.service.base_url}/api/v1/extract",
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            if answer.status_code == 200:
                break
        assert answer.status_code == 200
