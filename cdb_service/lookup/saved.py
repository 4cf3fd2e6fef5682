"""The lookup index saved to a file, so that a service started while the database is
down still answers look-ups (from the last index a worker saved, and says so).

`snapshot.py` builds an index from the database; this module keeps a copy of one on
disk: `data_dir/lookup-snapshot.bin`, written by each worker at most every
`lookup_snapshot_interval_s` (atomically: a temporary file, then a rename, mode 0600)
and read only at start, when the database does not answer. The file is the service's
own (pickle: nobody else writes into `data_dir`), stamped with the release and the
wall-clock time of the sync it holds; a file of another release is ignored, never
half-read. The index's age carries over: readiness counts from the sync it was saved
at, not from the start.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

from cdb_service import __version__
from cdb_service.logging import get_logger
from cdb_service.lookup.index import Freshness, LookupIndex

log = get_logger("cdb.lookup")
FORMAT = 1


@dataclass(frozen=True)
class Saved:
    index: LookupIndex
    synced_at: dt.datetime  # when the index last matched the database (wall clock)


def dump(index: LookupIndex, synced_at: dt.datetime) -> bytes:
    """The file's bytes, made on the event loop (the index must not change meanwhile)."""
    stamp = {"format": FORMAT, "release": __version__, "synced_at": synced_at.isoformat(),
             "revision": index.revision}  # fmt: skip
    return pickle.dumps((stamp, index), protocol=pickle.HIGHEST_PROTOCOL)


def write(path: Path, data: bytes) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def load(path: Path) -> Saved | None:
    """The saved index, or None (no file, another release, unreadable: logged)."""
    if not path.is_file():
        return None
    try:
        stamp, index = pickle.loads(path.read_bytes())  # the service's own file
        if stamp.get("format") != FORMAT or stamp.get("release") != __version__:
            log.warning("saved lookup index ignored: another release", path=str(path),
                        release=stamp.get("release"))  # fmt: skip
            return None
        synced_at = dt.datetime.fromisoformat(stamp["synced_at"])
    except Exception as error:
        log.warning("saved lookup index unreadable", path=str(path), error=repr(error))
        return None
    if not isinstance(index, LookupIndex):
        return None
    age = max(0.0, (dt.datetime.now(dt.UTC) - synced_at).total_seconds())
    # Its last sync was `age` ago: readiness judges it by that, as it would a live one.
    index.freshness = Freshness(time.monotonic() - age)
    gc.freeze()
    return Saved(index, synced_at)
