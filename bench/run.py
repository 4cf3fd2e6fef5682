"""`make bench`: throughput and memory, as ratios against references measured in the same run.

Resolve: the service runs as production does (PostgreSQL, `prod` profile, proxy
mode with the certificate in the nginx header, an OIDC issuer, several uvicorn
workers); wrk, a separate process, drives `GET /api/v1/resolve` with a client
certificate header and a bound token (so identity and token checks are in the
measured path), and the same app's `/health/live` as the reference. Both at
10,000 and at 1,000,000 geo keys; the resident memory of every worker at each, the
event loop's lag p99 during each shape's resolve runs ("event-loop lag p99 (…, during
the resolve runs)", from the workers' `cdb_event_loop_lag_seconds`) beside that during
its `/health/live` runs (the reference: what the machine and trivial requests give),
and for one worker the resolve runs' own
p99 ÷ p50 ("resolve p99 ÷ p50 (1 worker pinned, 64 connections)", in `rps`, unit ×).
Beside the pinned lag, one resolve run at 4 connections ("event-loop lag p99 (1 worker
pinned, resolve at 4 connections)"): at 4 the loop idles between requests, so what
is left is work that is not one; at 64 the rounds of requests count too.

The workers table, at the largest size: the resolve and its reference with 1, 2 …
every CPU this process may use (`--workers-table`), unpinned as production runs;
each row carries `efficiency`, its rate at w workers ÷ (w × its rate at 1 worker):
the resolve's is the scaling of the service, the reference's what the machine (and
wrk on the same CPUs) allows. The production shape (`--workers`) is one of its rows.

Import: a 50,000-entry national batch through `cdb-service import`, its peak
resident memory beside that of the same command on a one-line batch; then the same
file again (every entry unchanged: the administrator's export, edit, re-import).

Mirror: a real `cdb-service mirror --once` process takes the largest registry's
extract over mutual TLS (from the same database served in direct-TLS mode) into a
fresh SQLite file; its peak resident memory beside that of the same command
mirroring the seed-only registry (the growth is what the extract's size costs).

Gazetteer (`--gazetteer N`, default 800,000): with the service running on the
10,000-key registry, synthetic TERCET files the size of all 27 real ones together
(N postal codes, each state's share and real shapes: Eircode routing keys, Maltese
locality codes, `1724 TE`, `7000-674`, `LV-3281`, `398 15` …) are loaded with
`gazetteer-load`, and criteria at NUTS 3 and LAU level are imported beside the
postal-code ones. Reported: the load, the time from the last load's commit to
every worker answering from it, resolve ÷ reference by postal codes that go
through the gazetteer, p99, and each worker's resident memory.

How the figures are kept still: every ratio pairs a reference run with a target run
taken right after it, `--repeats` times (default 3), alternating, and reports the
median ratio with the lowest and highest in brackets; a neighbour's burst then hits
both sides of a pair alike. Where the machine has two CPUs or more, each size is
measured twice: one worker pinned to one CPU with wrk (one thread) pinned to another,
so that neither steals the other's cycles (the steadiest figure), and the production
shape (`--workers`, unpinned). Every figure also goes to `bench/results.json` (a list
of rows: size, endpoint as printed, rps, p50_ms, p99_ms, ratio, rss_mib, efficiency,
…; `rps` is in the row's `unit`). `--quick`: 10,000 keys, 3 s runs, a 5,000-entry import, no
gazetteer run, unless told otherwise (`make bench BENCH_ARGS=--quick`).

Worker replacement (bench/worker_restart.py): on the seeded registry, one worker at a
time is SIGKILLed; the row "worker killed → ready" is the median time until a new
worker answers a look-up (`--only workers`: this row alone).

Workers of one host (bench/shared_index.py), at the largest size: "PSS per worker" and
"USS per worker" (from /proc/<pid>/smaps_rollup; the lookup snapshot's pages are
shared), "PSS per extra worker" (the PSS of the whole service with `--workers` + 2
workers less that with `--workers`, ÷ 2, in `rps`, unit MiB) and "worker killed →
ready (index)", until a new worker's /health/ready (`--only shared-index`: these rows
alone).

Data paths (bench/data_paths.py, `--only data`): the extract ÷ psql \\copy and the
extract at `revision=R` (ten runs in a row) beside the head on a registry grown by
thousands of revisions, on PostgreSQL; the unchanged re-import; the XLSX round trip.

Absolute numbers depend on this machine and its neighbours; the ratios are the
figures to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import data_paths, shared_index  # noqa: E402
from bench.worker_restart import replacement_times, summary  # noqa: E402
from cdb_service.kernel.codes import POSTAL_CODE_SHAPES  # noqa: E402
from cdb_service.kernel.owners import DEFAULT as OWNERS  # noqa: E402
from cdb_service.security.pki import Issued, issue, make_ca  # noqa: E402
from cdb_service.security.signing_keys import SigningKeys  # noqa: E402
from cdb_service.security.x509 import certificate_facts  # noqa: E402
from cdb_service.seeding.load import nth_postal_code  # noqa: E402
from tests.support.issuer import Issuer  # noqa: E402

PG = os.environ.get("CDB_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
EXE = str(Path(sys.executable).with_name("cdb-service"))


def eio_states() -> list[str]:
    """The states whose look-ups are measured: those that take part in the EIO (the
    instrument every measured look-up names). Another state's answer would be the short
    "does not take part" (IE, DK), not a look-up, and `import` refuses its criteria."""
    return [cc for cc in sorted(POSTAL_CODE_SHAPES) if OWNERS.takes_part(cc, "eio")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sh(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command; a failure stops the bench with what the command said."""
    done = subprocess.run(args, env=env, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        said = (done.stderr or done.stdout or "")[-2000:]
        raise SystemExit(f"{' '.join(args[:3])} … exited {done.returncode}:\n{said}")
    return done  # type: ignore[no-any-return]


def admin(sql: str) -> None:
    subprocess.run(["psql", PG, "-q", "-c", sql], check=True, capture_output=True)


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    found = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise SystemExit(f"cannot read wrk's latency {text!r}")
    value, unit = found.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(url: str, script: Path, connections: int, seconds: int, cpu: int | None = None) -> Load:
    """One wrk run; `cpu`: pinned to that CPU with one thread (the service has the other)."""
    command = ["wrk", f"-t{1 if cpu is not None else 2}", f"-c{connections}", f"-d{seconds}s",
               "--latency", "-s", str(script), url]  # fmt: skip
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    out = subprocess.run(command, check=True, text=True, capture_output=True).stdout
    if "Requests/sec" not in out:
        raise SystemExit(f"wrk said:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Load(rps, p50, p99, errors)


@dataclass
class Row:
    """One figure of the report: a line of the table and an object of bench/results.json."""

    size: str
    endpoint: str
    rps: float | None = None  # requests/s, or the unit in `unit` (rows/s, entries/s …)
    p50_ms: float | None = None
    p99_ms: float | None = None
    ratio: float | None = None  # the median of the paired ratios
    rss_mib: list[float] = field(default_factory=list)
    ratio_spread: tuple[float, float] | None = None  # lowest and highest paired ratio
    runs: int = 1
    errors: int = 0
    unit: str = "req/s"
    note: str = ""
    # The workers table: rps at w workers ÷ (w × rps at 1 worker, unpinned).
    efficiency: float | None = None

    def cells(self) -> list[str]:
        rate = ""
        if self.rps is not None:
            rate = f"{self.rps:,.1f}" if self.rps < 100 else f"{self.rps:,.0f}"
            rate += "" if self.unit == "req/s" else f" {self.unit}"
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        if self.ratio_spread is not None:
            ratio += f" ({self.ratio_spread[0]:.2f}–{self.ratio_spread[1]:.2f}, n={self.runs})"
        rss = " / ".join(f"{r:.0f}" for r in self.rss_mib)
        return [
            self.size,
            self.endpoint,
            rate,
            "" if self.p50_ms is None else f"{self.p50_ms:.1f}",
            "" if self.p99_ms is None else f"{self.p99_ms:.1f}",
            ratio,
            "" if self.efficiency is None else f"{self.efficiency:.2f}",
            str(self.errors),
            "; ".join(x for x in (rss, self.note) if x),
        ]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


@dataclass
class Paired:
    """Reference and target measured in turn, `repeats` times: medians, and the spread
    of the ratios (each target run over the reference run just before it)."""

    reference: list[Load]
    target: list[Load]
    # The workers' event-loop lag samples taken during each side's runs, by bucket.
    reference_lag: dict[float, float] = field(default_factory=dict)
    target_lag: dict[float, float] = field(default_factory=dict)

    @property
    def ratios(self) -> list[float]:
        return [t.rps / r.rps for r, t in zip(self.reference, self.target, strict=True) if r.rps]

    def rows(self, size: str, ref_name: str, name: str, rss: list[float]) -> list[Row]:
        out = []
        for label, loads, ratios in ((ref_name, self.reference, None), (name, self.target,
                                                                         self.ratios)):  # fmt: skip
            out.append(
                Row(
                    size,
                    label,
                    rps=median([x.rps for x in loads]),
                    p50_ms=median([x.p50_ms for x in loads]),
                    p99_ms=median([x.p99_ms for x in loads]),
                    ratio=median(ratios) if ratios else 1.0,
                    ratio_spread=(min(ratios), max(ratios)) if ratios else None,
                    runs=len(loads),
                    errors=sum(x.errors for x in loads),
                    rss_mib=rss if ratios else [],
                )
            )
        return out


def warm_up(url: str, target: Path, args: argparse.Namespace, cpu: int | None) -> None:
    """One unmeasured run: each answer's first computation at this revision (then cached
    per revision: a RIS asks the same questions all day), connections, caches."""
    wrk(url, target, args.connections, 2, cpu)


def paired(url: str, reference: Path, target: Path, args: argparse.Namespace,
           cpu: int | None, warm: bool = True) -> Paired:  # fmt: skip
    """Alternate reference and target runs, so that a neighbour's burst hits both alike
    (after a `warm_up` unless the caller has run it)."""
    if warm:
        warm_up(url, target, args, cpu)
    out = Paired([], [])
    for _ in range(args.repeats):
        for script, loads, lag in ((reference, out.reference, out.reference_lag),
                                   (target, out.target, out.target_lag)):  # fmt: skip
            before = shared_index.lag_buckets(url)
            loads.append(wrk(url, script, args.connections, args.seconds, cpu))
            for bound, count in shared_index.lag_since(url, before).items():
                lag[bound] = lag.get(bound, 0.0) + count
    return out


def cpu_plan() -> tuple[int, int] | None:
    """(the service's CPU, wrk's CPU) when this process may use two or more; else None."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


def lua(paths: list[str], headers: dict[str, str], path: Path) -> Path:
    quoted = ",\n".join(json.dumps(p) for p in paths)
    header_lines = "\n".join(
        f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()
    )
    path.write_text(f"""
{header_lines}
local paths = {{
{quoted}
}}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
""")
    return path


def worker_rss_mib(parent: int) -> list[float]:
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except OSError:
        return []
    if not children:  # one worker: uvicorn serves in the process itself
        children = [str(parent)]
    out = []
    for pid in children:
        if b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes():
            continue
        status = Path(f"/proc/{pid}/status").read_text()
        kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        out.append(kib / 1024)
    return out


def _profile(service: Service, seconds: int) -> subprocess.Popen[bytes] | None:
    target = os.environ.get("CDB_BENCH_PROFILE")
    if not target:
        return None
    pid = service.process.pid
    workers = Path(f"/proc/{pid}/task/{pid}/children").read_text().split() or [str(pid)]
    command = ["py-spy", "record", "-o", target, "-f", "raw", "-d", str(seconds), "-p", workers[-1]]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def resolve_paths(keys: int, count: int = 2000) -> list[str]:
    """Known-good queries: postal codes of the generated data, spread over the states."""
    rng = random.Random(7)
    countries = eio_states()
    per_country = max(1, keys // len(countries))
    paths = []
    for _ in range(count):
        cc = rng.choice(countries)
        code = nth_postal_code(POSTAL_CODE_SHAPES[cc], rng.randrange(min(per_country, 9000)))
        paths.append(
            f"/api/v1/resolve?country={cc}&instrument=eio&competence=execute"
            f"&postal_code={quote(code or '')}"
        )
    return paths


class Service:
    def __init__(
        self,
        env: dict[str, str],
        workers: int,
        log: Path,
        ca: Path | None = None,
        cpu: int | None = None,
    ) -> None:
        """`ca`: the service terminates TLS itself (direct mode), trusted with this CA;
        `cpu`: the service (all its workers) runs on that CPU only."""
        self.port = int(env["CDB_PORT"])
        self.scheme = "https" if ca else "http"
        verify: str | bool = str(ca) if ca else True
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        self.process = subprocess.Popen(
            [*pin, EXE, "serve", "--workers", str(workers)],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the service exited:\n{log.read_text()[-3000:]}")
            try:
                ready = httpx.get(f"{self.url}/health/ready", timeout=2, verify=verify)
                if ready.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise SystemExit("the service did not become ready")

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def measured_env(tmp: Path, database_url: str, issuer_url: str) -> dict[str, str]:
    """The service as production runs it, behind a trusted proxy that passes the client
    certificate in a header, with tokens from `issuer_url` (shared with hot_paths.py)."""
    return {
        "CDB_PROFILE": "prod",
        "CDB_DATABASE_URL": database_url,
        "CDB_TLS_MODE": "proxy",
        "CDB_DATA_DIR": str(tmp),
        "CDB_CLIENT_CA_FILES": json.dumps([str(tmp / "ca.pem")]),
        "CDB_OIDC_ISSUER": issuer_url,
        "CDB_OIDC_CA_FILE": str(tmp / "ca.pem"),
        "CDB_AUTO_MIGRATE": "false",
        "CDB_AUTO_SEED": "false",
        "CDB_LOG_LEVEL": "WARNING",
        # One client certificate drives the whole load: measure the framework, not the
        # per-client rate limit (production refuses to switch the limits off; this one
        # is never reached).
        "CDB_RATE_LIMIT_PER_CLIENT": "1000000000",
        "CDB_RATE_LIMIT_BURST": "1000000000",
        "CDB_PUBLIC_URL": "https://127.0.0.1",
        "CDB_TRUSTED_PROXIES": '["127.0.0.1/32"]',
        "CDB_SIGNING_KEYS_FILE": str(tmp / "signing-keys.json"),
    }


@dataclass
class Shape:
    """How the service runs for one resolve/reference pair."""

    workers: int
    name: str
    service_cpu: int | None = None  # pinned: the service on this CPU, wrk on `wrk_cpu`
    wrk_cpu: int | None = None

    @property
    def pinned(self) -> bool:
        return self.service_cpu is not None


def shapes(args: argparse.Namespace, last: bool) -> list[Shape]:
    """The pinned figure first: one worker on one CPU, wrk on the other, so that neither
    steals the other's cycles (the steadiest ratio); then the production shape
    (`--workers`, every worker and wrk sharing every CPU) and, at the largest size, the
    workers table (`--workers-table`, unpinned too; the production shape is one of its
    rows when its count is in it)."""
    plan = cpu_plan()
    out = []
    if plan is not None and not args.no_pin:
        out.append(Shape(1, "1 worker pinned", plan[0], plan[1]))
    counts = {args.workers} | (set(args.workers_table) if last else set())
    out += [Shape(n, f"{n} worker{'s' if n > 1 else ''}") for n in sorted(counts)]
    return out


def scaling(by_workers: dict[int, list[Row]]) -> None:
    """Each unpinned row's scaling efficiency: its rate at w workers ÷ (w × its rate at
    one worker); the reference's beside the resolve's says what the machine allows."""
    if 1 not in by_workers or len(by_workers) < 2:
        return
    for workers, pair in by_workers.items():
        for row, single in zip(pair, by_workers[1], strict=True):
            if row.rps is not None and single.rps:
                row.efficiency = round(row.rps / (workers * single.rps), 3)


def tail_row(size: str, shape: str, loads: list[Load], args: argparse.Namespace) -> Row:
    """The resolve runs' own p99 ÷ p50 (median over the runs): how much longer the
    slowest answers wait than the typical one under `--connections` at once."""
    ratios = [x.p99_ms / x.p50_ms for x in loads if x.p50_ms]
    return Row(
        size,
        f"resolve p99 ÷ p50 ({shape}, {args.connections} connections)",
        rps=round(median(ratios), 2) if ratios else None,
        unit="×",
        p50_ms=median([x.p50_ms for x in loads]),
        p99_ms=median([x.p99_ms for x in loads]),
        runs=len(ratios),
        note=(f"median of each resolve run's p99 ÷ its p50; {min(ratios):.2f}–"
              f"{max(ratios):.2f}" if ratios else "no run with a p50"),
    )  # fmt: skip


def workers_table(text: str) -> list[int]:
    """`--workers-table`: worker counts ("1,2,4"), always with 1 (the efficiency's
    base); "0": no table."""
    counts = {int(x) for x in text.split(",") if x.strip()}
    return [] if counts <= {0} else sorted(counts - {0} | {1})


def bench_resolve(args: argparse.Namespace, tmp: Path, rows: list[Row]) -> None:
    ca = make_ca("bench CA")
    server = issue(ca, "127.0.0.1", ip_addresses=("127.0.0.1",), server=True)
    client = issue(ca, "bench-reader", client=True)
    for name, text in (("ca.pem", ca.cert_pem), ("server.pem", server.cert_pem),
                       ("server-key.pem", server.key_pem), ("client.pem", client.cert_pem),
                       ("client-key.pem", client.key_pem)):  # fmt: skip
        (tmp / name).write_text(text)
    database = f"cdb_bench_{os.getpid()}"
    admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{database}"')
    db_url = PG.rsplit("/", 1)[0] + f"/{database}"
    issuer = Issuer(tmp / "server.pem", tmp / "server-key.pem").start()
    try:
        env = (
            os.environ
            | measured_env(tmp, db_url, issuer.url)
            | {
                "CDB_HOST": "127.0.0.1",
                "CDB_PORT": str(free_port()),
            }
        )
        SigningKeys.load(tmp / "signing-keys.json", create=True)  # provisioned, as in production
        sh([EXE, "migrate"], env)
        token = issuer.token(
            "bench-reader",
            "cdb.read",
            thumbprint=certificate_facts(client.certificate).x5t_s256,
            lifetime_s=7200,  # the real-scale gazetteer run outlasts the default 10 minutes
        )
        headers = {
            "X-SSL-Client-Cert": quote(client.cert_pem, safe=""),
            "Authorization": f"Bearer {token}",
        }
        mirror = args.only in (None, "mirror")
        sh([EXE, "seed"], env | {"CDB_AUTO_SEED": "true"})
        if args.only in (None, "resolve", "workers"):
            rows.append(bench_worker_restart(env, tmp, headers, args))
            if args.only == "workers":
                return
        if mirror:  # the reference: the same command mirroring the seed data alone
            baseline = bench_mirror(env, tmp, issuer, client, "seed data")
        for keys in args.sizes:
            started = time.monotonic()
            sh([EXE, "seed", "--scale", str(keys)], env | {"CDB_AUTO_SEED": "true"})
            print(
                f"  loaded {keys:,} geo keys in {time.monotonic() - started:.0f} s", file=sys.stderr
            )
            # The host's lookup snapshot is of the size before, minutes old and up to a
            # million keys behind: a service started on it would serve from a large
            # overlay while it renews the snapshot (lookup/follower.py), not the steady
            # state these rows measure. Its first start builds one, as a fresh host does;
            # a restart is measured by "worker killed → ready".
            (tmp / "run" / "lookup-index.snap").unlink(missing_ok=True)
            if mirror and keys == max(args.sizes):
                big = bench_mirror(env, tmp, issuer, client, f"{keys:,} keys")
                rows.append(mirror_row(f"{keys:,}", big, baseline))
            if args.only == "mirror":
                continue
            if args.only in (None, "shared-index") and keys == max(args.sizes):
                measured = shared_index.measure(db_url, tmp / f"shared-{keys}", args.workers,
                                                max(3, args.repeats), env)  # fmt: skip
                rows += [Row(**row) for row in shared_index.rows(measured, f"{keys:,}",
                                                                 args.workers)]  # fmt: skip
            if args.only == "shared-index":
                continue
            paths = resolve_paths(keys)
            resolve_script = lua(paths, headers, tmp / "resolve.lua")
            live_script = lua(["/health/live"], headers, tmp / "live.lua")
            last = keys == max(args.sizes)
            by_workers: dict[int, list[Row]] = {}  # unpinned: [reference, resolve]
            for shape in shapes(args, last):
                slug = f"{shape.workers}{'-pinned' if shape.pinned else ''}"
                service = Service(env, shape.workers, tmp / f"serve-{keys}-{slug}.log",
                                  cpu=shape.service_cpu)  # fmt: skip
                try:
                    check = httpx.get(service.url + paths[0], headers=headers, timeout=10)
                    assert check.status_code == 200 and check.json()["matches"], check.text[:300]
                    # CDB_BENCH_PROFILE=FILE: a py-spy profile of one worker (first resolve run).
                    profiler = _profile(service, args.seconds)
                    warm_up(service.url, resolve_script, args, shape.wrk_cpu)
                    runs = paired(service.url, live_script, resolve_script, args, shape.wrk_cpu,
                                  warm=False)  # fmt: skip
                    if profiler is not None:
                        profiler.wait()
                    rss = worker_rss_mib(service.process.pid)
                    pair = runs.rows(f"{keys:,}", f"/health/live (reference, {shape.name})",
                                     f"/api/v1/resolve ({shape.name})", rss)  # fmt: skip
                    rows += pair
                    if not shape.pinned:
                        by_workers[shape.workers] = pair
                    if shape.workers == 1:
                        rows.append(tail_row(f"{keys:,}", shape.name, runs.target, args))
                    rows += lag_rows(runs, f"{keys:,}", shape.name)
                    if shape.pinned:
                        rows.append(light_lag_row(service.url, resolve_script, args,
                                                  f"{keys:,}", shape))  # fmt: skip
                    production = not shape.pinned and shape.workers == args.workers
                    if last and (shape.pinned or production):
                        bench_table(service, headers, live_script, tmp, args, rows,
                                    f"{keys:,}", shape.name, shape.wrk_cpu)  # fmt: skip
                    if production:
                        if args.gazetteer and keys == min(args.sizes):
                            bench_gazetteer(service, env, headers, tmp, args, rows, f"{keys:,}")
                        if last:
                            bench_extract(service, headers, tmp, args, db_url, rows, f"{keys:,}")
                finally:
                    service.stop()
            if last:
                scaling(by_workers)
    finally:
        issuer.stop()
        admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def lag_rows(runs: Paired, size: str, shape: str) -> list[Row]:
    """The workers' event-loop lag p99 during the resolve runs (the goal's figure) and,
    as its reference, during the `/health/live` runs of the same pairs: the lag that the
    machine (CPUs shared with wrk and the other workers) and the serving of trivial
    requests give, which no work of the resolve's can remove. `ratio`: resolve ÷ reference."""
    reference = shared_index.lag_row(runs.reference_lag, size, f"event-loop lag p99 ({shape}, "
                                     "during the /health/live runs, reference)")  # fmt: skip
    target = shared_index.lag_row(
        runs.target_lag, size, f"event-loop lag p99 ({shape}, during the resolve runs)"
    )
    if reference["p99_ms"] and target["p99_ms"] is not None:
        target["ratio"] = target["p99_ms"] / reference["p99_ms"]
    return [Row(**reference), Row(**target)]


