"""One lookup index per host: a snapshot file built once, mapped by every worker.

Real files, real `flock`, real processes and both databases: a second worker maps the
host's snapshot instead of building (the `cdb_lookup_snapshots_total` counter says
which it did); a damaged file is built again, never served; the overlay answers what
was written after the snapshot; of several workers that find no snapshot, one builds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from cdb_service.lookup import saved, snapshot
from cdb_service.lookup.follower import IndexFollower
from cdb_service.lookup.gazetteer import Place, replace_country
from cdb_service.lookup.query import resolve_query
from cdb_service.lookup.resolver import resolve
from cdb_service.lookup.shared import SharedSnapshot
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.services import Services
from cdb_service.settings import Settings
from tests.support import factories

QUERY = {"country": "DE", "instrument": "eio", "competence": "execute", "postal_code": "10115"}


def _count(outcome: str) -> float:
    return REGISTRY.get_sample_value("cdb_lookup_snapshots_total", {"outcome": outcome}) or 0.0


def _shared(settings: Settings, path: Path) -> SharedSnapshot:
    """The host's snapshot as a served worker has it: built in a child process."""
    built_apart = settings.model_copy(update={"lookup_snapshot_builder": "process"})
    return SharedSnapshot(path, built_apart, dt.timedelta(days=90))


async def _create(services: Services, kind: str, body: dict[str, Any]) -> None:
    spec = KINDS[kind]
    await services.writes.create(spec, validate(spec, body), "test")


async def _registry(services: Services, courts: int = 3) -> None:
    """A routing party, `courts` authorities, each competent for postal code 10115 + n."""
    await replace_country(services.sessions, "DE",
                          [Place(f"{10115 + n}", "11000000", "DE300") for n in range(courts + 2)],
                          "test")  # fmt: skip
    await _create(services, "routing-parties", factories.routing_party())
    for n in range(courts):
        await _court(services, n)


async def _court(services: Services, n: int) -> None:
    code = f"DE:COURT-{n}"
    body = factories.authority(code=code, routing_party_name="de-ap")
    await _create(services, "authorities", body)
    geo = [{"scheme": "postal-code", "code": f"{10115 + n}"}]
    await _create(services, "jurisdiction-criteria",
                  factories.criterion(ref=f"c{n}", authority_code=code, geo=geo))  # fmt: skip


def _codes(answer: dict[str, Any]) -> list[str]:
    return [m["authority"]["code"] for m in answer["matches"]]


async def _started(settings: Settings, services: Services, path: Path) -> IndexFollower:
    follower = IndexFollower(services.settings, shared=_shared(settings, path))
    await follower.start()
    assert follower.index is not None
    return follower


