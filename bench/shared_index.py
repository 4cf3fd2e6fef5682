"""Memory and readiness of the workers of one host: "PSS per worker", "USS per worker",
"PSS per extra worker", "worker killed → ready (index)".

    .venv/bin/python bench/shared_index.py --database sqlite:////tmp/x/registry.db \\
        --data-dir /tmp/x/data --workers 2 --kills 3 [--json rows.json]

The database must be migrated and seeded (`cdb-service seed --scale 100000`). The
service runs as `serve --workers N` (dev profile, TLS direct, logging at INFO); once
`/health/ready` answers, each worker's `/proc/<pid>/smaps_rollup` gives its RSS, its
PSS (each shared page divided among the processes that map it: the host's snapshot
file, the code forked from the supervisor) and its USS (the pages only it holds). Then
one worker at a time is SIGKILLed and the figure is the time from the kill to the
first `/health/ready` a new worker answers 200 (it answers only once its index is
there: `tests/support/worker_kill.py`).

"PSS per extra worker" is what the host pays for each worker beyond the first: the
service is started a second time with two more workers, on the same database and data
directory (so the same snapshot file), and the PSS of every process of each service
(the supervisor, its workers, anything they started) is summed once it is ready and
idle; the figure is (total with N + 2 − total with N) ÷ 2, in MiB. Not against one
worker: `serve --workers 1` serves in its own process, without a supervisor, so that
difference would be mostly the supervisor. `run.py --only shared-index` adds the rows to
`results.json`; the module also runs alone (on `main` too, with `PYTHONPATH` pointing
at a checkout of it, for a before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.nginx import free_port  # noqa: E402
from tests.support.worker_kill import workers  # noqa: E402

EXE = str(Path(sys.executable).with_name("cdb-service"))


def rollup(pid: int) -> dict[str, float]:
    """RSS, PSS and USS of a process, in MiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value)
    uss = fields["Private_Clean"] + fields["Private_Dirty"]
    return {"rss": fields["Rss"] / 1024, "pss": fields["Pss"] / 1024, "uss": uss / 1024}


def process_tree(pid: int) -> list[int]:
    """`pid` and every process it started, and theirs (children of any of its threads:
    a worker starts its snapshot build from a thread)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        for child in children:
            out += process_tree(int(child))
    return out


def host_pss_mib(pid: int) -> float:
    """The PSS of `pid` and every process under it, summed: what they hold together."""
    total = 0.0
    for member in process_tree(pid):
        try:
            total += rollup(member)["pss"]
        except (OSError, KeyError):  # it ended meanwhile
            continue
    return total


def _ready(url: str, process: subprocess.Popen[bytes], log: Path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 600:
        if process.poll() is not None:
            raise SystemExit(f"the service exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health/ready", verify=False, timeout=5).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the service did not become ready")


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    ready_s: float  # from the start to the first /health/ready 200


@contextmanager
def serving(database: str, data_dir: Path, workers_n: int, base_env: dict[str, str] | None,
            log_name: str = "serve.log") -> Iterator[Served]:  # fmt: skip
    """`serve --workers N` until the block ends, ready and settled.

    `base_env`: the environment `run.py` runs the service with (its database, its
    `PATH`); the service runs in the dev profile, on `database`, either way."""
    port = free_port()
    env = {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
        "CDB_DATABASE_URL": database, "CDB_DATA_DIR": str(data_dir), "CDB_PORT": str(port),
        "CDB_AUTO_SEED": "false", "CDB_AUTO_MIGRATE": "false", "CDB_LOG_LEVEL": "INFO",
        "CDB_RATE_LIMITS": "false", "CDB_TLS_MODE": "proxy",
    }  # fmt: skip
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]  # a before: another checkout's code
    if base_env is not None:
        # On run.py's database, in the dev profile: the prod profile refuses run.py's
        # measuring shortcuts (no rate limits), and memory and readiness do not need it.
        env = base_env | env | {"CDB_PROFILE": "dev"}
    log = data_dir / log_name
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([EXE, "serve", "--workers", str(workers_n)], env=env,
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        ready_s = _ready(url, process, log)
        time.sleep(2)  # every worker past its start (the readiness above is any worker's)
        yield Served(process, url, log, ready_s)
    finally:
        process.terminate()
        process.wait(timeout=30)


# Workers added for "PSS per extra worker" (idle: memory only, whatever the CPUs).
EXTRA_WORKERS = 2


def measure(database: str, data_dir: Path, workers_n: int, kills: int,
            base_env: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Each worker's memory, the host's PSS, and `kills` replacements, with N workers;
    then the host's PSS with EXTRA_WORKERS more (see `serving` for `base_env`)."""
    with serving(database, data_dir, workers_n, base_env) as served:
        pid = served.process.pid
        memory = [rollup(worker) for worker in workers(pid)]
        host_pss = host_pss_mib(pid)
        supervisor_pss = rollup(pid)["pss"] if workers_n > 1 else 0.0
        replaced = [_replacement(pid, served.url, served.log) for _ in range(kills)]
    text = served.log.read_text(errors="replace")
    # Then with two more workers, on the same database and data directory (the snapshot
    # file the N mapped): the difference is what a worker beyond the first costs the
    # host. Not against one worker: `serve --workers 1` runs without a supervisor, so
    # that difference would be mostly the supervisor.
    more = workers_n + EXTRA_WORKERS
    with serving(database, data_dir, more, base_env, f"serve-{more}.log") as larger:
        larger_pss = host_pss_mib(larger.process.pid)
    return {
        "first_ready_s": served.ready_s, "memory": memory, "replaced_s": replaced,
        "built": text.count("lookup snapshot built") + text.count('"lookup index built"'),
        "mapped": text.count("lookup index mapped from the host's snapshot"),
        "host_pss": {str(workers_n): host_pss, str(more): larger_pss},
        "supervisor_pss": supervisor_pss,
    }  # fmt: skip