# At this many connections the loop idles between requests: its lag is work that is
# not a request, told apart from the rounds of requests at 64 (web/loop_rounds.py).
LIGHT_CONNECTIONS = 4


def light_lag_row(url: str, script: Path, args: argparse.Namespace, size: str,
                  shape: Shape) -> Row:  # fmt: skip
    """Beside the goal's figure, not instead of it: the event-loop lag p99 of one resolve
    run at `LIGHT_CONNECTIONS` connections."""
    before = shared_index.lag_buckets(url)
    load = wrk(url, script, LIGHT_CONNECTIONS, args.seconds, shape.wrk_cpu)
    row = shared_index.lag_row(shared_index.lag_since(url, before), size,
                               f"event-loop lag p99 ({shape.name}, resolve at "
                               f"{LIGHT_CONNECTIONS} connections)")  # fmt: skip
    row["note"] += (
        f"; {load.rps:,.0f} resolves/s, p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms"
    )
    return Row(**row)


def bench_worker_restart(env: dict[str, str], tmp: Path, headers: dict[str, str],
                         args: argparse.Namespace) -> Row:  # fmt: skip
    """A worker SIGKILLed at the seed's size: seconds until a new one answers look-ups."""
    log = tmp / "serve-kill.log"
    service = Service(env | {"CDB_LOG_LEVEL": "INFO"}, args.workers, log)
    try:
        path = "/api/v1/resolve?country=DE&instrument=eio&competence=execute&postal_code=10115"
        seconds, failed = replacement_times(service.process.pid, service.url, path, headers,
                                            log, max(3, args.repeats))  # fmt: skip
    finally:
        service.stop()
    return Row("seed", f"worker killed → ready ({args.workers} workers)",
               rps=median(seconds), unit="s", runs=len(seconds), errors=failed,
               note=summary(seconds))  # fmt: skip


