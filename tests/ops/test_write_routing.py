"""nginx routes writes by write readiness: the shipped `deploy/nginx/cdb-service.conf` in
front of a real service (proxy mode, its Unix socket) on PostgreSQL.

Issue 27: while a stuck writer held the registry's head lock, every write waited 10 s
and failed. Behind nginx now, a write is refused at once with a 503 problem that says
it was not applied (nginx asked `/health/ready/write` and did not send it), look-ups
keep answering, and once the writer is gone writes commit again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from cdb_service.ops.write_ready import SHARED_S
from cdb_service.security.dev import DevPki, token_for
from cdb_service.settings import Settings
from tests.support import factories
from tests.support.live import LOOKUP, pg_database
from tests.support.nginx import requires_nginx, running_nginx
from tests.support.service_process import running_service
from tests.support.tls import client_context

pytestmark = [pytest.mark.slow, requires_nginx]
SLACK_S = 1.0  # scheduling on a busy 2-core machine; far below a write's 10 s lock wait


@pytest.mark.serial  # measures how soon a write is refused
def test_nginx_refuses_writes_at_once_while_a_writer_holds_the_head_lock(tmp_path: Path) -> None:
    with (
        pg_database() as url,
        running_service(
            tmp_path / "svc", {"CDB_DATABASE_URL": url, "CDB_TLS_MODE": "proxy"}
        ) as service,
    ):
        pki = DevPki(service.data_dir / "pki")
        token = token_for(pki, "admin-de", Settings(port=service.port).dev_issuer_url(),
                          "cdb-api", "cdb_owner")  # fmt: skip
        tls = client_context(pki.ca, pki.client_cert("admin-de"), pki.client_key("admin-de"))
        with running_nginx(tmp_path / "nginx", upstream=f"unix:{service.data_dir / 'cdb.sock'}",
                           cert=pki.server_cert, key=pki.server_key) as nginx, httpx.Client(
            base_url=nginx.base_url.replace("127.0.0.1", "localhost"), verify=tls, timeout=30,
            headers={"Authorization": f"Bearer {token}"},
        ) as client:  # fmt: skip
            first = client.post("/api/v1/authorities", json=factories.authority(code="DE:R-1"))
            assert first.status_code == 201, first.text

            loop = asyncio.new_event_loop()
            stuck = loop.run_until_complete(asyncpg.connect(url))
            try:
                hold = "BEGIN; UPDATE registry_head SET revision = revision WHERE id = 1"
                loop.run_until_complete(stuck.execute(hold))
                time.sleep(SHARED_S)  # the app's last shared answer (ready) has expired
                started = time.monotonic()
                refused = client.post("/api/v1/authorities",
                                      json=factories.authority(code="DE:R-2"))  # fmt: skip
                took = time.monotonic() - started
                lookup = client.get(LOOKUP)
            finally:
                loop.run_until_complete(stuck.close())  # the writer goes; its lock with it
                loop.close()

            assert refused.status_code == 503, refused.text
            assert took <= Settings().ready_lock_wait_s + SLACK_S, took
            assert refused.headers["retry-after"] == str(Settings().retry_after_s)
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["write"] == "not-applied"
            assert lookup.status_code == 200 and lookup.json()["matches"], lookup.text

            deadline = time.monotonic() + 10
            while True:
                again = client.post("/api/v1/authorities",
                                    json=factories.authority(code="DE:R-3"))  # fmt: skip
                if again.status_code != 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert again.status_code == 201, again.text
            found = client.get("/api/v1/authorities", params={"code": "DE:R-2"}).json()
            assert found["items"] == [], "a write said not applied was applied"
