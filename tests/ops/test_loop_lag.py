"""The event-loop lag a request would have waited out is measured and exported."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from cdb_service import metrics
from cdb_service.app import create_app
from cdb_service.settings import Settings
from cdb_service.web.loop_lag import LoopLag
from tests.support.in_loop import app_client


def _lag_buckets() -> dict[str, float]:
    """`le` → cumulative count of `cdb_event_loop_lag_seconds`, as /metrics serves it."""
    exposition = metrics.exposition().decode()
    (family,) = [f for f in text_string_to_metric_families(exposition)
                 if f.name == "cdb_event_loop_lag_seconds"]  # fmt: skip
    return {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}


async def test_a_blocked_loop_is_seen_as_late_as_it_was_blocked() -> None:
    lag = LoopLag(interval_s=0.02)
    before = _lag_buckets()
    lag.start()
    await asyncio.sleep(0.1)
    time.sleep(0.3)  # noqa: ASYNC251 (on purpose: work that holds the loop)
    await asyncio.sleep(0.1)
    await lag.stop()
    after = _lag_buckets()
    assert lag.worst >= 0.25
    slow = (after["+Inf"] - after["0.25"]) - (before["+Inf"] - before["0.25"])
    timely = after["0.1"] - before["0.1"]
    assert slow >= 1 and timely >= 3  # the stall, among timely wake-ups


async def test_the_service_measures_its_loop_from_the_start(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", auto_seed=False,
                        data_dir=tmp_path)  # fmt: skip
    async with app_client(create_app(settings)):
        before = _lag_buckets()["+Inf"]
        await asyncio.sleep(0.35)
        assert _lag_buckets()["+Inf"] - before >= 2
