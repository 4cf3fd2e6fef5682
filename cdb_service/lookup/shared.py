"""One lookup index per host: which worker builds the snapshot file, and when the others map it.

The workers of a host share `runtime_dir/lookup-index.snap` (see `saved.py`). One of
them at a time builds it, holding `lookup-index.lock` (`fcntl.flock`: released by the
kernel when its holder dies, so a killed builder never leaves the others waiting for
ever); the others wait for the lock, find the new file and map it. A worker that finds
a whole snapshot no older than the change feed's retention maps it and catches up from
the feed instead of building: ready in the time it takes to read the file. A missing,
stale, damaged or foreign one (of another database) is built again.

Everything here is blocking and runs in a thread (`asyncio.to_thread`), never on the
event loop. The build itself runs in a child process (`python -m
cdb_service.lookup.shared`, given the database settings on its stdin) with an engine of
its own: the worker that builds keeps neither the build's garbage nor its GIL time, and
receives a file; the loop receives the mapped index by reference.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cdb_service import metrics
from cdb_service.db import revisions as rev
from cdb_service.db.engine import create_engine, session_factory
from cdb_service.logging import configure_logging, get_logger
from cdb_service.lookup import saved
from cdb_service.lookup.snapshot import build
from cdb_service.settings import Settings

log = get_logger("cdb.lookup")
LOCK_POLL_S = 0.05


async def committed_at(session: AsyncSession, revision: int) -> str | None:
    """When `revision` was committed (ISO), None for none: names the database a snapshot
    is of, since two databases do not commit the same revision at the same microsecond."""
    found = await session.scalar(
        select(rev.Revision.committed_at).where(rev.Revision.revision == revision)
    )
    return found.isoformat() if found is not None else None


@dataclass
class SharedSnapshot:
    """The host's snapshot file, its lock, and how to build it.

    `settings`: the registry's database, for the builder's own engine.
    `retention`: the change feed's; an older snapshot is built again rather than caught up.
    """

    path: Path
    settings: Settings
    retention: dt.timedelta
    _stopping: threading.Event = field(default_factory=threading.Event)
    _child: subprocess.Popen[bytes] | None = None
    # How long this worker's last build of the file took (0: it has built none).
    last_build_s: float = 0.0

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def stop(self) -> None:
        """A worker that waits for the lock stops waiting; its build, if any, ends."""
        self._stopping.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.kill()

    def load(self) -> saved.Saved | None:
        """The host's snapshot, mapped, if it is whole and young enough to catch up from."""
        try:
            found = saved.load(self.path)
        except saved.Unusable as error:
            log.warning("lookup snapshot unusable: it will be built again",
                        path=str(self.path), reason=str(error))  # fmt: skip
            metrics.LOOKUP_SNAPSHOTS.labels("refused").inc()
            return None
        if found is None:
            return None
        if found.age_s() > self.retention.total_seconds():
            log.info("lookup snapshot older than the change feed keeps: it will be built again",
                     path=str(self.path), age_s=round(found.age_s()))  # fmt: skip
            return None
        return found

    @contextmanager
    def builder(self, wait: bool) -> Iterator[bool]:
        """Hold the host's build lock: yields True when held. `wait`: wait for a worker
        that holds it (until `stop`); otherwise yield False at once."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            held = False
            while not held:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = True
                except BlockingIOError:
                    if not wait or self._stopping.wait(LOCK_POLL_S):
                        break
            yield held
        finally:
            os.close(fd)  # closing releases the lock

    def build_file(self) -> None:
        """Build the index from the database and write the snapshot, in a child process
        or in this thread (`lookup_snapshot_builder`; hold `builder`)."""
        started = time.monotonic()
        if self.settings.lookup_snapshot_builder == "thread":  # this thread, its own loop
            asyncio.run(_build_and_write(self.settings, self.path))
            pid = os.getpid()
        else:
            pid = self._build_in_child()
        self.last_build_s = time.monotonic() - started
        metrics.LOOKUP_SNAPSHOTS.labels("built").inc()
        log.info("lookup snapshot built", path=str(self.path), pid=pid,
                 seconds=round(self.last_build_s, 3))  # fmt: skip

    def _build_in_child(self) -> int:
        database = {name: value for name, value in self.settings.model_dump(mode="json").items()
                    if name.startswith("db_") or name in ("database_url", "data_dir",
                                                          "log_level")}  # fmt: skip
        # Its own metrics (none shared with the workers') and its own log lines.
        env = {k: v for k, v in os.environ.items() if k != metrics.MULTIPROC_ENV}
        child = subprocess.Popen([sys.executable, "-m", __name__, str(self.path)],
                                 stdin=subprocess.PIPE, env=env)  # fmt: skip
        self._child = child
        child.communicate(json.dumps(database).encode())
        self._child = None
        if child.returncode != 0:
            raise RuntimeError(f"the lookup snapshot's builder exited with {child.returncode}")
        return child.pid

    def obtain(self) -> saved.Saved | None:
        """A usable snapshot: the one there is, or, when it is missing or unusable, one
        built now by this worker or by the one that holds the lock (waited for).
        None when this worker stops meanwhile."""
        seen = saved.stamp_of(self.path)
        found = self.load()
        if found is not None:
            return found
        with self.builder(wait=True) as held:
            if not held:
                return None
            if saved.stamp_of(self.path) != seen:  # the lock's holder has just written one
                found = self.load()
                if found is not None:
                    return found
            self.build_file()
        return self.load()

    def replace(self, refused: tuple[int, int]) -> None:
        """Build the snapshot again: the file `refused` names (inode, mtime_ns) is of
        another database. Unless another worker has replaced it meanwhile."""
        with self.builder(wait=True) as held:
            if held and saved.stamp_of(self.path) in (refused, None):
                self.build_file()

    def renew(self, every_s: float) -> bool:
        """Build a new snapshot if the host's is older than `every_s` and no other worker
        builds one now; True if this worker built it."""
        with self.builder(wait=False) as held:
            if not held:
                return False
            try:  # written when it was synced: its time is the snapshot's age
                age = time.time() - self.path.stat().st_mtime
            except OSError:
                age = float("inf")
            if age < every_s:
                return False
            self.build_file()
            return True


async def _build_and_write(settings: Settings, path: Path) -> int:
    engine = create_engine(settings)
    try:
        index = await build(session_factory(engine), record=False)
        async with session_factory(engine)() as session:
            committed = await committed_at(session, index.revision)
    finally:
        await engine.dispose()
    saved.write(path, index, dt.datetime.now(dt.UTC), committed)
    return index.revision


if __name__ == "__main__":  # the builder: `SharedSnapshot.build_file`
    given = Settings(**json.loads(sys.stdin.read()))
    configure_logging(given.log_level)  # the worker's log stream, in its shape
    revision = asyncio.run(_build_and_write(given, Path(sys.argv[1])))
    log.info("lookup snapshot written", path=sys.argv[1], revision=revision)
