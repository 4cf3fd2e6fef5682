"""The lookup index's freshness is how long a seen revision waits, not whether the head rests.

Under steady writes the head never stands still; an index that applies each revision
within a poll is fresh all the same. Readiness (`ops.health`) fails only when a seen
revision has waited longer than the limit, or when the follower has stopped looking.
"""

from __future__ import annotations

import time
from typing import Any, cast

from cdb_service.lookup import snapshot
from cdb_service.lookup.follower import IndexFollower
from cdb_service.lookup.index import Freshness, LookupIndex
from cdb_service.ops.health import _lookup_check
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.services import Services
from cdb_service.settings import Settings
from tests.support import factories

POLL_S = 0.2
AUTH = KINDS["authorities"]


def test_steady_writes_that_are_applied_each_poll_are_fresh() -> None:
    """40 s of a head that moves between every look: the lag never passes one poll."""
    fresh = Freshness(checked_at=0.0)
    applied = head = 0
    worst = 0.0
    for step in range(int(40 / POLL_S)):
        now = step * POLL_S
        head += 3  # ~15 writes/s: the head has moved at every single look
        fresh.saw(head, applied, now)
        worst = max(worst, fresh.lag(now + POLL_S / 2))  # a readiness poll mid-catch-up
        applied = head
        fresh.caught_up_to(head, applied)
        worst = max(worst, fresh.lag(now + POLL_S))
    assert worst <= POLL_S


def test_a_seen_revision_left_unapplied_ages_until_it_is_applied() -> None:
    fresh = Freshness(checked_at=0.0)
    fresh.saw(head=10, applied=5, now=1.0)
    fresh.saw(head=12, applied=5, now=2.0)  # still behind: counted from the first sight
    assert fresh.lag(13.0) == 12.0
    fresh.caught_up_to(head=10, applied=10)  # part of what was seen: still behind
    assert fresh.lag(13.0) == 0.0  # everything up to the head this look saw is in
    fresh.saw(head=12, applied=10, now=14.0)
    assert fresh.lag(14.5) == 0.5


def test_readiness_fails_on_lag_and_degrades_while_the_database_is_away() -> None:
    settings = Settings(lookup_max_lag_s=10, lookup_max_stale_s=60)
    follower = IndexFollower(settings=cast(Any, None), index=LookupIndex(revision=7))
    assert follower.index is not None
    now = time.monotonic()
    follower.index.freshness = Freshness(checked_at=now)
    assert _lookup_check(settings, follower)["status"] == "pass"
    follower.index.freshness = Freshness(checked_at=now, behind_since=now - 11)
    assert _lookup_check(settings, follower)["status"] == "fail"
    # No sync for 11 s (the database does not answer): look-ups answer from memory.
    follower.index.freshness = Freshness(checked_at=now - 11)
    assert _lookup_check(settings, follower)["status"] == "warn"
    follower.index.freshness = Freshness(checked_at=now - 61)  # past CDB_LOOKUP_MAX_STALE_S
    assert _lookup_check(settings, follower)["status"] == "fail"
    assert _lookup_check(settings, IndexFollower(settings=cast(Any, None)))["status"] == "fail"


async def test_catch_up_on_the_database_leaves_no_lag(services: Services) -> None:
    index = await snapshot.build(services.sessions)
    for n in range(3):
        entry = validate(AUTH, factories.authority(code=f"DE:F-{n}"))
        await services.writes.create(AUTH, entry, "test")
    index, _ = await snapshot.catch_up(index, services.sessions)
    assert index.revision == await services.reads.head() == 3
    assert index.freshness.lag(time.monotonic()) == 0.0
