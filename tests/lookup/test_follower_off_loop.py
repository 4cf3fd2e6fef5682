"""The follower leaves the worker's event loop to requests.

A large page of the feed (one batch that writes many criteria with many geo keys) is
read, decoded and applied twice from the same index: once inline on this loop, as the
follower used to, and once by the follower (on its own thread). A coroutine that only
sleeps and wakes measures how late this loop wakes it meanwhile: inline it waits for the
whole application; with the follower, for no more than the interpreter's lock between
its steps. Both measured in the same test, so it cannot pass on a fast machine alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from cdb_service.lookup import snapshot
from cdb_service.lookup.follower import IndexFollower
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.batches import BatchItem
from cdb_service.registry.store.validation import validate
from cdb_service.services import Services
from tests.support import factories

CRITERIA, KEYS_EACH = 150, 200  # one page: 30,000 geo keys changed in one revision
TICK_S = 0.002


async def _latest_wake(work: Awaitable[object]) -> float:
    """The most this loop was late waking a sleeper while `work` ran (seconds)."""
    done = asyncio.Event()
    latest = 0.0

    async def sleeper() -> None:
        nonlocal latest
        while not done.is_set():
            asked = time.monotonic()
            await asyncio.sleep(TICK_S)
            latest = max(latest, time.monotonic() - asked - TICK_S)

    watching = asyncio.create_task(sleeper())
    await asyncio.sleep(0)  # the sleeper is asleep before the work starts
    try:
        await work
    finally:
        done.set()
        await watching
    return latest


async def _large_page(services: Services) -> None:
    authority, criterion = KINDS["authorities"], KINDS["jurisdiction-criteria"]
    await services.writes.create(authority, validate(authority, factories.authority()), "test")
    items = []
    for n in range(CRITERIA):
        geo = [{"scheme": "postal-code", "code": f"{10000 + n * KEYS_EACH + k}"}
               for k in range(KEYS_EACH)]  # fmt: skip
        body = factories.criterion(ref=f"c{n}", geo=geo)
        items.append(BatchItem.of(criterion, validate(criterion, body), n))
    await services.batches.apply(items, "loader")


async def test_a_large_page_is_applied_without_holding_the_event_loop(
    services: Services,
) -> None:
    follower = IndexFollower(services.settings)  # not started: no poll of its own
    await follower.refresh()  # built, on its thread
    try:
        before = follower.index
        assert before is not None and before.revision == 0
        await _large_page(services)
        head = await services.reads.head()

        inline = await _latest_wake(snapshot.catch_up(before, services.sessions))
        follower.index = before  # the same page again, by the follower
        off_loop = await _latest_wake(follower.refresh())

        after = follower.index
        assert after is not before and after.revision == head  # swapped in, whole
        assert len(after.criteria) == CRITERIA and after.slots_at("DEp10000")
        assert before.revision == 0 and not before.criteria  # what requests read: untouched
        assert off_loop * 2 < inline, (off_loop, inline)
    finally:
        await follower.stop()
