"""`make bench`'s "worker killed → ready" row: how long look-ups wait for a new worker.

The service runs as `run.py` runs it (prod profile, proxy mode, several workers) on the
seeded registry, logging at INFO so that each answer names the worker that gave it.
One worker is SIGKILLed at a time; the figure is the time from the kill to the first
look-up a new worker answers 200 (tests/support/worker_kill.py, which the test of the
2 s bound also uses), and every look-up that was not answered 200 meanwhile counts as
an error.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx

from cdb_service.ops.supervisor import QUICK_DEATH_S
from tests.support.worker_kill import kill_one_and_time


def replacement_times(pid: int, url: str, path: str, headers: dict[str, str], log: Path,
                      kills: int) -> tuple[list[float], int]:  # fmt: skip
    """Seconds from each of `kills` kills to a new worker's first answer; look-ups failed."""
    seconds, failed = [], 0
    # No connection is kept: whichever worker accepts the next one answers it.
    transport = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
    with httpx.Client(transport=transport, base_url=url, headers=headers, timeout=10) as client:
        for _ in range(kills):
            # Every worker past its first seconds: one that dies sooner is restarted
            # after a pause if it was not the first in its place to die young.
            time.sleep(QUICK_DEATH_S)
            replaced = kill_one_and_time(pid, log, lambda: client.get(path))
            seconds.append(replaced.seconds)
            failed += len(replaced.failures)
    return seconds, failed


def summary(seconds: list[float]) -> str:
    return (f"median of {len(seconds)} kills; {min(seconds):.2f}–{max(seconds):.2f} s, "
            f"mean {statistics.fmean(seconds):.2f} s")  # fmt: skip
