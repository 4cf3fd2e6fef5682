"""Writes name their revision; reads with `min_revision` wait for it, bounded, then 503."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cdb_service.lookup import follower as follower_module
from cdb_service.lookup.follower import IndexFollower
from cdb_service.lookup.index import LookupIndex
from cdb_service.services import Services
from cdb_service.settings import Settings
from tests.support import factories
from tests.support.api import Api, build

pytestmark = pytest.mark.serial  # measures time under load: runs alone

V1 = "/api/v1"
WAIT_S = 0.3


@pytest.fixture
async def api_short_wait(settings: Settings, services: Services) -> AsyncIterator[Api]:
    update = {"min_revision_wait_s": WAIT_S, "retry_after_s": 4}
    async with build(settings.model_copy(update=update)).running() as api:
        yield api


async def test_writes_carry_their_revision_and_reads_wait_for_min_revision(
    api_short_wait: Api,
) -> None:
    api = api_short_wait
    async with api.client("admin-de") as admin:
        created = await admin.post(f"{V1}/authorities", json=factories.authority())
        assert created.status_code == 201
        revision = int(created.headers["cdb-revision"])
        assert revision == created.json()["revision"] == 1
        url = f"{V1}/authorities/{created.json()['id']}"
        for path in (url, f"{url}/history", f"{V1}/authorities", f"{V1}/changes?since=0"):
            sep = "&" if "?" in path else "?"
            seen = await admin.get(f"{path}{sep}min_revision={revision}")
            assert seen.status_code == 200, (path, seen.text)
        resolve = (f"{V1}/resolve?country=DE&instrument=eio&competence=execute"
                   f"&min_revision={revision}")  # fmt: skip
        assert (await admin.get(resolve)).status_code == 200

        # A revision no write has made is the client's mistake: 422 at once, naming the
        # head, not a wait and a 5xx.
        started = time.monotonic()
        ahead = await admin.get(f"{url}?min_revision={revision + 5}")
        assert ahead.status_code == 422, ahead.text
        assert time.monotonic() - started < WAIT_S
        assert f"after the head revision {revision}" in ahead.json()["detail"]
        resolve_ahead = await admin.get(resolve.replace(f"={revision}", f"={revision + 5}"))
        assert resolve_ahead.status_code == 422

        # Every kind of write names its revision: PATCH, revert and delete too.
        patched = await admin.request("PATCH", url, json={"names": {"de": "Neu"}},
                                      headers={"If-Match": created.headers["etag"]})  # fmt: skip
        assert patched.status_code == 200 and patched.headers["cdb-revision"] == "2"
        reverted = await admin.post(f"{url}/revert?version=1",
                                    headers={"If-Match": patched.headers["etag"]})  # fmt: skip
        assert reverted.status_code == 200 and reverted.headers["cdb-revision"] == "3"
        deleted = await admin.delete(url, headers={"If-Match": reverted.headers["etag"]})
        assert deleted.status_code == 204 and deleted.headers["cdb-revision"] == "4"


async def test_a_read_the_index_cannot_serve_in_time_is_a_503_and_the_feed_is_not_held(
    api_short_wait: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This worker's index is held back (its catch-up hangs, as on a stalled database):
    a resolve that must show R waits its bound, then 503 with Retry-After; the feed and
    the extract read the database, which has R: 200. Released, the same resolve is served."""
    api = api_short_wait
    follower: IndexFollower = api.app.state["lookup"]
    caught_up = follower_module.catch_up
    entered, release = threading.Event(), threading.Event()

    async def held_back(index: LookupIndex, sessions: Any, *rest: Any) -> tuple[LookupIndex, int]:
        entered.set()
        await asyncio.to_thread(release.wait, 30)
        return await caught_up(index, sessions, *rest)

    monkeypatch.setattr(follower_module, "catch_up", held_back)
    # The follower's next poll hangs holding the catch-up: from now on the index stays.
    assert await asyncio.to_thread(entered.wait, 10)
    try:
        async with api.client("admin-de") as admin:
            created = await admin.post(f"{V1}/authorities", json=factories.authority())
            revision = int(created.headers["cdb-revision"])
            assert follower.index is not None and follower.index.revision < revision
            resolve = (f"{V1}/resolve?country=DE&instrument=eio&competence=execute"
                       f"&min_revision={revision}")  # fmt: skip
            started = time.monotonic()
            held = await admin.get(resolve)
            waited = time.monotonic() - started
            assert held.status_code == 503, held.text
            assert held.headers["content-type"].startswith("application/problem+json")
            assert held.headers["retry-after"] == "4"
            assert held.json()["min_revision"] == revision
            assert WAIT_S <= waited < WAIT_S + 2, waited
            feed = await admin.get(f"{V1}/changes?since=0&min_revision={revision}")
            assert feed.status_code == 200, feed.text
            assert [c["revision"] for c in feed.json()["changes"]] == [revision]
            extract = await admin.get(f"{V1}/extract?min_revision={revision}")
            assert extract.status_code == 200, extract.text
            assert created.json()["id"] in extract.text

            release.set()
            served = await admin.get(resolve)
            assert served.status_code == 200, served.text
            assert served.json()["revision"] >= revision
    finally:
        release.set()
