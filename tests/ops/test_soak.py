"""No growth but the data's (issue 27 item 7): a soak of `serve --workers 2`.

A steady mixed load (tests/support/soak.py) warms the workers up, then each worker's
resident memory is fitted over two phases: one without writes, where it must stay
flat, and one with a write a second, where it may grow by what the entries written
cost a worker (measured in the same run, by importing a batch of the same shapes),
three times over. Both allow `NOISE_MIB` for the allocator's steps.

Short here (about two minutes, in `make test`'s serial part); `make soak` runs it for
`SOAK_MINUTES` and prints both slopes in MiB per hour per worker. The second test
plants a leak of 32 KiB per request in the workers and shows the same check fails;
the short run misses a leak below about NOISE_MIB ÷ 700 requests a worker ≈ 3 KiB a
request (the long run, proportionally less).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.live import pg_database
from tests.support.soak import MIB, Phase, Soaked, soaked

MINUTES = float(os.environ.get("CDB_SOAK_MINUTES", "0"))  # `make soak`: the long run
RATE = float(os.environ.get("CDB_SOAK_RATE", "40"))  # requests per second, all workers
PHASE_S = MINUTES * 30 if MINUTES else 35.0  # each of the two phases
# Warm-up: writes (each empties the answer cache), then reads until the cache holds
# every question the load asks.
WARM_WRITES_S, WARM_READS_S = 15.0, 20.0
NOISE_MIB = 2.0  # the allocator's steps; flat phases grew 0.0–0.3 MiB in 35 s
K = 3  # a worker may hold an entry written one at a time up to 3 times its batch cost
COST_ENTRIES = 2000
PLANTED_BYTES = 32 * 1024
PLANTED = Path(__file__).resolve().parents[1] / "support" / "planted_leak"

pytestmark = [pytest.mark.slow, pytest.mark.serial]  # measures memory under load: alone


def _warm(soak: Soaked) -> None:
    soak.phase("warm-up, writes", WARM_WRITES_S, writing=True)
    soak.phase("warm-up, reads", WARM_READS_S, writing=False)


def _excess(phase: Phase, bytes_per_entry: float) -> dict[int, float]:
    """Workers that grew more than the phase's data allows: pid -> MiB grown."""
    allowed = NOISE_MIB + K * phase.entries * bytes_per_entry / MIB
    return {pid: grown for pid, grown in phase.growth_mib().items() if grown > allowed}


def test_workers_grow_only_by_the_data_they_hold(tmp_path: Path) -> None:
    with pg_database() as url, soaked(tmp_path, url) as soak:
        with soak.load(RATE):
            _warm(soak)
            reads = soak.phase("no writes", PHASE_S, writing=False)
            writes = soak.phase("a write a second", PHASE_S, writing=True)
        cost = soak.entry_cost(COST_ENTRIES)
        assert not soak.failures, soak.failures[:5]
    print(f"\nsoak at {RATE:.0f} requests/s, {len(reads.samples)} workers; an entry costs "
          f"a worker {cost / 1024:.1f} KiB\n{reads.describe()}\n{writes.describe()}")  # fmt: skip
    # The load reached every worker and the writes were written.
    assert reads.requests > RATE * PHASE_S / 2 and writes.entries >= PHASE_S / 2
    assert 0 < cost < 64 * 1024, cost  # the batch was taken: each worker grew
    assert not _excess(reads, cost), f"grew without data: {reads.describe()}"
    assert not _excess(writes, cost), f"grew beyond its data: {writes.describe()}"


def test_a_leak_per_request_fails_the_soak(tmp_path: Path) -> None:
    """The same check, with PLANTED_BYTES kept per request in every worker: it fails."""
    path = os.pathsep.join(filter(None, [str(PLANTED), os.environ.get("PYTHONPATH")]))
    leak = {"PYTHONPATH": path, "CDB_TEST_LEAK_BYTES": str(PLANTED_BYTES)}
    with pg_database() as url, soaked(tmp_path, url, **leak) as soak, soak.load(RATE):
        soak.phase("warm-up", 8.0, writing=False)
        reads = soak.phase("no writes, leaking", 15.0, writing=False)
    print(f"\nplanted {PLANTED_BYTES // 1024} KiB a request: {reads.describe()}")
    # What a leak of this size costs over the phase: well above the noise it must beat.
    leaked = reads.requests / len(reads.samples) * PLANTED_BYTES / MIB
    assert leaked > 2 * NOISE_MIB, leaked
    assert _excess(reads, bytes_per_entry=0) == reads.growth_mib(), reads.describe()
