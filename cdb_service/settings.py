"""One typed settings object, read from `CDB_*` environment variables."""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Profile(StrEnum):
    DEV = "dev"
    PROD = "prod"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDB_", extra="ignore")

    profile: Profile = Profile.DEV
    data_dir: Path = Path("var")
    # Empty means the embedded default: a SQLite file under `data_dir`.
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=1, le=65535)
    log_level: str = "INFO"
    # Apply migrations and load the seed data on start (dev convenience; off in prod).
    auto_migrate: bool | None = None
    auto_seed: bool | None = None
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    db_pool_size: int = Field(default=10, ge=1)
    # Readiness warns when the oldest country of the gazetteer was loaded longer ago.
    gazetteer_max_age_days: int = Field(default=400, ge=1)

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if value and not value.startswith(("postgresql", "sqlite")):
            raise ValueError("must be a postgresql:// or sqlite:// URL")
        return value

    @cached_property
    def effective_database_url(self) -> str:
        """The SQLAlchemy async URL: asyncpg for PostgreSQL, aiosqlite for SQLite."""
        url = self.database_url or f"sqlite:///{self.data_dir / 'cdb.sqlite3'}"
        scheme, _, rest = url.partition("://")
        if scheme in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
            scheme = "postgresql+asyncpg"
        elif scheme == "sqlite":
            scheme = "sqlite+aiosqlite"
        return f"{scheme}://{rest}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def should_migrate(self) -> bool:
        return self.auto_migrate if self.auto_migrate is not None else self.profile is Profile.DEV

    @property
    def should_seed(self) -> bool:
        return self.auto_seed if self.auto_seed is not None else self.profile is Profile.DEV