def _replacement(supervisor: int, url: str, log: Path) -> float:
    from cdb_service.ops.supervisor import QUICK_DEATH_S
    from tests.support.worker_kill import kill_one_and_time

    time.sleep(QUICK_DEATH_S)
    transport = httpx.HTTPTransport(verify=False, limits=httpx.Limits(max_keepalive_connections=0))
    with httpx.Client(transport=transport, base_url=url, timeout=10) as client:
        return kill_one_and_time(supervisor, log, lambda: client.get("/health/ready"),
                                 timeout=120).seconds  # fmt: skip


def lag_buckets(url: str) -> dict[float, float]:
    """`cdb_event_loop_lag_seconds` as it stands: upper bound -> samples at or below it,
    summed over the workers (whichever answers `/metrics` reports them all)."""
    buckets: dict[float, float] = {}
    text = httpx.get(f"{url}/metrics", verify=False, timeout=10).text
    for line in text.splitlines():
        if line.startswith("cdb_event_loop_lag_seconds_bucket{"):
            bound = float(line.split('le="', 1)[1].split('"', 1)[0])
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def lag_since(url: str, before: dict[float, float]) -> dict[float, float]:
    """The lag samples taken since `before` (a `lag_buckets`), by bucket."""
    return {bound: count - before.get(bound, 0.0) for bound, count in lag_buckets(url).items()}


def lag_row(since: dict[float, float], size: str, endpoint: str) -> dict[str, Any]:
    """A `results.json` row of the event loop's lag p99 over the samples `since` holds
    (the upper bound of the bucket it falls in: the histogram's resolution)."""
    total = since.get(float("inf"), 0.0)
    p99 = next((b for b in sorted(since) if since[b] >= 0.99 * total), None) if total else None
    return {"size": size, "endpoint": endpoint,
            "rps": None, "p50_ms": None, "p99_ms": None if p99 is None else p99 * 1000,
            "ratio": None, "rss_mib": [], "ratio_spread": None, "runs": 1, "errors": 0,
            "unit": "", "note": f"{total:.0f} samples (every 0.1 s per worker); the upper "
            "bound of the histogram bucket the 99th percentile falls in"}  # fmt: skip


def rows(result: dict[str, Any], size: str, workers_n: int) -> list[dict[str, Any]]:
    """`results.json` rows (the format `run.py`'s `Row` writes)."""
    memory = result["memory"]

    def row(endpoint: str, **figures: Any) -> dict[str, Any]:
        return {"size": size, "endpoint": endpoint, "rps": None, "p50_ms": None,
                "p99_ms": None, "ratio": None, "rss_mib": [], "ratio_spread": None,
                "runs": 1, "errors": 0, "unit": "", "note": ""} | figures  # fmt: skip

    spread = ", ".join(f"{m['rss']:.0f}" for m in memory)
    replaced = result["replaced_s"]
    more = workers_n + EXTRA_WORKERS
    fewer_pss, more_pss = result["host_pss"][str(workers_n)], result["host_pss"][str(more)]
    extra = (more_pss - fewer_pss) / EXTRA_WORKERS
    return [
        row(f"PSS per worker ({workers_n} workers)",
            rss_mib=[round(m["pss"], 1) for m in memory],
            note=f"RSS {spread} MiB; proportional set size from /proc/<pid>/smaps_rollup"),
        row(f"USS per worker ({workers_n} workers)",
            rss_mib=[round(m["uss"], 1) for m in memory],
            note="pages only that worker holds (Private_Clean + Private_Dirty)"),
        row(f"PSS per extra worker ({workers_n} → {more} workers)",
            rps=round(extra, 1), unit="MiB",
            note=(f"(host PSS with {more} workers − with {workers_n}) ÷ {EXTRA_WORKERS}: "
                  f"{more_pss:.0f} − {fewer_pss:.0f} MiB (the supervisor's "
                  f"{result['supervisor_pss']:.0f} MiB in both); every process of the "
                  "service, ready and idle, on the same database and snapshot")),
        row("worker killed → ready (index)", rps=round(statistics.median(replaced), 2),
            unit="s", runs=len(replaced),
            note=(f"median; {min(replaced):.2f}–{max(replaced):.2f} s; from SIGKILL to a "
                  f"new worker's /health/ready 200; snapshot built {result['built']}×, "
                  f"mapped {result['mapped']}×")),
    ]  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", required=True)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="N: the workers measured; PSS per extra worker compares N with N + 2",
    )
    parser.add_argument("--kills", type=int, default=3, help="workers killed, one at a time")
    parser.add_argument("--size", default="", help="the rows' size (e.g. 1,000,000)")
    parser.add_argument("--json", type=Path, help="where the rows go (results.json's format)")
    args = parser.parse_args()
    result = measure(args.database, args.data_dir, args.workers, args.kills)
    print(json.dumps(result, indent=1))
    made = rows(result, args.size, args.workers)
    if args.json:
        args.json.write_text(json.dumps(made, indent=1, ensure_ascii=False))
    for made_row in made:
        print(made_row["endpoint"], made_row["rps"], made_row["unit"], made_row["rss_mib"],
              made_row["note"])  # fmt: skip
