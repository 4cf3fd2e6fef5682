"""What a running app holds: settings, the engine, the session factory and the services."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cdb_service.db.engine import create_engine, session_factory
from cdb_service.registry.service import RegistryService
from cdb_service.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    registry: RegistryService

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings)
        sessions = session_factory(engine)
        return cls(settings, engine, sessions, RegistryService(sessions))

    async def close(self) -> None:
        await self.engine.dispose()
