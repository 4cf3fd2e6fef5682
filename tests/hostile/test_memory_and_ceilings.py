"""Bounds measured on a real `cdb-service serve` process: the resident memory one hostile
request can add, and the ceiling on concurrent full extracts.

Memory is the server process's peak resident size while the request is answered
(/proc's high-water mark, reset just before it: a spike freed before the answer still
counts), a bound, not a timing. The registry is
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
        return self.service.dev_token(client)

    def tls(self, client: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.pem"))
        context.load_cert_chain(self.pki / f"client-{client}.pem",
                                self.pki / f"client-{client}-key.pem")  # fmt: skip
        return context

    def grew(self, before: int, what: str, answer_bytes: int) -> int:
        """Peak RSS growth since `before` (see `rss`), printed for the record (pytest -s)."""
        growth = self._status("VmHWM") - before
        print(f"\n{what}: peak RSS +{growth / MiB:.1f} MiB, answer {answer_bytes} bytes")
        return growth

    def rss(self) -> int:
        """The resident size now, with the peak reset to it (`grew` reads the peak)."""
        Path(f"/proc/{self.service.process.pid}/clear_refs").write_text("5")
        return self._status("VmRSS")

    def _status(self, field: str) -> int:
        status = Path(f"/proc/{self.service.process.pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith(field))
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
    variables = {"CDB_MAX_EXTRACTS_PER_CLIENT": "2", "CDB_MAX_EXTRACTS": "4",
                 "CDB_MAX_LONG_POLLS_PER_CLIENT": "2", "CDB_MAX_LONG_POLLS": "3"}  # fmt: skip
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


def test_a_csv_import_with_a_million_columns_is_one_error_in_bounded_memory(dev: Dev) -> None:
    header = b",".join(b"c%d" % n for n in range(1_000_000)) + b"\ncode\n"
    assert len(header) > 6 * MiB
    before = dev.rss()
    answer = _post(dev, "admin-de", "/api/v1/import?dry_run=true&kind=authorities", header,
                   "text/csv")  # fmt: skip
    assert answer.status_code == 422, answer.text[:300]
    problem = answer.json()
    assert problem["errors_total"] == 1 and "header" in problem["errors"][0]["msg"], problem
    assert dev.grew(before, "administrator, 1,000,000-column CSV", len(answer.content)) < (
        GROWTH_BOUND
    )


def test_an_import_for_another_owner_is_refused_before_its_lines_are_read(dev: Dev) -> None:
    junk = b'{"kind":"authorities","document":{"x":1}}\n' * 250_000
    before = dev.rss()
    answer = _post(dev, "admin-fr", "/api/v1/import?owner=DE&dry_run=true", junk,
                   "application/x-ndjson")  # fmt: skip
    assert answer.status_code == 403, answer.text[:300]
    assert "errors" not in answer.json()  # refused, not parsed
    assert dev.grew(before, "another owner's 10 MB import", len(answer.content)) < GROWTH_BOUND


def _open(dev: Dev, client: str, request: str, *, read_status: bool = True,
          token: str | None = None) -> tuple[ssl.SSLSocket, int, str]:  # fmt: skip
    """Send `request` (method and target) and read at most the status line, so that the
    work it started stays in flight; `read_status=False` for work that answers late."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    raw.connect(("127.0.0.1", dev.service.port))
    conn = dev.tls(client).wrap_socket(raw, server_hostname="localhost")
    method = request.split(" ", 1)[0]
    extra = ""
    if method == "POST":  # an upload that has only begun: its body never ends
        extra = "Content-Type: application/x-ndjson\r\nContent-Length: 1000000\r\n"
    conn.sendall(f"{request} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
                 f"{token or dev.token(client)}\r\n{extra}\r\n".encode())  # fmt: skip
    if method == "POST":
        conn.sendall(b'{"kind":')
    if not read_status:
        return conn, 0, ""
    head = conn.recv(4096).decode("latin-1")
    status = int(head.split(" ", 2)[1])
    retry = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                  if line.lower().startswith("retry-after:")), "")  # fmt: skip
    return conn, status, retry


def test_20_concurrent_full_extracts_by_one_client_meet_the_ceiling(dev: Dev) -> None:
    token = dev.token("reader")
    before = dev.rss()
    opened = [_open(dev, "reader", "GET /api/v1/extract", token=token) for _ in range(20)]
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


def _refused_once_they_hold(
    dev: Dev, client: str, target: str, method: str = "GET"
) -> tuple[int, str]:
    """The answer to `target` once the held requests have reached their slots: tried
    until refused (a try that gets in answers after its own short wait)."""
    headers = {"Authorization": f"Bearer {dev.token(client)}",
               "Content-Type": "application/x-ndjson"}  # fmt: skip
    with httpx.Client(verify=dev.tls(client), timeout=60) as http:
        for _ in range(30):
            answer = http.request(method, f"{dev.service.base_url}{target}", headers=headers,
                                  content=b"" if method == "POST" else None)  # fmt: skip
            if answer.status_code in (429, 503):
                return answer.status_code, answer.headers.get("retry-after", "")
    raise AssertionError(f"{target} was never refused: {answer.status_code} {answer.text[:200]}")


def test_long_polls_meet_the_ceiling_per_client_and_overall(dev: Dev) -> None:
    with httpx.Client(verify=dev.tls("reader"), timeout=60) as http:
        auth = {"Authorization": f"Bearer {dev.token('reader')}"}
        page = http.get(f"{dev.service.base_url}/api/v1/changes?since=0&limit=1", headers=auth)
        head = page.json()["head"]
    poll = f"GET /api/v1/changes?since={head}&wait=10"  # held past the checks, not the test
    held = [_open(dev, "reader", poll, read_status=False) for _ in range(2)]
    try:
        status, retry = _refused_once_they_hold(
            dev, "reader", f"/api/v1/changes?since={head}&wait=1"
        )
        assert status == 429 and int(retry) >= 1, (status, retry)
        held.append(_open(dev, "admin-de", poll, read_status=False))
        status, retry = _refused_once_they_hold(
            dev, "operator", f"/api/v1/changes?since={head}&wait=1"
        )
        assert status == 503 and int(retry) >= 1, (status, retry)
    finally:
        for conn, _, _ in held:
            conn.close()


def test_imports_meet_the_ceiling_per_client_and_overall(dev: Dev) -> None:
    held = [_open(dev, "admin-de", "POST /api/v1/import?dry_run=true", read_status=False)]
    try:
        status, retry = _refused_once_they_hold(
            dev, "admin-de", "/api/v1/import?dry_run=true", "POST"
        )
        assert status == 429 and int(retry) >= 1, (status, retry)
        held.append(_open(dev, "admin-fr", "POST /api/v1/import?dry_run=true", read_status=False))
        status, retry = _refused_once_they_hold(
            dev, "admin-ej", "/api/v1/import?dry_run=true", "POST"
        )
        assert status == 503 and int(retry) >= 1, (status, retry)
    finally:
        for conn, _, _ in held:
            conn.close()


def test_extracts_beyond_the_services_total_are_503(dev: Dev) -> None:
    opened = [_open(dev, client, "GET /api/v1/extract") for client in ("reader", "reader",
              "admin-de", "admin-de")]  # fmt: skip
    try:
        assert [status for _, status, _ in opened] == [200] * 4
        _, status, retry = _open(dev, "operator", "GET /api/v1/extract")
        assert status == 503 and int(retry) >= 1, (status, retry)
    finally:
        for conn, _, _ in opened:
            conn.close()
