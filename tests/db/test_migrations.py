"""Migrations go up, down and up again, and the models agree with them (no drift)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from cdb_service.db import migrate
from cdb_service.db.engine import create_engine
from cdb_service.metadata import metadata
from cdb_service.settings import Settings
from tests.conftest import PG_ADMIN_URL, _pg_admin, _pg_url


async def _drift(settings: Settings) -> list[object]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
    finally:
        await engine.dispose()


async def _tables(settings: Settings) -> set[str]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: set(sync.dialect.get_table_names(sync)))
            return set(names) - {"alembic_version"}
    finally:
        await engine.dispose()


@pytest.fixture
async def fresh_pg() -> Settings:  # type: ignore[misc]
    # Its own name: another run on the same server (a second checkout's suite) would
    # otherwise drop this one's database in the middle of a test.
    name = f"cdb_migrations_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _pg_admin(f'CREATE DATABASE "{name}"')
    yield Settings(database_url=_pg_url(name))
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_postgresql_upgrade_downgrade_upgrade_without_drift(fresh_pg: Settings) -> None:
    assert PG_ADMIN_URL
    await migrate.upgrade(fresh_pg)
    assert set(metadata.tables) == await _tables(fresh_pg)
    assert await _drift(fresh_pg) == []
    await migrate.downgrade(fresh_pg, "base")
    assert await _tables(fresh_pg) == set()
    await migrate.upgrade(fresh_pg)
    assert await _drift(fresh_pg) == []
    engine = create_engine(fresh_pg)
    try:
        assert await migrate.at_head(engine)
        async with engine.connect() as connection:
            head = await connection.scalar(text("SELECT revision FROM registry_head WHERE id = 1"))
        assert head == 0
    finally:
        await engine.dispose()


async def test_sqlite_models_and_migrations_agree(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.sqlite3'}")
    await migrate.upgrade(settings)
    assert await _drift(settings) == []
    await migrate.downgrade(settings, "base")
    assert await _tables(settings) == set()


async def _backfilled(settings: Settings) -> None:
    """Entries written before the search column get their search text from the migration,
    the same text a write gives them: re-importing them changes nothing."""
    from cdb_service.seeding.load import seed
    from cdb_service.services import Services

    await migrate.upgrade(settings)
    services = Services.open(settings)
    try:
        await seed(services.batches, services.sessions)
        await migrate.downgrade(settings, "0005")
        await migrate.upgrade(settings)
        async with services.engine.connect() as connection:
            text_of = await connection.scalar(
                text("SELECT search FROM authorities WHERE code = 'DE:COURT-MUNCHEN'")
            )
            missing = await connection.scalar(
                text("SELECT count(*) FROM jurisdiction_criteria WHERE search IS NULL")
            )
        assert "landgericht munchen i" in text_of and missing == 0
        again = await seed(services.batches, services.sessions)
        assert again.batch.revision is None
    finally:
        await services.close()


async def test_sqlite_search_text_backfill(tmp_path: Path) -> None:
    await _backfilled(Settings(database_url=f"sqlite:///{tmp_path / 'b.sqlite3'}",
                               data_dir=tmp_path, auto_seed=False))  # fmt: skip


async def test_postgresql_search_text_backfill(fresh_pg: Settings, tmp_path: Path) -> None:
    await _backfilled(fresh_pg.model_copy(update={"data_dir": tmp_path, "auto_seed": False}))


async def _persons_unsearchable(settings: Settings) -> None:
    """Migration 0013 takes named persons out of the search text every reader searches
    (into `search_full`) for entries written before it, and its downgrade puts them back."""
    from cdb_service.registry.kinds import KINDS
    from cdb_service.services import Services

    await migrate.upgrade(settings)
    services = Services.open(settings)
    kind = KINDS["national-members"]
    member = {"owner": "EJ", "ref": "EJ-PL-NM", "country": "PL", "role": "national-member",
              "contact": {"channel": "email", "value": "pl@eurojust.example.eu"},
              "person": {"name": "Grzegorz Brzęczyszczykiewicz"}}  # fmt: skip
    query = text("SELECT search, search_full FROM national_members WHERE ref = 'EJ-PL-NM'")
    try:
        await services.writes.create(kind, kind.schema.model_validate(member), "tests")
        await migrate.downgrade(settings, "0012")
        async with services.engine.connect() as connection:
            before = await connection.scalar(
                text("SELECT search FROM national_members WHERE ref = 'EJ-PL-NM'")
            )
        assert "brzeczyszczykiewicz" in before  # as 0006 to 0012 wrote it
        await migrate.upgrade(settings)
        async with services.engine.connect() as connection:
            search, full = (await connection.execute(query)).one()
        assert "brzeczyszczykiewicz" not in search and "eurojust.example" in search
        assert "brzeczyszczykiewicz" in full and "eurojust.example" in full
    finally:
        await services.close()


async def test_sqlite_persons_leave_the_search_text(tmp_path: Path) -> None:
    await _persons_unsearchable(Settings(database_url=f"sqlite:///{tmp_path / 'p.sqlite3'}",
                                         data_dir=tmp_path, auto_seed=False))  # fmt: skip


async def test_postgresql_persons_leave_the_search_text(fresh_pg: Settings, tmp_path: Path) -> None:
    await _persons_unsearchable(fresh_pg.model_copy(update={"data_dir": tmp_path,
                                                            "auto_seed": False}))  # fmt: skip


async def test_transliterations_enter_and_leave_the_search_text(tmp_path: Path) -> None:
    """Migration 0015 adds the German transliteration to entries written before it (a
    court in München is found by `muenchen`); its downgrade takes it out again."""
    from cdb_service.registry.kinds import KINDS
    from cdb_service.services import Services
    from tests.support import factories

    settings = Settings(database_url=f"sqlite:///{tmp_path / 't.sqlite3'}", data_dir=tmp_path,
                        auto_seed=False)  # fmt: skip
    await migrate.upgrade(settings)
    services = Services.open(settings)
    kind = KINDS["authorities"]
    court = factories.authority(code="DE:MUC", names={"de": "Amtsgericht München"})
    query = text("SELECT search FROM authorities WHERE code = 'DE:MUC'")
    try:
        await services.writes.create(kind, kind.schema.model_validate(court), "tests")
        await migrate.downgrade(settings, "0014")
        async with services.engine.connect() as connection:
            before = await connection.scalar(query)
        assert "munchen" in before and "muenchen" not in before
        await migrate.upgrade(settings)
        async with services.engine.connect() as connection:
            after = await connection.scalar(query)
        assert "munchen" in after and "muenchen" in after
    finally:
        await services.close()


async def _persons_move_apart(settings: Settings) -> None:
    """Migration 0017 moves plaintext persons into `personal_data` and rewrites the
    documents with refs; its downgrade puts the plaintext back."""
    from cdb_service.registry.kinds import KINDS
    from cdb_service.services import Services

    await migrate.upgrade(settings)
    services = Services.open(settings)
    kind = KINDS["national-members"]
    member = {"owner": "EJ", "ref": "EJ-LT-NM", "country": "LT", "role": "national-member",
              "contact": {"channel": "email", "value": "lt@eurojust.example.eu"},
              "person": {"name": "Vytautė Migracijaitė"}}  # fmt: skip
    stored = text("SELECT person FROM national_members")
    documents = text("SELECT document FROM entry_versions WHERE kind = 'national-members'")
    try:
        made = await services.writes.create(kind, kind.schema.model_validate(member), "tests")
        await migrate.downgrade(settings, "0016")
        async with services.engine.connect() as connection:
            plain = [str(v) for v in (await connection.scalars(stored)).all()]
            plain += [str(v) for v in (await connection.scalars(documents)).all()]
        assert all("Migracijaitė" in v for v in plain) and len(plain) == 2
        await migrate.upgrade(settings)
        async with services.engine.connect() as connection:
            sealed = [str(v) for v in (await connection.scalars(stored)).all()]
            sealed += [str(v) for v in (await connection.scalars(documents)).all()]
        assert not any("Migracijaitė" in v for v in sealed) and len(sealed) == 2
        read = await services.reads.get(kind, uuid.UUID(made.document["id"]))
        assert read is not None and read["person"]["name"] == "Vytautė Migracijaitė"
    finally:
        await services.close()


async def test_sqlite_persons_move_apart(tmp_path: Path) -> None:
    await _persons_move_apart(Settings(database_url=f"sqlite:///{tmp_path / 'm.sqlite3'}",
                                       data_dir=tmp_path, auto_seed=False))  # fmt: skip


async def test_postgresql_persons_move_apart(fresh_pg: Settings, tmp_path: Path) -> None:
    await _persons_move_apart(fresh_pg.model_copy(update={"data_dir": tmp_path,
                                                          "auto_seed": False}))  # fmt: skip
