"""An in-process client that runs the app in the test's own event loop and thread.

Litestar's `AsyncTestClient` runs the app (its lifespan, its background tasks, every
request) in an event loop of its own, in a second thread. Tests also reach into the app's
parts from their loop (its engine, its refusal buffer, its index), and the garbage
collector finalizes one loop's abandoned connections in whichever thread it runs: three
full runs crashed a worker inside asyncpg (segmentation fault) that way. Here there is one
loop and one thread, so nothing the app owns is ever touched from another thread.

The ASGI side is httpx's own `ASGITransport`; the lifespan is driven the way a server
drives it (ASGI lifespan protocol: startup, then shutdown, each answered by the app).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

# What Litestar's test client puts in the scope, kept so that tests read the same source.
CLIENT = ("testclient", 50000)


async def _answer(answers: asyncio.Queue[dict[str, Any]], task: asyncio.Task[None]
                  ) -> dict[str, Any]:  # fmt: skip
    """The app's next lifespan message, or its exception if it ended instead."""
    waiting = asyncio.ensure_future(answers.get())
    await asyncio.wait({waiting, task}, return_when=asyncio.FIRST_COMPLETED)
    if waiting.done():
        return waiting.result()
    waiting.cancel()
    task.result()  # raises what ended the lifespan
    raise RuntimeError("the app ended its lifespan without answering")


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Start the app as a server would, and stop it on leaving."""
    asks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.create_task(app(scope, asks.get, answers.put), name="test-lifespan")
    await asks.put({"type": "lifespan.startup"})
    answer = await _answer(answers, task)
    if answer["type"] != "lifespan.startup.complete":
        await asyncio.gather(task, return_exceptions=True)
        raise RuntimeError(f"the app did not start: {answer.get('message', answer['type'])}")
    try:
        yield
    finally:
        await asks.put({"type": "lifespan.shutdown"})
        answer = await _answer(answers, task)
        await task
        if answer["type"] != "lifespan.shutdown.complete":
            raise RuntimeError(f"the app did not stop: {answer.get('message', answer['type'])}")


@asynccontextmanager
async def app_client(app: Any, base_url: str = "http://testserver.local"
                     ) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    """The app started in this loop, and an httpx client that calls it in process."""
    async with lifespan(app):
        transport = httpx.ASGITransport(app=app, client=CLIENT)
        async with httpx.AsyncClient(transport=transport, base_url=base_url,
                                     headers={"user-agent": "testclient"},
                                     follow_redirects=True) as http:  # fmt: skip
            yield http
