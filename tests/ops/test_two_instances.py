"""Two service instances on one PostgreSQL database: read your writes, and one revision line.

Two `cdb-service serve` processes share the database, as two workers or two hosts
behind a load balancer do; each keeps its own lookup index. A client that writes
through one and reads `/resolve` through the other with `min_revision` set to its
write's revision must always see its write (100 tries). Writers on both at once must
leave the revisions gap-free.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cdb_service.registry.kinds import KINDS
from tests.support import factories
from tests.support.live import LOOKUP, Live, live_service
from tests.support.nginx import free_port
from tests.support.service_process import stop

pytestmark = pytest.mark.serial  # measures time under load: runs alone

TRIES = 100


def _second(first: Live, root: Path) -> Live:
    """Another instance on the first one's database, PKI and keys, on a port of its own."""
    port = free_port()
    env = first.env | {"CDB_PORT": str(port)}
    second = Live(first.root, port, env, None, None, first.database_url)  # type: ignore[arg-type]
    second.start()
    return second


def _editable(document: dict[str, Any]) -> dict[str, Any]:
    fields = KINDS["authorities"].schema.model_fields
    return {k: v for k, v in document.items() if k in fields}


@pytest.mark.slow
def test_min_revision_reads_your_write_through_the_other_instance_and_revisions_stay_gap_free(
    tmp_path: Path,
) -> None:
    with live_service(tmp_path / "svc") as first:
        second = _second(first, tmp_path)
        try:
            with first.client("operator") as writer, second.client("reader") as reader:
                answer = reader.get(LOOKUP).json()
                authority_id = answer["matches"][0]["authority"]["id"]
                url = f"/api/v1/authorities/{authority_id}"
                current = writer.get(url)
                for attempt in range(TRIES):
                    body = _editable(current.json())
                    body["names"] = body["names"] | {"en": f"Court, try {attempt}"}
                    written = writer.put(
                        url, json=body, headers={"If-Match": current.headers["etag"]}
                    )
                    assert written.status_code == 200, written.text
                    revision = int(written.headers["cdb-revision"])
                    assert revision == written.json()["revision"]
                    read = reader.get(f"{LOOKUP}&min_revision={revision}")
                    assert read.status_code == 200, read.text
                    assert read.json()["revision"] >= revision
                    names = [m["authority"]["names"].get("en") for m in read.json()["matches"]
                             if m["authority"]["id"] == authority_id]  # fmt: skip
                    assert names == [f"Court, try {attempt}"], (attempt, names)
                    current = written
                # A revision nobody has written: the client's mistake, 422 naming the head.
                ahead = reader.get(f"{LOOKUP}&min_revision={revision + 1000}")
                assert ahead.status_code == 422, ahead.text
                assert "after the head revision" in ahead.json()["detail"]

            # Writers on both instances at once: one line of revisions, no gap.
            stop_at = time.monotonic() + 3
            failures: list[str] = []

            def write(live: Live, w: int) -> None:
                with live.client("admin-de") as client:
                    n = 0
                    while time.monotonic() < stop_at:
                        body = factories.authority(code=f"DE:TWO-{w}-{n}")
                        response = client.post("/api/v1/authorities", json=body)
                        if response.status_code != 201:
                            failures.append(response.text[:200])
                        n += 1

            threads = [threading.Thread(target=write, args=(live, w))
                       for w, live in enumerate((first, second, first, second))]  # fmt: skip
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not failures, failures[:3]
            revisions = first.revisions()
            assert revisions == list(range(1, len(revisions) + 1))
        finally:
            if second.process is not None:
                stop(second.process)
