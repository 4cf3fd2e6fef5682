"""Kill one worker of a running `serve --workers N` and time its replacement, as a
client sees it: from the SIGKILL to the first look-up that a new worker answers 200.

Which worker answered is read from the service's log (every line names its process;
the access line carries the request id the answer carries). Shared by the test
(tests/ops/test_worker_replacement.py) and `make bench` (bench/worker_restart.py).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PER_ROUND = 2  # look-ups sent at once, each on a connection of its own
PAUSE_S = 0.05  # between rounds: the probe must not starve the worker it waits for


def workers(supervisor: int) -> list[int]:
    """The supervisor's worker processes."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(pid) for pid in children]


@dataclass
class Replacement:
    seconds: float  # from the kill to the first 200 from a new worker
    killed: int
    new: int
    failures: list[str] = field(default_factory=list)  # look-ups not answered 200 meanwhile
    answered: int = 0  # look-ups answered 200 meanwhile, by any worker


class _Log:
    """The service's access lines, read as they come: request id -> the process."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.by = path, 0, dict[str, int]()

    def read(self) -> dict[str, int]:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            if line.startswith("{") and '"request"' in line:
                event = json.loads(line)
                if event.get("event") == "request":
                    self.by[event["request_id"]] = event["pid"]
        return self.by


def kill_one_and_time(supervisor: int, log: Path, look_up: Callable[[], httpx.Response],
                      timeout: float = 30) -> Replacement:  # fmt: skip
    """SIGKILL the first worker, then look up until a worker started since answers."""
    before = set(workers(supervisor))
    victim = min(before)
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    sent: dict[str, float] = {}  # request id -> when its 200 arrived
    failures: list[str] = []

    def one() -> None:
        try:
            answer = look_up()
        except httpx.TransportError as error:
            failures.append(repr(error))
            return
        if answer.status_code != 200:
            failures.append(f"{answer.status_code} {answer.text[:200]}")
            return
        sent[answer.headers["x-request-id"]] = time.monotonic()

    answers = _Log(log)
    with ThreadPoolExecutor(PER_ROUND) as pool:
        while time.monotonic() - killed_at < timeout:
            list(pool.map(lambda _: one(), range(PER_ROUND)))
            by = answers.read()
            new = {rid: by[rid] for rid in sent if rid in by and by[rid] not in before}
            if new:
                first = min(new, key=lambda rid: sent[rid])
                return Replacement(sent[first] - killed_at, victim, new[first], failures,
                                   len(sent))  # fmt: skip
            time.sleep(PAUSE_S)
    raise AssertionError(f"no new worker answered within {timeout} s; failures: {failures[:5]}")
