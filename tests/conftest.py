"""Fixtures: every registry test runs once on SQLite and once on PostgreSQL.

PostgreSQL: one database per test session, migrated once, emptied between tests.
SQLite: one migrated template file per session, copied for each test.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from cdb_service.db import migrate
from cdb_service.kernel.hash_chain import GENESIS
from cdb_service.metadata import metadata
from cdb_service.services import Services
from cdb_service.settings import Settings

PG_ADMIN_URL = os.environ.get("CDB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


def _pg_url(database: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


async def _pg_admin(sql: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


# The cyclic garbage collector runs only between tests. The in-process app now runs in the
# test's own loop and thread (tests/support/in_loop.py); a few peers still run a loop in a
# thread of their own (the mirror's sync test client, the stall proxy), and a collection
# in one thread that finalizes another loop's abandoned connections closes a socket under
# a selector that still watches it (asyncpg, segmentation fault).
gc.disable()


@pytest.fixture(autouse=True)
def _collect_between_tests() -> Iterator[None]:
    yield
    gc.collect()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = f"cdb_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(migrate.upgrade(Settings(database_url=_pg_url(name))))
        yield _pg_url(name)
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "cdb.sqlite3"
    asyncio.run(migrate.upgrade(Settings(database_url=f"sqlite:///{path}")))
    return path


def _tables_to_empty() -> list[str]:
    heads = {"registry_head", "audit_head"}
    return [t.name for t in reversed(metadata.sorted_tables) if t.name not in heads]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if "postgres_only" in request.keywords and request.param != "postgresql":
        pytest.skip("PostgreSQL only")
    return str(request.param)


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The backend's settings for an in-process app. Its lookup snapshot is built in a
    thread: hundreds of apps start in a run, and starting an interpreter for each build
    made the suite minutes longer. The child process is what the served workers
    (tests/ops/test_worker_replacement.py) and tests/lookup/test_shared_snapshot.py use."""
    if backend == "postgresql":
        url = request.getfixturevalue("pg_database")
        # The shared local server never hangs; on a busy 2-core machine a connection can
        # take longer than the 2 s a hung host is allowed. Tests of hung and dead hosts
        # set their own bounds (tests/db/test_failover.py, tests/ops/test_database_faults.py).
        return Settings(database_url=url, data_dir=tmp_path, auto_seed=False, auto_migrate=False,
                        db_host_timeout_s=30.0, db_connect_timeout_s=30.0,
                        lookup_snapshot_builder="thread")  # fmt: skip
    path = tmp_path / "cdb.sqlite3"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    return Settings(database_url=f"sqlite:///{path}", data_dir=tmp_path, auto_seed=False,
                    auto_migrate=False, lookup_snapshot_builder="thread")  # fmt: skip


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    services = Services.open(settings)
    if services.engine.dialect.name == "postgresql":
        # DELETE, not TRUNCATE: the tables a test leaves hold a few rows, and TRUNCATE's
        # new files for every table cost 0.3-0.7 s a test against DELETE's few ms.
        async with services.engine.begin() as connection:
            for name in _tables_to_empty():
                await connection.execute(text(f'DELETE FROM "{name}"'))
            sequences = await connection.scalars(
                text(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema() "
                    "AND sequencename NOT IN ('registry_head_id_seq', 'audit_head_id_seq')"
                )
            )
            for sequence in sequences.all():
                await connection.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
            await connection.execute(text("UPDATE registry_head SET revision = 0"))
            await connection.execute(text(f"UPDATE audit_head SET seq = 0, hash = '{GENESIS}'"))
    try:
        yield services
    finally:
        await services.close()


@pytest.fixture
async def api(settings: Settings, services: Services) -> AsyncIterator[Any]:
    """The app on this backend's (emptied) database, with certificate-presenting clients."""
    from tests.support.api import build

    async with build(settings).running() as built:
        yield built