# Postal codes per state in Eurostat's files (pc2024, rounded; NL and PT list full codes).
GAZETTEER_SHARE = {
    "NL": 330_000, "PT": 170_000, "RO": 42_000, "PL": 22_000, "LT": 20_000, "ES": 11_000,
    "SE": 10_500, "DE": 8_200, "FR": 6_300, "IT": 4_600, "LU": 4_200, "EE": 4_000,
    "SK": 3_400, "HU": 3_100, "FI": 3_100, "BG": 3_000, "CZ": 2_700, "AT": 2_500,
    "CY": 1_500, "EL": 1_300, "BE": 1_200, "DK": 1_100, "HR": 1_100, "LV": 1_000,
    "SI": 500, "IE": 139, "MT": 70,
}  # fmt: skip
# How TERCET writes a canonical code of each shape (what `gazetteer-load` must read).
_TERCET_FORM = {
    "NL": lambda c: f"{c[:4]} {c[4:]}", "LV": lambda c: f"LV-{c}",
    "CZ": lambda c: f"{c[:3]} {c[3:]}", "SK": lambda c: f"{c[:3]} {c[3:]}",
    "SE": lambda c: f"{c[:3]} {c[3:]}",
}  # fmt: skip
_UNIT_SHAPE = {"IE": "A99", "MT": "AAA"}  # routing keys, locality codes
PER_LAU = 40  # postal codes per synthetic municipality
PER_NUTS3 = 25  # municipalities per synthetic NUTS 3 region


