"""`make bench`'s data-path rows: the extract against `psql \\copy`, the past beside the
present, the unchanged re-import and the XLSX round trip.

    .venv/bin/python bench/run.py --only data [--extract-keys N] [--history R] [--quick]

On PostgreSQL, a fresh database is seeded with `--extract-keys` postal-code geo keys
(criteria) and then grown by `--history` revisions, each creating `PER_REVISION`
authorities and changing one earlier one (entry versions at thousands of revisions, as a
registry has after years of single edits). The service runs as `run.py` runs it
(prod profile, proxy mode, `--workers` workers); on that registry:

- "/api/v1/extract (MB/s)" and "(rows/s)" against `psql \\copy` of the same tables,
  paired (`run.bench_extract`, the same code as the 1,000,000-key row of a full run);
- "extract at revision=R, 10th run in a row": the registry as of the revision before
  the head (nearly every entry, so the two answers are the same size), fetched ten
  times in a row (a prepared statement turns generic after five executions), beside
  the head's extract just before; the figure is the 10th run's seconds, the ratio that
  time ÷ the head's, and a run cut off without its trailer is an error.

Then, on SQLite as `run.py --only import` does: the 50,000-entry import and its
unchanged re-import (`run.bench_import`, only when `--only data`: a full run has them
already), and the XLSX round trip of `bench/xlsx_round_trip.py` (a 50,000-entry owner
exported as XLSX and imported back, unchanged): each step's seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

PER_REVISION = 10  # authorities created by each revision of the grown history
AS_OF_RUNS = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--extract-keys", type=int,
                        help="geo keys of the extract registry (default 200000; "
                        "--quick: 20000)")  # fmt: skip
    parser.add_argument("--history", type=int,
                        help="revisions the extract registry is grown by (default 3000; "
                        "--quick: 1000)")  # fmt: skip
    parser.add_argument(
        "--xlsx-entries",
        type=int,
        help="entries of the XLSX round trip (default 50000; --quick: 5000)",
    )


def defaults(args: argparse.Namespace, quick: bool) -> None:
    for name, full, short in (("extract_keys", 200_000, 20_000), ("history", 3000, 1000),
                              ("xlsx_entries", 50_000, 5000)):  # fmt: skip
        if getattr(args, name, None) is None:
            setattr(args, name, short if quick else full)


async def _grow_history(database_url: str, data_dir: Path, revisions: int) -> int:
    """`revisions` revisions through the batch writer, as administrators' edits make them;
    the head revision after them."""
    from cdb_service.db.engine import create_engine, session_factory
    from cdb_service.registry.store.batches import Batches
    from cdb_service.seeding.load import to_items
    from cdb_service.settings import Settings
    from tests.support import factories

    settings = Settings(database_url=database_url, data_dir=data_dir)
    engine = create_engine(settings)
    batches = Batches(session_factory(engine))
    head = 0
    try:
        for r in range(revisions):
            entries = [("authorities", factories.authority(code=f"DE:HIST-{r:05d}-{n}"))
                       for n in range(PER_REVISION)]  # fmt: skip
            if r:  # an earlier one edited: entries with several versions
                earlier = factories.authority(code=f"DE:HIST-{(r * 7) % r:05d}-0",
                                              names={"de": f"Gericht {r}"})  # fmt: skip
                entries.append(("authorities", earlier))
            result = await batches.apply(to_items(entries), "bench")
            head = result.revision or head
    finally:
        await engine.dispose()
    return head


def _fetch(url: str, headers: dict[str, str]) -> tuple[float, int, bool]:
    """(seconds, bytes, whether the last line is the trailer) of one whole extract."""
    started = time.monotonic()
    size, tail = 0, b""
    with httpx.stream("GET", url, headers=headers, timeout=600) as reply:
        if reply.status_code != 200:
            raise SystemExit(f"{url} answered {reply.status_code}: {reply.read()[:300]!r}")
        try:
            for chunk in reply.iter_bytes(1 << 16):
                size += len(chunk)
                tail = (tail + chunk)[-4096:]
        except httpx.HTTPError:
            return time.monotonic() - started, size, False
    last = tail.rstrip(b"\n").rpartition(b"\n")[2]
    return time.monotonic() - started, size, last.startswith(b'{"type":"trailer"')


def bench_as_of(url: str, headers: dict[str, str], head: int, size: str) -> list[Any]:
    from bench.run import Row, median

    extract = f"{url}/api/v1/extract"
    heads = [_fetch(extract, headers) for _ in range(2)][1:]  # the first warms the caches
    past: list[tuple[float, int, bool]] = []
    for _ in range(AS_OF_RUNS):
        past.append(_fetch(f"{extract}?revision={head - 1}", headers))
    heads.append(_fetch(extract, headers))
    head_s = median([h[0] for h in heads])
    tenth_s, tenth_bytes, _ = past[-1]
    cut = sum(1 for p in past if not p[2])
    spread = f"runs 1–10: {min(p[0] for p in past):.2f}–{max(p[0] for p in past):.2f} s"
    return [
        Row(size, "extract at head (reference)", rps=head_s, unit="s", ratio=1.0,
            runs=len(heads), note=f"{heads[-1][1] / 1e6:.1f} MB"),
        Row(size, f"extract at revision=R, {AS_OF_RUNS}th run in a row", rps=tenth_s, unit="s",
            ratio=tenth_s / head_s, runs=len(past), errors=cut,
            note=f"R = head − 1; {tenth_bytes / 1e6:.1f} MB; {spread}; ratio = 10th run ÷ head"
            + (f"; {cut} cut off without a trailer" if cut else "")),
    ]  # fmt: skip


def bench_extracts(args: argparse.Namespace, tmp: Path) -> list[Any]:
    from bench import run as base
    from cdb_service.security.pki import issue, make_ca
    from cdb_service.security.signing_keys import SigningKeys
    from cdb_service.security.x509 import certificate_facts
    from tests.support.issuer import Issuer

    ca = make_ca("bench CA")
    server = issue(ca, "127.0.0.1", ip_addresses=("127.0.0.1",), server=True)
    client = issue(ca, "bench-reader", client=True)
    for name, text in (("ca.pem", ca.cert_pem), ("server.pem", server.cert_pem),
                       ("server-key.pem", server.key_pem)):  # fmt: skip
        (tmp / name).write_text(text)
    database = f"cdb_bench_data_{os.getpid()}"
    base.admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    base.admin(f'CREATE DATABASE "{database}"')
    db_url = base.PG.rsplit("/", 1)[0] + f"/{database}"
    issuer = Issuer(tmp / "server.pem", tmp / "server-key.pem").start()
    rows: list[Any] = []
    try:
        env = os.environ | base.measured_env(tmp, db_url, issuer.url) | {
            "CDB_HOST": "127.0.0.1", "CDB_PORT": str(base.free_port())}  # fmt: skip
        SigningKeys.load(tmp / "signing-keys.json", create=True)
        base.sh([base.EXE, "migrate"], env)
        base.sh([base.EXE, "seed"], env | {"CDB_AUTO_SEED": "true"})
        started = time.monotonic()
        base.sh([base.EXE, "seed", "--scale", str(args.extract_keys)],
                env | {"CDB_AUTO_SEED": "true"})  # fmt: skip
        head = asyncio.run(_grow_history(db_url, tmp, args.history))
        print(
            f"  extract registry: {args.extract_keys:,} geo keys, {args.history:,} more "
            f"revisions (head {head}) in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )
        token = issuer.token("bench-reader", "cdb.read", lifetime_s=7200,
                             thumbprint=certificate_facts(client.certificate).x5t_s256)  # fmt: skip
        headers = {"X-SSL-Client-Cert": base.quote(client.cert_pem, safe=""),
                   "Authorization": f"Bearer {token}"}  # fmt: skip
        size = f"{args.extract_keys:,} keys, {head:,} revisions"
        service = base.Service(env, args.workers, tmp / "serve-data.log")
        try:
            rows += bench_as_of(service.url, headers, head, size)
            base.bench_extract(service, headers, tmp, args, db_url, rows, size)
        finally:
            service.stop()
    finally:
        issuer.stop()
        base.admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return rows


XLSX_ROWS = {  # the round trip's steps reported, by the name bench/xlsx_round_trip.py gives
    "export --owner DE --out de.xlsx": "XLSX export",
    "import de.xlsx --dry-run --mode replace": "XLSX import, dry run (replace mode)",
    "import de.xlsx": "XLSX import",
}


def bench_xlsx(args: argparse.Namespace, tmp: Path) -> list[Any]:
    from bench.run import Row
    from bench.xlsx_round_trip import round_trip

    entries = args.xlsx_entries
    work = tmp / "xlsx"
    work.mkdir()
    rows = []
    for label, seconds, peak in round_trip(entries, "", work):
        if label in XLSX_ROWS:
            rows.append(Row(f"{entries:,}", XLSX_ROWS[label], rps=entries / seconds,
                            unit="entries/s", rss_mib=[peak],
                            note=f"{seconds:.1f} s; peak RSS {peak:.0f} MiB (one CLI process, "
                            "SQLite; the import finds every entry unchanged)"))  # fmt: skip
    return rows


def data_rows(args: argparse.Namespace, tmp: Path) -> list[Any]:
    """Every row of this module (`run.py` calls it; `--only data`: the import rows too)."""
    from bench import run as base

    rows = bench_extracts(args, tmp)
    if args.only == "data":
        base.bench_import(tmp, rows, args.import_entries)
    rows += bench_xlsx(args, tmp)
    return rows
