"""A soak: a real `serve --workers 2` under a steady mixed load, its workers' resident
memory sampled, and the slope of each fitted (tests/ops/test_soak.py, `make soak`).

The load is what clients send all day, through the Unix socket nginx uses: look-ups
(most of it, over a few hundred postal codes), routing-table fetches (half of them
conditional), change-feed polls, now and then a whole signed extract, and, in the
writing phase, one write a second (an authority, then a criterion routing three postal
codes to it). Each worker's RSS is read from /proc every half second once the load has
warmed it up; a least-squares line through the samples gives its growth.

What a worker should grow by is what it holds: `entry_cost` measures it, by importing
a batch of entries of the same shapes and reading how much each worker grew once its
index had taken them.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from cdb_service.security.dev import DevPki, token_for
from cdb_service.settings import Settings
from tests.support import factories
from tests.support.nginx import free_port
from tests.support.service_process import Service, executable, service_env, stop, wait_ready
from tests.support.worker_kill import workers

MIB = 1024 * 1024
SAMPLE_S = 0.5
# Postal codes the seed routes in Germany (10115 …) and codes the soak's writes route.
POSTAL_CODES = [f"{n:05d}" for n in range(10115, 10415)]


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def slope(samples: list[tuple[float, float]]) -> float:
    """The growth of (seconds, MiB) samples, in MiB per second: Theil-Sen's median of
    every pair's slope. A steady leak is a line, which it follows exactly; one step of
    the allocator (an arena taken once and kept) moves it little, where a least-squares
    line through a step halfway up reads one and a half steps of growth."""
    points = samples[:: max(1, len(samples) // 400)]  # 80,000 pairs at most
    pairs = [(v2 - v1) / (t2 - t1) for i, (t1, v1) in enumerate(points)
             for t2, v2 in points[i + 1 :] if t2 > t1]  # fmt: skip
    return statistics.median(pairs)


@dataclass
class Phase:
    name: str
    seconds: float  # sampled, after the warm-up
    entries: int = 0  # written while sampled
    requests: int = 0  # answered while sampled
    samples: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # pid -> (t, MiB)

    def growth_mib(self) -> dict[int, float]:
        """Each worker's fitted growth over the phase."""
        return {pid: slope(s) * self.seconds for pid, s in self.samples.items()}

    def per_hour(self) -> dict[int, float]:
        return {pid: slope(s) * 3600 for pid, s in self.samples.items()}

    def describe(self) -> str:
        rates = ", ".join(f"{v:+.1f}" for v in self.per_hour().values())
        first = [s[0][1] for s in self.samples.values()]
        last = [s[-1][1] for s in self.samples.values()]
        span = "; ".join(f"{a:.1f} → {b:.1f}" for a, b in zip(first, last, strict=True))
        return (f"{self.name}: {rates} MiB/h per worker ({span} MiB over {self.seconds:.0f} s, "
                f"{self.requests} requests, {self.entries} entries written)")  # fmt: skip


