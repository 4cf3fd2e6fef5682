"""The lookup index's memory, in-process: resident memory before and after building it.

    .venv/bin/python bench/index_memory.py --database postgresql://…/db

The database must be migrated and seeded (`cdb-service seed --scale 1000000`). The
service is imported whole first (as a worker is), so that the growth is the index's
own: what a worker pays for the data, beside what it pays for the code.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cdb_service.app  # noqa: E402, F401  (the whole service, as a worker imports it)
from cdb_service.db.engine import create_engine, session_factory  # noqa: E402
from cdb_service.lookup.snapshot import build  # noqa: E402
from cdb_service.settings import Settings  # noqa: E402


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def peak_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


async def main(database: str) -> None:
    engine = create_engine(Settings(database_url=database))
    sessions = session_factory(engine)
    before = rss_mib()
    started = time.monotonic()
    index = await build(sessions)
    built_s = time.monotonic() - started
    await engine.dispose()
    gc.collect()
    after = rss_mib()
    postal = sum(c.postal.size_bytes() for c in index.gazetteer.countries.values())
    own = sum(len(c.keys) for c in index.criteria if c)
    print(
        f"packed: geo keys {index.built_geo.size_bytes() >> 20} MiB, postal codes "
        f"{postal >> 20} MiB; criteria's own keys {own >> 20} MiB"
    )
    started = time.perf_counter()
    gc.collect()
    full_gc_ms = (time.perf_counter() - started) * 1000
    print(
        f"geo keys {index.key_count():,}, criteria {len(index.slot_of):,}, built in "
        f"{built_s:.1f} s; RSS {before:.0f} MiB before, {after:.0f} MiB after "
        f"(the index: {after - before:.0f} MiB), peak {peak_mib():.0f} MiB; "
        f"a full collection takes {full_gc_ms:.1f} ms, {len(gc.get_objects()):,} tracked objects"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", required=True)
    asyncio.run(main(parser.parse_args().database))
