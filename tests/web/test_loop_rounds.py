"""Under load a worker's event loop turns round often: a timer, a flush or the lag
monitor waits for a few requests' work, not for every busy connection's; requests are
served in the order they came, and one that gives up waiting holds no one up.

Counted, not timed: what is seen is how many requests did their work before a callback
scheduled right after they all arrived ran, as a timer due then would.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cdb_service.web.loop_rounds import LoopRounds


class _Recording:
    """An app whose requests each do their work (in one step, as a look-up does) and say
    in which order."""

    def __init__(self) -> None:
        self.served: list[int] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.served.append(scope["n"])


def _request(n: int) -> dict[str, Any]:
    return {"type": "http", "n": n}


async def _arrive(app: Any, count: int) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(app(_request(n), None, None)) for n in range(count)]


async def test_a_callback_waits_for_a_rounds_worth_of_requests_not_for_all() -> None:
    recorded = _Recording()
    app = LoopRounds(recorded, per_round=4)
    tasks = await _arrive(app, 64)
    seen: list[int] = []
    asyncio.get_running_loop().call_soon(lambda: seen.append(len(recorded.served)))
    await asyncio.gather(*tasks)
    assert seen == [4]  # without the rounds, all 64 would have gone first
    assert recorded.served == list(range(64))  # and every one in the order it came


async def test_a_worker_that_is_not_busy_serves_at_once() -> None:
    recorded = _Recording()
    app = LoopRounds(recorded, per_round=4)
    for n in range(10):  # one at a time, never 4 in one round
        await app(_request(n), None, None)
        assert recorded.served[-1] == n
    assert not app._rounds().waiting


async def test_a_request_that_gives_up_waiting_holds_no_one_up() -> None:
    recorded = _Recording()
    app = LoopRounds(recorded, per_round=2)
    tasks = await _arrive(app, 8)
    await asyncio.sleep(0)  # two served, six waiting
    tasks[3].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert recorded.served == [0, 1, 2, 4, 5, 6, 7]


def test_the_app_started_again_on_a_new_loop_serves() -> None:
    """Waiters of a loop that closed (a worker's app started again, a test's loop) do not
    keep their turns on the next one."""
    recorded = _Recording()
    app = LoopRounds(recorded, per_round=2)

    async def abandoned() -> None:
        for task in await _arrive(app, 10):  # eight left waiting when the loop goes
            task.cancel()

    asyncio.run(abandoned())

    async def next_start() -> None:
        await asyncio.wait_for(asyncio.gather(*await _arrive(app, 5)), timeout=5)

    asyncio.run(next_start())
    assert recorded.served[-5:] == [0, 1, 2, 3, 4]


def test_a_loop_that_pauses_keeps_its_waiting_requests_while_another_serves() -> None:
    """One app on two loops (served from a thread beside a test's own loop): requests
    waiting on one loop are not lost when the other serves in between."""
    recorded = _Recording()
    app = LoopRounds(recorded, per_round=2)
    first = asyncio.new_event_loop()
    try:

        async def arrive_and_pause() -> list[asyncio.Task[None]]:
            tasks = await _arrive(app, 10)
            await asyncio.sleep(0)  # two served, eight waiting on this loop
            return tasks

        waiting = first.run_until_complete(arrive_and_pause())

        async def other() -> None:
            await asyncio.gather(*[app(_request(100 + n), None, None) for n in range(5)])

        asyncio.run(other())  # meanwhile, another loop serves
        first.run_until_complete(asyncio.wait_for(asyncio.gather(*waiting), timeout=5))
    finally:
        first.close()
    assert recorded.served == [0, 1, 100, 101, 102, 103, 104, *range(2, 10)]


async def test_lifespan_and_other_scopes_pass_untouched() -> None:
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    app = LoopRounds(inner, per_round=1)
    await asyncio.gather(*(app({"type": kind}, None, None) for kind in ("lifespan",) * 5))
    assert seen == ["lifespan"] * 5 and app._rounds().left == 1
