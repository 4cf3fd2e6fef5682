"""A 50,000-entry owner exported as XLSX and imported back: time and peak memory.

    .venv/bin/python bench/xlsx_round_trip.py [--entries 50000] [--database-url URL]

Each step is a real `cdb-service` process (as an administrator runs it); its wall time
and peak resident memory (its own, read by a small parent process) are printed. The
batch is one owner (DE): one routing party, then authorities and jurisdiction
criteria half and half, with names in two languages, an address, a contact, a
reference each. The re-import must report every entry unchanged (the round trip is a
no-op), or the script fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("cdb-service"))


def batch(entries: int) -> str:
    party = {"owner": "DE", "name": "de-bench-ap", "identifiers": [{"party_id": "de-bench-ap"}],
             "endpoint_url": "https://ap.bench.example.de/msh", "roles": ["responder"]}  # fmt: skip
    lines = [{"kind": "routing-parties", "document": party}]
    courts = (entries - 1) // 2
    for n in range(courts):
        postal = f"{10000 + n % 89999:05d}"
        lines.append({"kind": "authorities", "document": {
            "owner": "DE", "code": f"DE:BENCH-{n:06d}", "kind": "court",
            "names": {"de": f"Amtsgericht Nummer {n} München", "en": f"Local Court {n}"},
            "address": {"street": f"Justizstraße {n % 200 + 1}", "postal_code": postal,
                        "city": "München", "country": "DE"},
            "contacts": [{"channel": "email", "value": f"poststelle{n}@justiz.example.de"}],
            "languages": ["de", "en"], "routing_party_name": "de-bench-ap"}})  # fmt: skip
    for n in range(entries - 1 - courts):
        court = f"DE:BENCH-{n % courts:06d}"
        lines.append({"kind": "jurisdiction-criteria", "document": {
            "owner": "DE", "ref": f"bench-crit-{n:06d}", "authority_code": court,
            "instrument": "eio", "competence": "execute",
            "geo": [{"scheme": "postal-code", "code": f"{10000 + n % 89999:05d}"}]}})  # fmt: skip
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


# Each step runs under a small parent of its own that reports the step's peak: a child
# forked straight from a large process (run.py) counts that process's pages as its own
# until it execs, which would put a floor of the bench's size under every figure.
_PEAK = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss; "
    "sys.stderr.write(f'\\npeak-kib {peak}\\n'); sys.exit(done.returncode)"
)


def run(label: str, args: list[str], env: dict[str, str], work: Path,
        steps: list[tuple[str, float, float]] | None = None) -> str:  # fmt: skip
    """One step as its own process; its output goes to files, and its peak resident
    memory is its own (and `steps` gets its label, seconds, MiB)."""
    out_path, err_path = work / "step.out", work / "step.err"
    started = time.perf_counter()
    with out_path.open("w") as out, err_path.open("w") as err:
        done = subprocess.run([sys.executable, "-c", _PEAK, EXE, *args], env=env, stdout=out,
                              stderr=err, check=False)  # fmt: skip
    elapsed = time.perf_counter() - started
    errors = err_path.read_text()
    if done.returncode != 0:
        sys.exit(f"{label} failed: {errors.strip()[-2000:]}")
    peak = int(errors.rpartition("peak-kib ")[2].split()[0]) / 1024
    print(f"{label:<42} {elapsed:7.1f} s   peak RSS {peak:6.0f} MiB", flush=True)
    if steps is not None:
        steps.append((label, elapsed, peak))
    return out_path.read_text()


def round_trip(entries: int, database_url: str, work: Path) -> list[tuple[str, float, float]]:
    """Every step's (label, seconds, peak MiB); fails unless the re-import changes nothing."""
    steps: list[tuple[str, float, float]] = []
    env = os.environ | {"CDB_DATA_DIR": str(work), "CDB_LOG_LEVEL": "WARNING"}
    env["CDB_DATABASE_URL"] = database_url or f"sqlite:///{work / 'bench.sqlite3'}"
    source = work / "de.ndjson"
    source.write_text(batch(entries), "utf-8")
    print(f"{entries} entries of DE on {env['CDB_DATABASE_URL'].split(':')[0]}")
    run("migrate", ["migrate"], env, work, steps)
    run("import de.ndjson (setup)", ["import", str(source), "--owner", "DE"], env, work, steps)
    book = work / "de.xlsx"
    run("export --owner DE --out de.xlsx", ["export", "--owner", "DE", "--out", str(book)],
        env, work, steps)  # fmt: skip
    print(f"{'':<40} workbook {book.stat().st_size / 2**20:.1f} MiB")
    dry = ["import", str(book), "--owner", "DE", "--dry-run", "--mode", "replace"]
    counts = json.loads(run("import de.xlsx --dry-run --mode replace", dry, env, work, steps))[
        "counts"
    ]
    real = json.loads(run("import de.xlsx", ["import", str(book), "--owner", "DE"], env, work,
                          steps))  # fmt: skip
    if counts != {"created": 0, "updated": 0, "deleted": 0, "unchanged": entries} or (
        real["revision"] is not None
    ):
        sys.exit(f"the round trip changed something: {counts} {real['counts']}")
    print(f"round trip: {counts['unchanged']} unchanged, nothing written")
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cdb-xlsx-bench-") as tmp:
        round_trip(args.entries, args.database_url, Path(tmp))


if __name__ == "__main__":
    main()
