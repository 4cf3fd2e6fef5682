"""A database outage, as Kubernetes and nginx see it: look-ups stay ready, writes do not.

A real `cdb-service serve` (dev profile: migrated and seeded on start) on a PostgreSQL
server of the test's own, which the test stops and starts. Issue 27: during an outage
look-ups kept answering from the in-memory index while readiness said 503 (every pod
would have left the look-up Service), and a service started while the database was
down exited. Now look-up readiness stays 200 and says what is degraded, write
readiness is 503 until the database is back, and a service started without its
database waits for it with backoff, answering look-ups from its saved index.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.live import LOOKUP, Live
from tests.support.nginx import free_port
from tests.support.pg_cluster import Server, init_primary, requires_pg_server, workspace
from tests.support.service_process import service_env, stop

pytestmark = [pytest.mark.serial, pytest.mark.slow, requires_pg_server]
# Short database waits, so that an outage is felt within seconds.
BUDGETS = {"CDB_DB_CONNECT_TIMEOUT_S": "1", "CDB_DB_STATEMENT_TIMEOUT_S": "2",
           "CDB_READY_BUDGET_S": "1.5", "CDB_DB_WAIT_MAX_S": "2"}  # fmt: skip
# How soon write readiness must turn: its budget, the shared answer's second, a poll.
WRITE_TURNS_S = 1.5 + 1.0 + 1.0


def _until(client: httpx.Client, path: str, status: int, seconds: float) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        answer = client.get(path)
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def _following(client: httpx.Client, seconds: float) -> bool:
    """Look-up readiness says nothing is degraded: the index follows the database."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = client.get("/health/ready")
        if answer.status_code == 200 and answer.json().get("output") is None:
            return True
        time.sleep(0.2)
    return False


def _matches(answer: httpx.Response) -> list[Any]:
    assert answer.status_code == 200, answer.text
    found: list[Any] = answer.json()["matches"]
    return found


def _live(root: Path, server: Server) -> Live:
    (root / "var").mkdir(parents=True, exist_ok=True)
    env = service_env(root / "var", free_port(), CDB_DATABASE_URL=server.url, **BUDGETS)
    return Live(root, int(env["CDB_PORT"]), env, None, None, server.url)  # type: ignore[arg-type]


def test_look_ups_stay_ready_through_an_outage_and_a_start_without_the_database(
    tmp_path: Path,
) -> None:
    with workspace() as pg_root:
        server = init_primary(pg_root)
        live = _live(tmp_path / "svc", server)
        try:
            live.start()
            with live.client("reader") as reader, live.anonymous() as anonymous:
                before = _matches(reader.get(LOOKUP))
                assert before, "the seed routes 10115 to a court"
                assert anonymous.get("/health/ready/write").status_code == 200

                # 1. The database stops while the service runs.
                server.stop()
                write = _until(anonymous, "/health/ready/write", 503, WRITE_TURNS_S)
                assert write.status_code == 503, write.text
                assert write.headers["retry-after"]
                time.sleep(2)  # the index has not synced for a while now
                ready = anonymous.get("/health/ready")
                assert ready.status_code == 200, ready.text
                assert ready.json()["status"] == "warn"
                assert "the database does not answer" in ready.json()["output"]
                assert _matches(reader.get(LOOKUP)) == before

                server.start()
                assert _until(anonymous, "/health/ready/write", 200, 20).status_code == 200
                assert _following(anonymous, 10)
            stop(live.process)

            # 2. Started while the database is down: it waits, and answers from its save.
            server.stop()
            log = tmp_path / "svc" / "serve.log"
            logged_before = log.stat().st_size
            live.start()  # returns once look-up readiness says 200
            with live.client("reader") as reader, live.anonymous() as anonymous:
                ready = anonymous.get("/health/ready")
                assert ready.status_code == 200, ready.text
                assert "saved lookup index" in ready.json()["output"]
                assert _matches(reader.get(LOOKUP)) == before
                assert anonymous.get("/health/ready/write").status_code == 503
                time.sleep(3)  # a few attempts
                server.start()
                assert _until(anonymous, "/health/ready/write", 200, 20).status_code == 200
                assert _following(anonymous, 10), "the index was not rebuilt from the database"
                assert _matches(reader.get(LOOKUP)) == before
            said = log.read_text(errors="replace")[logged_before:]
            assert "answering look-ups from the saved lookup index" in said
            waits = [line for line in said.splitlines() if "does not answer; waiting" in line]
            assert len(waits) >= 2, said[-3000:]
            assert all('"cause"' in w and '"next_wait_s"' in w for w in waits), waits
            assert "connection refused" in waits[0], waits[0]
            assert '"the database answers"' in said
        finally:
            if live.process is not None:
                stop(live.process)
            server.stop()