def gazetteer_files(total: int, tmp: Path) -> dict[str, tuple[Path, int, list[str]]]:
    """One TERCET file per state (`NUTS3;CODE;LAU;LAU_NAME`, values in single quotes):
    {country: (file, rows, a few of its postal codes)}."""
    scale = total / sum(GAZETTEER_SHARE.values())
    out = {}
    for cc, share in GAZETTEER_SHARE.items():
        shape = _UNIT_SHAPE.get(cc, POSTAL_CODE_SHAPES[cc])
        form = _TERCET_FORM.get(cc, lambda c: c)
        count = max(1, round(share * scale))
        path = tmp / f"pc2024_{cc}_NUTS-2024_v1.0.csv"
        sample: list[str] = []
        rows = 0
        with path.open("w") as out_file:
            out_file.write("NUTS3;CODE;LAU;LAU_NAME\n")
            for n in range(count):
                code = nth_postal_code(shape, n)
                if code is None:
                    break
                lau = n // PER_LAU
                nuts3 = f"{cc}{lau // PER_NUTS3 % 1000:03d}"
                out_file.write(f"'{nuts3}';'{form(code)}';'B{lau:07d}';'Place {lau}'\n")
                rows += 1
                if n % max(1, count // 50) == 0:
                    sample.append(code)
        out[cc] = (path, rows, sample)
    return out


def criteria_batch(cc: str, rows: int, path: Path) -> Path:
    """Criteria at NUTS 3 (every region) and LAU level (every fourth municipality)."""
    laus = (rows + PER_LAU - 1) // PER_LAU
    lines = []
    for code, kind in ((f"{cc}:BENCH-NUTS", "court"), (f"{cc}:BENCH-LAU", "court")):
        doc = {
            "owner": cc,
            "code": code,
            "kind": kind,
            "names": {"en": code},
            "contacts": [{"channel": "email", "value": "bench@example.eu"}],
            "languages": ["en"],
        }
        lines.append({"kind": "authorities", "document": doc})
    regions = sorted({f"{cc}{lau // PER_NUTS3 % 1000:03d}" for lau in range(laus)})
    for start in range(0, len(regions), 500):
        lines.append(
            {
                "kind": "jurisdiction-criteria",
                "document": {
                    "owner": cc,
                    "ref": f"{cc}-BENCH-NUTS-{start}",
                    "authority_code": f"{cc}:BENCH-NUTS",
                    "instrument": "eio",
                    "competence": "execute",
                    "priority": 700,
                    "geo": [{"scheme": "nuts3", "code": r} for r in regions[start : start + 500]],
                },
            }
        )
    chosen = [f"B{lau:07d}" for lau in range(0, laus, 4)]
    for start in range(0, len(chosen), 2000):
        lines.append(
            {
                "kind": "jurisdiction-criteria",
                "document": {
                    "owner": cc,
                    "ref": f"{cc}-BENCH-LAU-{start}",
                    "authority_code": f"{cc}:BENCH-LAU",
                    "instrument": "eio",
                    "competence": "execute",
                    "priority": 600,
                    "geo": [{"scheme": "lau", "code": c} for c in chosen[start : start + 2000]],
                },
            }
        )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def bench_gazetteer(
    service: Service,
    env: dict[str, str],
    headers: dict[str, str],
    tmp: Path,
    args: argparse.Namespace,
    rows: list[Row],
    size: str,
) -> None:
    files = gazetteer_files(args.gazetteer, tmp)
    total = sum(r for _, r, _ in files.values())
    taking_part = set(eio_states())
    for cc, (_, count, _) in files.items():
        if cc not in taking_part:
            continue  # its places load all the same; no criterion of it may name the EIO
        sh(
            [
                EXE,
                "import",
                str(criteria_batch(cc, count, tmp / f"criteria-{cc}.ndjson")),
                "--owner",
                cc,
            ],
            env,
        )
    started = time.monotonic()
    largest = max(taking_part & files.keys(), key=lambda cc: files[cc][1])
    load_peak = 0.0
    for cc, (path, _, _) in sorted(files.items(), key=lambda item: item[0] == largest):
        run = peak_rss([EXE, "gazetteer-load", str(path), "--country", cc], env)
        load_peak = max(load_peak, run.peak_mib)
    loaded_s = time.monotonic() - started
    committed = time.monotonic()
    # From the last load's commit to every worker answering from it (by a code that
    # only the gazetteer takes to its LAU): 40 answers in a row, spread over the workers.
    probe = files[largest][2][-1]
    url = (
        f"{service.url}/api/v1/resolve?country={largest}&instrument=eio"
        f"&competence=execute&postal_code={quote(probe)}"
    )
    streak = 0
    with httpx.Client(headers=headers, timeout=10) as http:
        while streak < 40:
            answer = http.get(url)
            if answer.status_code != 200:
                raise SystemExit(f"resolve answered {answer.status_code}: {answer.text[:300]}")
            body = answer.json()
            uses = any(m["matched_by"]["scheme"] in ("lau", "nuts3") for m in body["matches"])
            streak = streak + 1 if uses else 0
            if time.monotonic() - committed > 120:
                raise SystemExit(f"the gazetteer load was not followed within 120 s: {body}")
    followed_s = time.monotonic() - committed
    rng = random.Random(11)
    samples = [(cc, code) for cc, (_, _, codes) in files.items() if cc in taking_part
               for code in codes]  # fmt: skip
    paths = [
        f"/api/v1/resolve?country={cc}&instrument=eio&competence=execute&postal_code={quote(code)}"
        for cc, code in rng.sample(samples, len(samples))
    ]
    script = lua(paths, headers, tmp / "gazetteer.lua")
    live_script = lua(["/health/live"], headers, tmp / "live.lua")
    runs = paired(service.url, live_script, script, args, None)
    rss = worker_rss_mib(service.process.pid)
    label = f"{size} + gazetteer {total:,}"
    rows.append(Row(label, "gazetteer-load ×27", rps=total / loaded_s, unit="rows/s",
                    note=f"peak {load_peak:.0f} MiB (one CLI process)"))  # fmt: skip
    rows.append(Row(label, "load → every worker answers", rps=followed_s, unit="s"))
    rows += runs.rows(label, f"/health/live (reference, {args.workers} workers)",
                      "/api/v1/resolve via gazetteer", rss)  # fmt: skip


ENTRY_TABLES = (
    "routing_parties",
    "authorities",
    "national_correspondents",
    "national_members",
    "jurisdiction_criteria",
    "maintenance_windows",
)


def bench_table(
    service: Service,
    headers: dict[str, str],
    live_script: Path,
    tmp: Path,
    args: argparse.Namespace,
    rows: list[Row],
    size: str,
    shape: str,
    cpu: int | None,
) -> None:
    """Routing-table 304s against /health/live, paired as resolve is."""
    first = httpx.get(f"{service.url}/api/v1/routing-table", headers=headers, timeout=60)
    assert first.status_code == 200, first.text[:300]
    script = lua(
        ["/api/v1/routing-table"],
        headers | {"If-None-Match": first.headers["etag"]},
        tmp / "table.lua",
    )
    runs = paired(service.url, live_script, script, args, cpu)
    rows += runs.rows(size, f"/health/live (reference, {shape})",
                      f"/api/v1/routing-table 304 ({shape})", [])[1:]  # fmt: skip


def bench_extract(
    service: Service,
    headers: dict[str, str],
    tmp: Path,
    args: argparse.Namespace,
    db_url: str,
    rows: list[Row],
    size: str,
) -> None:
    """The extract against psql \\copy of the same tables, in bytes/s and rows/s, paired;
    and how much a worker's memory grows while it streams."""
    before = worker_rss_mib(service.process.pid)
    peak = list(before)
    sampling = True

    def sample() -> None:
        while sampling:
            for i, value in enumerate(worker_rss_mib(service.process.pid)[: len(peak)]):
                peak[i] = max(peak[i], value)
            time.sleep(0.02)

    import threading

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    ours: list[tuple[float, float]] = []  # (rows/s, bytes/s)
    theirs: list[tuple[float, float]] = []
    entries = 0
    for _ in range(args.repeats):
        started = time.monotonic()
        copied = size_copied = 0
        for name in ENTRY_TABLES:
            out = subprocess.run(
                ["psql", db_url, "-c", f"\\copy (SELECT * FROM {name} ORDER BY id) TO STDOUT"],
                check=True,
                capture_output=True,
            )
            copied += out.stdout.count(b"\n")
            size_copied += len(out.stdout)
        copy_s = time.monotonic() - started
        theirs.append((copied / copy_s, size_copied / copy_s))
        started = time.monotonic()
        entries = streamed = 0
        with httpx.stream(
            "GET", f"{service.url}/api/v1/extract", headers=headers, timeout=600
        ) as reply:
            assert reply.status_code == 200
            for chunk in reply.iter_bytes(1 << 16):
                streamed += len(chunk)
                entries += chunk.count(b'{"type":"entry"')
        extract_s = time.monotonic() - started
        ours.append((entries / extract_s, streamed / extract_s))
    sampling = False
    sampler.join()
    growth = max(p - b for p, b in zip(peak, before, strict=True)) if before else 0.0
    for unit, i in (("rows/s", 0), ("MB/s", 1)):
        scale = 1e-6 if i else 1.0
        ratios = [o[i] / t[i] for o, t in zip(ours, theirs, strict=True)]
        rows.append(Row(size, f"psql \\copy (reference, {unit})",
                        rps=median([t[i] for t in theirs]) * scale, ratio=1.0,
                        runs=len(theirs), unit=unit))  # fmt: skip
        rows.append(
            Row(
                size,
                f"/api/v1/extract ({unit})",
                rps=median([o[i] for o in ours]) * scale,
                ratio=median(ratios),
                ratio_spread=(min(ratios), max(ratios)),
                runs=len(ours),
                unit=unit,
                note=f"growth {growth:.0f} MiB while streaming {entries:,} entries",
            )
        )


@dataclass
class Run:
    peak_mib: float
    seconds: float
    entries: int = 0
    geo_keys: int = 0


def peak_rss(command: list[str], env: dict[str, str]) -> Run:
    """Peak RSS (MiB) and seconds of one command, measured by a fresh parent process."""
    probe = (
        "import resource, subprocess, sys, time; t = time.monotonic(); "
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stderr.write(done.stderr[-3000:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.monotonic() - t, "
        "done.returncode)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *command], env=env, check=True,
                         capture_output=True, text=True)  # fmt: skip
    kib, seconds, code = out.stdout.split()
    if code != "0":
        raise SystemExit(f"{' '.join(command[:2])} failed ({code}):\n{out.stderr}")
    return Run(int(kib) / 1024, float(seconds))


def bench_mirror(env: dict[str, str], tmp: Path, issuer: Issuer, client: Issued, label: str) -> Run:
    """`cdb-service mirror --once` into a fresh SQLite file, over mTLS with a bound token.

    The bench database is served a second time, in direct-TLS mode (one worker), so
    that the mirror presents its certificate in the handshake as it does in production.
    """
    direct = env | {
        "CDB_TLS_MODE": "direct",
        "CDB_TLS_CERT_FILE": str(tmp / "server.pem"),
        "CDB_TLS_KEY_FILE": str(tmp / "server-key.pem"),
        "CDB_PORT": str(free_port()),
    }
    slug = re.sub(r"\W+", "-", label)
    service = Service(direct, 1, tmp / f"serve-direct-{slug}.log", ca=tmp / "ca.pem")
    database = tmp / f"mirror-{slug}.sqlite3"
    try:
        thumbprint = certificate_facts(client.certificate).x5t_s256
        token = tmp / "mirror-token"
        token.write_text(issuer.token("bench-mirror", "cdb.read", thumbprint=thumbprint,
                                      lifetime_s=3600))  # fmt: skip
        command = [
            EXE, "mirror", "--from", service.url, "--into", f"sqlite:///{database}",
            "--ca", str(tmp / "ca.pem"), "--cert", str(tmp / "client.pem"),
            "--key", str(tmp / "client-key.pem"), "--token-file", str(token), "--once",
        ]  # fmt: skip
        quiet = {k: v for k, v in os.environ.items() if not k.startswith("CDB_")}
        run = peak_rss(command, quiet | {"CDB_LOG_LEVEL": "WARNING"})
    finally:
        service.stop()
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(database)) as db:
        run.entries = int(db.execute("SELECT count(*) FROM entry_versions").fetchone()[0])
        run.geo_keys = int(db.execute("SELECT count(*) FROM criterion_geo_keys").fetchone()[0])
    database.unlink()
    print(f"  mirrored {label}: {run.entries:,} entries ({run.geo_keys:,} geo keys) in "
          f"{run.seconds:.0f} s, peak {run.peak_mib:.0f} MiB", file=sys.stderr)  # fmt: skip
    return run


def mirror_row(size: str, big: Run, baseline: Run) -> Row:
    growth = big.peak_mib - baseline.peak_mib
    return Row(
        size,
        "mirror --once (extract into SQLite)",
        rps=big.entries / big.seconds,
        unit="entries/s",
        rss_mib=[big.peak_mib],
        note=f"peak (seed data only: {baseline.peak_mib:.0f}), growth {growth:.0f} MiB; "
        f"{big.geo_keys:,} geo keys in {big.seconds:.0f} s",
    )


def bench_import(tmp: Path, rows: list[Row], entries: int) -> None:
    env = os.environ | {
        "CDB_DATA_DIR": str(tmp / "import"),
        "CDB_LOG_LEVEL": "WARNING",
        "CDB_DATABASE_URL": "",
    }
    sh([EXE, "migrate"], env)
    from tests.support import factories

    big, small = tmp / "batch.ndjson", tmp / "one.ndjson"
    with big.open("w") as out:
        for n in range(entries):
            doc = factories.authority(code=f"DE:B{n:06d}")
            out.write(json.dumps({"kind": "authorities", "document": doc}) + "\n")
    small.write_text(
        json.dumps({"kind": "authorities", "document": factories.authority(code="DE:ONE")}) + "\n"
    )

    def peak(path: Path) -> tuple[float, float]:
        run = peak_rss([EXE, "import", str(path), "--owner", "DE"], env)
        return run.peak_mib, run.seconds

    baseline, _ = peak(small)
    for label in ("import (SQLite, one revision)", "re-import, every entry unchanged"):
        heavy, seconds = peak(big)
        rows.append(
            Row(
                f"{entries:,}",
                label,
                rps=entries / seconds,
                unit="entries/s",
                ratio=heavy / baseline,
                rss_mib=[heavy],
                note=f"{seconds:.1f} s; peak (1 line: {baseline:.0f} MiB); "
                "ratio = peak ÷ 1-line peak",
            )
        )


def table(rows: list[Row]) -> str:
    head = ["keys", "endpoint", "rate", "p50 ms", "p99 ms", "ratio (spread, runs)", "scaling",
            "errors", "RSS MiB per worker"]  # fmt: skip
    cells = [r.cells() for r in rows]
    widths = [max(len(str(r[i])) for r in [head, *cells]) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


RESULTS = ROOT / "bench" / "results.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        help="geo keys of each registry (default 10000,1000000; --quick: 10000)",
    )
    parser.add_argument("--seconds", type=int, help="per wrk run (default 10; --quick: 3)")
    parser.add_argument(
        "--repeats", type=int, help="reference/target pairs per figure (default 3, at least 1)"
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2,
                        help="workers of the production shape (default 2)")  # fmt: skip
    parser.add_argument(
        "--workers-table",
        type=workers_table,
        help="worker counts of the scaling table at the largest size, unpinned, e.g. 1,2,4 "
        "(default 1 … the CPUs this process may use; 0: no table)",
    )
    parser.add_argument(
        "--import-entries",
        type=int,
        help="entries of the import batch (default 50000; --quick: 5000)",
    )
    parser.add_argument(
        "--gazetteer",
        type=int,
        help="postal codes of the real-scale gazetteer run (default 800000; --quick: 0, skip)",
    )
    parser.add_argument(
        "--only",
        choices=("resolve", "import", "mirror", "workers", "shared-index", "data"),
        help="resolve: resolve ÷ reference per shape (1 worker pinned, the workers table, "
        "--workers), p99 ÷ p50, event-loop lag, routing-table 304s, the extract; mirror: "
        "seed, serve, mirror; workers: the worker-replacement row alone; shared-index: PSS "
        "and USS per worker, PSS per extra worker and a worker killed → ready, at the "
        "largest size; data: bench/data_paths.py's rows (extracts, the past, re-import, XLSX)",
    )
    parser.add_argument("--no-pin", action="store_true",
                        help="skip the 1-worker figure pinned to its own CPU")  # fmt: skip
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run while working: smaller and shorter unless told",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the figures go (JSON)")
    data_paths.add_arguments(parser)
    args = parser.parse_args()
    quick = args.quick
    for name, full, short in (("sizes", [10_000, 1_000_000], [10_000]), ("seconds", 10, 3),
                              ("repeats", 3, 3), ("import_entries", 50_000, 5_000),
                              ("gazetteer", 800_000, 0)):  # fmt: skip
        if getattr(args, name) is None:
            setattr(args, name, short if quick else full)
    args.repeats = max(1, args.repeats)
    if args.workers_table is None:  # the CPUs this process may use (a cgroup's cpuset too)
        args.workers_table = list(range(1, len(os.sched_getaffinity(0)) + 1))
    data_paths.defaults(args, quick)
    if args.only in (None, "resolve") and shutil.which("wrk") is None:
        raise SystemExit("wrk is missing (make bench installs the Debian package)")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="cdb-bench-") as name:
        tmp = Path(name)
        if args.only in (None, "resolve", "mirror", "workers", "shared-index"):
            bench_resolve(args, tmp, rows)
        if args.only in (None, "import"):
            bench_import(tmp, rows, args.import_entries)
        if args.only in (None, "data"):
            rows += data_paths.data_rows(args, tmp)
    plan = cpu_plan()
    print(
        f"cdb-service bench: {args.connections} connections, {args.seconds} s per run, "
        f"{args.repeats} alternating reference/target pairs per figure; ratio = the median of "
        "target ÷ the reference run just before it (lowest–highest in brackets); "
        + (f"pinned: service on CPU {plan[0]}, wrk on CPU {plan[1]}" if plan else "not pinned")
    )
    print(table(rows))
    # A list of rows (size, endpoint as printed, rps, p50_ms, p99_ms, ratio, rss_mib,
    # efficiency, …); `rps` holds the row's `unit` (req/s unless it says rows/s, MB/s,
    # entries/s, s, MiB or ×).
    args.out.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    raise SystemExit(main())
