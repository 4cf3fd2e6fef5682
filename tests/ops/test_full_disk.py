"""SQLite on a full disk: 503 problems, readiness 503, nothing acknowledged lost, recovery in place.

The disk is real and really full: a 4 MiB tmpfs the test mounts (the tests run as
root in their sandbox), holding the database, filled up by a file of the test's
own. Freeing the space must bring writes and readiness back without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdb_service.ops.write_ready import SHARED_S
from cdb_service.settings import Settings
from tests.support import factories
from tests.support.api import build

V1 = "/api/v1"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    """Write until the file system says no more (ENOSPC)."""
    chunk = b"\0" * 65536
    # Unbuffered: a buffered file keeps the bytes a short write left over and fails again
    # on close, depending on how the free space happens to divide into chunks.
    with path.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    with contextlib.suppress(OSError), path.open("ab") as out:  # the last few bytes too
        while True:
            out.write(b"\0")
            out.flush()


async def test_a_full_disk_gives_503_fails_readiness_and_recovers_in_place(
    small_disk: Path, sqlite_template: Path, tmp_path: Path
) -> None:
    database = small_disk / "cdb.sqlite3"
    shutil.copy(sqlite_template, database)
    settings = Settings(database_url=f"sqlite:///{database}", data_dir=tmp_path, auto_seed=False,
                        auto_migrate=False, retry_after_s=3)  # fmt: skip
    acknowledged: list[str] = []
    async with build(settings).running() as api, api.client("admin-de") as admin:
        http = api.http
        assert http is not None
        for n in range(3):
            created = await admin.post(
                f"{V1}/authorities", json=factories.authority(code=f"DE:D-{n}")
            )
            assert created.status_code == 201, created.text
            acknowledged.append(created.json()["id"])
        assert (await http.get("/health/ready/write")).status_code == 200

        filler = small_disk / "filler"
        _fill(filler)
        refused = 0
        for n in range(40):  # enough to outgrow what the WAL has already allocated
            body = factories.authority(code=f"DE:FULL-{n}-{uuid.uuid4().hex[:4]}",
                                       names={"de": "x" * 200})  # fmt: skip
            response = await admin.post(f"{V1}/authorities", json=body)
            assert response.status_code in (201, 503), response.text
            if response.status_code == 201:
                acknowledged.append(response.json()["id"])
                continue
            refused += 1
            assert response.headers["retry-after"] == "3"
            problem = response.json()
            assert problem["reason"] == "storage-full"
            assert problem["write"] in ("not-applied", "may-have-applied")
        assert refused > 0, "the full disk never refused a write"
        await asyncio.sleep(SHARED_S)  # write readiness's answer is shared for a second
        ready = await http.get("/health/ready/write")
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["database:writable"][0]["output"] == "storage-full"
        # Look-ups answer from memory, whatever the disk does.
        assert (await http.get("/health/ready")).status_code == 200

        filler.unlink()  # space again: no restart
        await asyncio.sleep(SHARED_S)
        ready = await http.get("/health/ready/write")
        assert ready.status_code == 200, ready.text
        after = await admin.post(f"{V1}/authorities", json=factories.authority(code="DE:AFTER"))
        assert after.status_code == 201, after.text
        acknowledged.append(after.json()["id"])
        for entry_id in acknowledged:
            got = await admin.get(f"{V1}/authorities/{entry_id}")
            assert got.status_code == 200, f"acknowledged write {entry_id} is lost"