@dataclass
class Soaked:
    """A running two-worker service and the clients of the load."""

    service: Service
    pki: DevPki
    socket: Path
    database_url: str
    env: dict[str, str]
    written: int = 0
    answered: int = 0
    failures: list[str] = field(default_factory=list)
    _writing: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)

    def client(self, name: str) -> httpx.Client:
        token = token_for(self.pki, name, Settings(port=self.service.port).dev_issuer_url(),
                          "cdb-api", "cdb_owner")  # fmt: skip
        headers = {
            "Authorization": f"Bearer {token}",
            "X-SSL-Client-Cert": quote(self.pki.client_cert(name).read_text(), safe=""),
        }
        transport = httpx.HTTPTransport(uds=str(self.socket))
        return httpx.Client(transport=transport, base_url="http://cdb", headers=headers,
                            timeout=30)  # fmt: skip

    def workers(self) -> list[int]:
        return workers(self.service.process.pid)

    # --- the load --------------------------------------------------------------------------

    def _check(self, answer: httpx.Response, *ok: int) -> None:
        if answer.status_code in ok:
            self.answered += 1
        else:
            self.failures.append(f"{answer.request.url.path} {answer.status_code} "
                                 f"{answer.text[:200]}")  # fmt: skip

    def _reader(self, seed: int, per_second: float) -> None:
        rng = random.Random(seed)
        with self.client("reader") as client:
            etag = ""
            head = 0
            while not self._stop.is_set():
                started = time.monotonic()
                pick = rng.random()
                if pick < 0.8:
                    answer = client.get("/api/v1/resolve", params={
                        "country": "DE", "instrument": "eio", "competence": "execute",
                        "postal_code": rng.choice(POSTAL_CODES)})  # fmt: skip
                    self._check(answer, 200)
                elif pick < 0.9:
                    conditional = {"If-None-Match": etag} if etag and rng.random() < 0.5 else {}
                    answer = client.get("/api/v1/routing-table", headers=conditional)
                    self._check(answer, 200, 304)
                    etag = answer.headers.get("etag", etag)
                else:
                    answer = client.get("/api/v1/changes", params={"since": max(0, head - 3)})
                    self._check(answer, 200)
                    if answer.status_code == 200:
                        head = int(answer.json()["head"])
                time.sleep(max(0.0, 1 / per_second - (time.monotonic() - started)))

    def _extracts(self, every_s: float) -> None:
        with self.client("reader") as client:
            while not self._stop.wait(every_s):
                with client.stream("GET", "/api/v1/extract") as answer:
                    for _ in answer.iter_bytes(1 << 16):
                        pass
                self._check(answer, 200)

    def _writer(self) -> None:
        writes = itertools.count()
        with self.client("admin-de") as client:
            while not self._stop.wait(1.0):
                if not self._writing.is_set():
                    continue
                n = next(writes)
                code = f"DE:SOAK-{n // 2}"
                if n % 2 == 0:
                    answer = client.post("/api/v1/authorities", json=factories.authority(code=code))
                else:
                    answer = client.post("/api/v1/jurisdiction-criteria", json=_criterion(n, code))
                self._check(answer, 201)
                if answer.status_code == 201:
                    self.written += 1

    @contextmanager
    def load(self, per_second: float, readers: int = 4) -> Iterator[None]:
        threads = [threading.Thread(target=self._reader, args=(n, per_second / readers))
                   for n in range(readers)]  # fmt: skip
        threads += [threading.Thread(target=self._extracts, args=(10.0,)),
                    threading.Thread(target=self._writer)]  # fmt: skip
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(timeout=60)

    # --- the measurements --------------------------------------------------------------------

    def phase(self, name: str, seconds: float, writing: bool) -> Phase:
        """Sample every worker's RSS for `seconds`, writing (one entry a second) or not."""
        if writing:
            self._writing.set()
        else:
            self._writing.clear()
        phase = Phase(name, seconds)
        pids = self.workers()
        written, answered = self.written, self.answered
        start = time.monotonic()
        while (now := time.monotonic()) - start < seconds:
            for pid in pids:
                phase.samples.setdefault(pid, []).append((now - start, rss_mib(pid)))
            time.sleep(SAMPLE_S)
        self._writing.clear()
        assert self.workers() == pids, "a worker was replaced during the soak"
        phase.entries, phase.requests = self.written - written, self.answered - answered
        return phase

    def entry_cost(self, entries: int, settle_s: float = 3.0) -> float:
        """Bytes a worker holds per entry: a batch of `entries` (the writes' shapes)
        imported at once, each worker's RSS before and after its index took them."""
        before = {pid: rss_mib(pid) for pid in self.workers()}
        batch = self.service.data_dir / "entry-cost.ndjson"
        with batch.open("w") as out:
            for n in range(entries):
                code = f"DE:COST-{n // 2}"
                kind, doc = (("authorities", factories.authority(code=code)) if n % 2 == 0
                             else ("jurisdiction-criteria", _criterion(n, code)))  # fmt: skip
                out.write(json.dumps({"kind": kind, "document": doc}) + "\n")
        subprocess.run([executable(), "import", str(batch), "--owner", "DE"], env=self.env,
                       check=True, capture_output=True)  # fmt: skip
        time.sleep(settle_s)  # every worker's index follows within a poll (0.2 s)
        growth = [rss_mib(pid) - mib for pid, mib in before.items()]
        return max(0.0, statistics.fmean(growth)) * MIB / entries


def _criterion(n: int, authority_code: str) -> dict[str, Any]:
    codes = [f"{20000 + 3 * n + k:05d}" for k in range(3)]
    geo = [{"scheme": "postal-code", "code": c} for c in codes]
    return factories.criterion(authority_code=authority_code, ref=f"soak-{n}", geo=geo)


@contextmanager
def soaked(root: Path, database_url: str, **variables: str) -> Iterator[Soaked]:
    """`serve --workers 2` (dev profile, proxy mode) on `database_url`, migrated and
    seeded by its supervisor; `variables` go to its environment."""
    data, port, log = root / "var", free_port(), root / "serve.log"
    env = service_env(data, port, CDB_TLS_MODE="proxy", CDB_DATABASE_URL=database_url,
                      CDB_LOG_LEVEL="WARNING", CDB_RATE_LIMITS="false", **variables)  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen([executable(), "serve", "--workers", "2"], env=env,
                                   stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    service = Service(process, port, data, log, "http")
    try:
        wait_ready(service, False)
        yield Soaked(service, DevPki(data / "pki"), data / "cdb.sock", database_url, env)
    finally:
        stop(process)
