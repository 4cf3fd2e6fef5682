"""Writes name their revision; reads with `min_revision` wait for it, bounded, then 503."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from cdb_service.services import Services
from cdb_service.settings import Settings
from tests.support import factories
from tests.support.api import Api, build

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
