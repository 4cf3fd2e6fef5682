"""Can the database take a write now? One tiny committed write, for readiness.

Reading is not enough: a full disk (or a read-only or failing volume) lets every
read through while every registry write fails. So readiness commits one row of its
own here. The table is not the registry: it takes no registry lock (a long import
does not make readiness fail on PostgreSQL) and makes no revision.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

from sqlalchemy import String, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import Base, DateTimeUTC

INSTANCE = f"{socket.gethostname()}:{os.getpid()}"[:100]


class WriteCheck(Base):
    """One row per serving process: when readiness last committed a write."""

    __tablename__ = "write_checks"
    instance: Mapped[str] = mapped_column(String(100), primary_key=True)
    checked_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)


async def check_write(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Commit one small write; raises what the database raises when it cannot."""
    now = dt.datetime.now(dt.UTC)
    async with sessions() as session, session.begin():
        # Rows of processes gone for a day are cleared on the way (restarts add rows).
        stale = now - dt.timedelta(days=1)
        await session.execute(
            delete(WriteCheck).where(WriteCheck.checked_at < stale, WriteCheck.instance != INSTANCE)
        )
        # An upsert: two readiness checks of one process at once must not collide.
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = insert(WriteCheck).values(instance=INSTANCE, checked_at=now)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[WriteCheck.instance], set_={"checked_at": now}
            )
        )
