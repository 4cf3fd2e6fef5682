"""Readiness under steady writes: the index is a few revisions behind, and that is fresh.

Eight writers for 30 s on PostgreSQL through the real service (mTLS, tokens, TLS): every
readiness poll, look-up and write (whose probe takes the head lock the writers queue
on, waiting at most `CDB_READY_LOCK_WAIT_S`), must be 200 and the probe running
alongside must record no outage. The index is never idle under this load; it was once
judged by the time since the head last stood still and pulled healthy instances out of
service.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from cdb_service.probe import report
from cdb_service.probe.store import Store
from tests.support import factories
from tests.support.live import live_service, rows

pytestmark = pytest.mark.serial  # measures time under load: runs alone

WRITERS = 8
SECONDS = 30.0


@pytest.mark.slow
def test_eight_writers_for_30_s_keep_readiness_200_and_the_probe_sees_no_outage(
    tmp_path: Path,
) -> None:
    with live_service(tmp_path / "svc") as live:
        store = tmp_path / "probe.sqlite3"
        with live.probe(store, interval=1.0, timeout=1.0):
            stop_at = time.monotonic() + SECONDS
            acknowledged: list[int] = []
            failures: list[str] = []

            def writer(w: int) -> None:
                with live.client("admin-de") as client:
                    n = 0
                    while time.monotonic() < stop_at:
                        body = factories.authority(code=f"DE:LOAD-{w}-{n}")
                        response = client.post("/api/v1/authorities", json=body)
                        if response.status_code == 201:
                            acknowledged.append(int(response.json()["revision"]))
                        else:
                            failures.append(f"{response.status_code} {response.text[:200]}")
                        n += 1

            threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
            for thread in threads:
                thread.start()
            polls: list[tuple[int, str]] = []
            with live.anonymous() as anonymous:
                while time.monotonic() < stop_at:
                    for path in ("/health/ready", "/health/ready/write"):
                        ready = anonymous.get(path)
                        polls.append((ready.status_code, f"{path} {ready.text}"))
                    time.sleep(0.5)
            for thread in threads:
                thread.join()
            time.sleep(1.5)  # one more probe sample after the load
        assert not failures, failures[:5]
        assert len(acknowledged) >= 10 * SECONDS, "the load was not steady writes"
        assert len(polls) >= 40  # about one pair a second, however loaded the machine
        waits = [json.loads(text.split(" ", 1)[1])["checks"]["database:writable"][0]
                 .get("observedValue", 0) for status, text in polls
                 if status == 200 and text.startswith("/health/ready/write")]  # fmt: skip
        print(f"\nwrite readiness under {WRITERS} writers: {len(waits)} polls, slowest "
              f"{max(waits, default=0):.0f} ms")  # fmt: skip
        bad = [p for p in polls if p[0] != 200]
        assert not bad, f"{len(bad)} of {len(polls)} readiness polls failed: {bad[:3]}"
        assert rows(store, "SELECT count(*) FROM incidents") == [(0,)]
        with closing(Store(store)) as probe_store:
            period = report.build(probe_store).periods["rolling_30d"]
        assert period.down_s == 0
        assert period.monitored_from is not None  # counted from its first sample
        assert live.revisions() == list(range(1, len(live.revisions()) + 1))
