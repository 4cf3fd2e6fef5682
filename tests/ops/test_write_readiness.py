"""Write readiness (`/health/ready/write`) turns 503 when a write cannot commit, and look-up
readiness (`/health/ready`) stays 200 meanwhile, on PostgreSQL.

Issue 27: a stuck writer held the registry's head lock for 25 s; every write waited
10 s and failed while readiness said 200. Here a session of the test's own holds the
head lock, as that writer did; then the pool is emptied by connections the test holds.
(A database that is down, and a start without it, are in `test_readiness_outage.py`;
a full disk in `test_full_disk.py`.)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cdb_service.ops.write_ready import SHARED_S
from cdb_service.settings import Settings
from tests.support.api import Api, build

pytestmark = pytest.mark.postgres_only
SLACK_S = 0.5  # scheduling on a busy 2-core machine


async def _ready(api: Api, path: str) -> Any:
    assert api.http is not None
    return await api.http.get(path)


async def _until(api: Api, path: str, status: int, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        answer = await _ready(api, path)
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.1)


async def test_a_writer_holding_the_head_lock_makes_write_readiness_503_not_look_ups(
    settings: Settings, services: Any
) -> None:
    async with build(settings).running() as api:
        assert (await _ready(api, "/health/ready/write")).status_code == 200
        stuck = await asyncpg.connect(settings.database_url)
        try:
            transaction = stuck.transaction()
            await transaction.start()
            await stuck.execute("UPDATE registry_head SET revision = revision WHERE id = 1")
            await asyncio.sleep(SHARED_S)  # the last shared answer (200) has expired
            started = time.monotonic()
            write = await _ready(api, "/health/ready/write")
            took = time.monotonic() - started
            lookups = await _ready(api, "/health/ready")
            await transaction.rollback()
        finally:
            await stuck.close()
        # Within the lock wait (and the readiness budget), not after a write's 10 s.
        assert write.status_code == 503, write.text
        assert took <= settings.ready_lock_wait_s + SLACK_S, took
        assert write.headers["retry-after"] == str(settings.retry_after_s)
        assert "head lock" in write.json()["checks"]["database:writable"][0]["output"]
        assert lookups.status_code == 200, lookups.text
        assert lookups.json()["checks"]["lookup:age"][0]["status"] == "pass"
        # The writer gone, writes are ready again, without a restart.
        assert (await _until(api, "/health/ready/write", 200, 5)).status_code == 200


async def test_an_exhausted_pool_makes_write_readiness_503(settings: Settings,
                                                           services: Any) -> None:  # fmt: skip
    small = settings.model_copy(update={"db_pool_size": 1})
    async with build(small).running() as api:
        engine = api.app.state.engine
        assert isinstance(engine, AsyncEngine)
        held: list[AsyncConnection] = []
        try:
            capacity = engine.pool.size() + engine.pool._max_overflow  # type: ignore[attr-defined]
            for _ in range(capacity):  # every connection the pool may open, held
                held.append(await engine.connect())
            await asyncio.sleep(SHARED_S)
            write = await _ready(api, "/health/ready/write")
            lookups = await _ready(api, "/health/ready")
        finally:
            for connection in held:
                await connection.close()
        assert write.status_code == 503, write.text
        output = write.json()["checks"]["database:writable"][0]["output"]
        assert f"pool is exhausted: {capacity} of {capacity}" in output, output
        assert lookups.status_code == 200, lookups.text  # look-ups need no connection
        assert (await _until(api, "/health/ready/write", 200, 5)).status_code == 200