async def test_a_second_worker_maps_the_hosts_snapshot_instead_of_building(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    await _registry(services)
    path = tmp_path / "run" / "lookup-index.snap"
    built, mapped = _count("built"), _count("mapped")
    first = await _started(settings, services, path)
    assert (_count("built"), _count("mapped")) == (built + 1, mapped + 1)  # built, then mapped
    second = await _started(settings, services, path)
    try:
        # The second found a whole, fresh snapshot: mapped it, built nothing.
        assert (_count("built"), _count("mapped")) == (built + 1, mapped + 2)
        assert first.index is not None and second.index is not None
        assert second.index.built_geo.get(b"DEp10115")  # from the file, in place
        answers = [resolve(f.index, resolve_query(QUERY)) for f in (first, second)
                   if f.index is not None]  # fmt: skip
        assert _codes(answers[0]) == _codes(answers[1]) == ["DE:COURT-0"]
    finally:
        await first.stop()
        await second.stop()


async def test_writes_after_the_snapshot_are_answered_from_the_overlay(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    await _registry(services, courts=1)
    path = tmp_path / "lookup-index.snap"
    await asyncio.to_thread(_shared(settings, path).obtain)  # the host's snapshot, before the write
    await _court(services, 1)  # DE:COURT-1 at 10116, after the snapshot
    built = _count("built")
    follower = await _started(settings, services, path)
    try:
        assert _count("built") == built  # mapped, and caught up from the feed
        assert follower.index is not None
        query = QUERY | {"postal_code": "10116"}
        assert _codes(resolve(follower.index, resolve_query(query))) == ["DE:COURT-1"]
        await _court(services, 2)  # and what the follower catches up with while it runs
        await follower.refresh()
        query = QUERY | {"postal_code": "10117"}
        assert _codes(resolve(follower.index, resolve_query(query))) == ["DE:COURT-2"]
    finally:
        await follower.stop()


async def test_a_truncated_or_damaged_snapshot_is_built_again_never_served(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    await _registry(services)
    path = tmp_path / "lookup-index.snap"
    await asyncio.to_thread(_shared(settings, path).obtain)
    whole = path.read_bytes()
    for damaged in (whole[: len(whole) // 2], whole[:-1] + bytes([whole[-1] ^ 1])):
        path.write_bytes(damaged)
        refused, built = _count("refused"), _count("built")
        follower = await _started(settings, services, path)
        try:
            assert (_count("refused"), _count("built")) == (refused + 1, built + 1)
            assert follower.index is not None
            assert _codes(resolve(follower.index, resolve_query(QUERY))) == ["DE:COURT-0"]
            assert path.stat().st_size == len(whole)  # the file was written anew
        finally:
            await follower.stop()


async def test_a_snapshot_of_another_database_is_built_again(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    await _registry(services)
    path = tmp_path / "lookup-index.snap"
    await asyncio.to_thread(_shared(settings, path).obtain)
    index = saved.load(path)
    assert index is not None
    # The same revision, committed at another time: the file names another database.
    saved.write(path, index.index, index.synced_at, "2000-01-01T00:00:00+00:00")
    built = _count("built")
    follower = await _started(settings, services, path)
    try:
        assert _count("built") == built + 1
    finally:
        await follower.stop()


async def test_of_workers_that_find_no_snapshot_one_builds_and_the_others_map(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    await _registry(services)
    path = tmp_path / "lookup-index.snap"
    shared = [_shared(settings, path) for _ in range(4)]  # a lock file descriptor each
    built = _count("built")
    found: list[saved.Saved | None] = [None] * len(shared)
    go = threading.Barrier(len(shared))

    def worker(n: int) -> None:
        go.wait()
        found[n] = shared[n].obtain()

    def all_at_once() -> None:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(shared))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    await asyncio.to_thread(all_at_once)
    assert _count("built") == built + 1
    assert all(f is not None and f.index.built_geo.get(b"DEp10115") for f in found)
    assert len({f.file for f in found if f is not None}) == 1  # one file, mapped by all


CHILD = """
import json, sys
from pathlib import Path
from cdb_service.lookup import saved, snapshot
from cdb_service.lookup.query import resolve_query
from cdb_service.lookup.resolver import resolve
found = saved.load(Path(sys.argv[1]))
answer = resolve(found.index, resolve_query(json.loads(sys.argv[2])))
print(json.dumps([m["authority"]["code"] for m in answer["matches"]]), flush=True)
sys.stdin.read()  # hold the map until the parent has looked
"""


def _shared_kib(pid: int, path: Path) -> int:
    """Shared_Clean of the process's map of `path`: pages another process maps too."""
    lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    total, inside = 0, False
    for line in lines:
        if not line.split()[0].endswith(":"):  # a mapping's first line: range, ..., path
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Shared_Clean:"):
            total += int(line.split()[1])
    return total


async def test_two_processes_map_one_snapshot_share_its_pages_and_answer_alike(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    await _registry(services, courts=40)
    path = tmp_path / "lookup-index.snap"
    shared = _shared(settings, path)
    await asyncio.to_thread(shared.replace, (0, 0))  # written, not mapped: only the children map it
    expected = _codes(resolve(await snapshot.build(services.sessions), resolve_query(QUERY)))
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            str(path),
            json.dumps(QUERY),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        answers = [json.loads(await c.stdout.readline()) for c in children if c.stdout]
        assert expected == ["DE:COURT-0"]
        assert answers == [expected, expected]
        size_kib = path.stat().st_size // 1024
        assert size_kib >= 16
        # Each has read the whole file (its digest): every page is in both, once in memory.
        for child in children:
            assert _shared_kib(child.pid, path) >= size_kib - 4
    finally:
        for child in children:
            await child.communicate(b"")


async def test_a_gazetteer_load_is_read_off_the_loop_and_answered(
    settings: Settings, services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load after the snapshot: its country is read on the follower's thread."""
    await _registry(services, courts=1)
    follower = await _started(settings, services, tmp_path / "lookup-index.snap")
    try:
        assert follower.index is not None
        mapped = follower.index.gazetteer.countries["DE"]
        # 20095 now lies in the court's LAU; its criterion names the LAU.
        await replace_country(services.sessions, "DE", [Place("20095", "11000000", "DE300")],
                              "test")  # fmt: skip
        geo = [{"scheme": "lau", "code": "11000000"}]
        body = factories.criterion(ref="lau", authority_code="DE:COURT-0", geo=geo)
        await _create(services, "jurisdiction-criteria", body)
        read_on: set[str] = set()
        read = snapshot.load_country

        async def spy(*args: Any) -> Any:
            read_on.add(threading.current_thread().name)
            return await read(*args)

        monkeypatch.setattr(snapshot, "load_country", spy)
        await follower.refresh()
        assert read_on and threading.current_thread().name not in read_on
        assert follower.index.gazetteer.countries["DE"] is not mapped
        query = QUERY | {"postal_code": "20095"}
        assert _codes(resolve(follower.index, resolve_query(query))) == ["DE:COURT-0"]
    finally:
        await follower.stop()


async def test_a_snapshot_older_than_the_feed_keeps_is_built_again(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    await _registry(services)
    path = tmp_path / "lookup-index.snap"
    await asyncio.to_thread(_shared(settings, path).obtain)
    found = saved.load(path)
    assert found is not None
    long_ago = found.synced_at - dt.timedelta(days=91)  # the feed keeps 90 days here
    saved.write(path, found.index, long_ago, found.committed_at)
    built = _count("built")
    follower = await _started(settings, services, path)
    try:
        assert _count("built") == built + 1
    finally:
        await follower.stop()


async def test_after_writes_one_worker_renews_the_snapshot_and_every_worker_swaps_it_in(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    await _registry(services, courts=1)
    path = tmp_path / "lookup-index.snap"
    followers = [IndexFollower(services.settings, interval=0.05, shared=_shared(settings, path),
                               renew_every_s=0.2) for _ in range(2)]  # fmt: skip
    for follower in followers:
        await follower.start()
    try:
        await asyncio.sleep(1)
        built = _count("built")
        assert saved.stamp_of(path) is not None
        await asyncio.sleep(1)  # nothing written: nothing renewed
        assert _count("built") == built
        await _court(services, 1)  # DE:COURT-1 at 10116
        for _ in range(200):  # a renewed snapshot holds it in its packed table
            if _count("built") > built and all(
                f.index is not None and f.index.built_geo.get(b"DEp10116") for f in followers
            ):
                break
            await asyncio.sleep(0.1)
        assert _count("built") == built + 1  # one worker built it, both mapped it
        for follower in followers:
            assert follower.index is not None and follower.index.built_geo.get(b"DEp10116")
            query = QUERY | {"postal_code": "10116"}
            assert _codes(resolve(follower.index, resolve_query(query))) == ["DE:COURT-1"]
    finally:
        for follower in followers:
            await follower.stop()


async def test_a_large_change_is_shared_in_a_new_snapshot_long_before_the_interval(
    settings: Settings, services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys changed after the snapshot live in each worker's overlay: a few wait for the
    interval's renewal, but many (an import, a worker started on a snapshot from before
    one) are written into a new snapshot that every worker maps, within seconds."""
    from cdb_service.lookup import follower as following

    monkeypatch.setattr(following, "OVERLAY_RENEW_KEYS", 5)
    monkeypatch.setattr(following, "OVERLAY_RENEW_AGE_S", 0.2)
    monkeypatch.setattr(following, "RENEW_LOOK_S", 0.05)
    await _registry(services, courts=1)
    path = tmp_path / "lookup-index.snap"
    follower = IndexFollower(services.settings, interval=0.05, shared=_shared(settings, path),
                             renew_every_s=3600)  # fmt: skip
    await follower.start()

    async def overlaid(key: str) -> bool:
        for _ in range(100):
            if follower.index is not None and key in follower.index.geo:
                return True
            await asyncio.sleep(0.05)
        return False

    try:
        built = _count("built")
        await _court(services, 1)  # one key
        assert await overlaid("DEp10116")
        await asyncio.sleep(1)
        assert _count("built") == built  # a few keys: the interval's renewal
        geo = [{"scheme": "postal-code", "code": f"{10200 + n}"} for n in range(10)]
        wide = factories.criterion(ref="wide", authority_code="DE:COURT-0", geo=geo)
        await _create(services, "jurisdiction-criteria", wide)
        for _ in range(200):
            index = follower.index
            mapped = index is not None and index.built_geo.get(b"DEp10209") and not index.geo
            if mapped and _count("built") > built:  # counted once its builder has exited
                break
            await asyncio.sleep(0.1)
        assert _count("built") == built + 1
        assert follower.index is not None and not follower.index.geo  # nothing overlaid
        query = QUERY | {"postal_code": "10209"}
        assert _codes(resolve(follower.index, resolve_query(query))) == ["DE:COURT-0"]
    finally:
        await follower.stop()


async def test_a_failing_builder_is_tried_again_less_and_less_often(
    settings: Settings, services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renewal that fails (the builder exits, the disk is full) is tried again after
    0.1, 0.2, 0.4 … s here (seconds to minutes in service), not at every look."""
    from cdb_service.lookup import follower as following

    monkeypatch.setattr(following, "RENEW_LOOK_S", 0.05)
    await _registry(services, courts=1)
    shared = _shared(settings, tmp_path / "lookup-index.snap")
    follower = IndexFollower(services.settings, interval=0.05, shared=shared,
                             renew_every_s=0.1)  # fmt: skip
    await follower.start()
    tries: list[float] = []

    def failing() -> None:
        tries.append(0.0)
        raise RuntimeError("the lookup snapshot's builder exited with 1")

    monkeypatch.setattr(shared, "build_file", failing)
    try:
        await _court(services, 1)  # the feed moves past the snapshot: a renewal is due
        await asyncio.sleep(2)
        assert 2 <= len(tries) <= 6  # at every look (0.05 s): about 30
    finally:
        await follower.stop()
