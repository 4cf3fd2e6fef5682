"""Console sessions, kept in the database so that every worker (and a restarted service)
knows them, and a sign-out in one worker is a sign-out in all.

The browser holds only a random token; the table holds its SHA-256, so a copy of the
table signs no one in. Two purposes share the table: a pending sign-in (the PKCE
verifier, state and nonce, for ten minutes) and a signed-in session (who, roles, the
CSRF token) with an idle and an absolute timeout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import Base, DateTimeUTC, JsonB, utcnow

SIGN_IN, SESSION = "sign-in", "session"
SIGN_IN_LIFETIME = dt.timedelta(minutes=10)
# seen_at is written at most this often (or a quarter of the idle timeout): not one
# write per page view.
TOUCH_EVERY = dt.timedelta(seconds=15)


class ConsoleSession(Base):
    __tablename__ = "console_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(10))
    data: Mapped[dict[str, Any]] = mapped_column(JsonB)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    seen_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC, index=True)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    token: str
    csrf: str
    data: dict[str, Any]


@dataclass
class SessionStore:
    sessions: async_sessionmaker[AsyncSession]
    idle: dt.timedelta
    absolute: dt.timedelta

    async def _add(self, purpose: str, data: dict[str, Any], lifetime: dt.timedelta) -> Session:
        token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), utcnow()
        async with self.sessions() as session, session.begin():
            # Expired rows go on the way: the table holds live sessions only.
            await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
            session.add(ConsoleSession(token_hash=_digest(token), purpose=purpose, data=data,
                                       csrf=csrf, created_at=now, seen_at=now,
                                       expires_at=now + lifetime))  # fmt: skip
        return Session(token, csrf, data)

    async def begin_sign_in(self, data: dict[str, Any]) -> Session:
        return await self._add(SIGN_IN, data, SIGN_IN_LIFETIME)

    async def take_sign_in(self, token: str) -> dict[str, Any] | None:
        """The pending sign-in, once: it is deleted as it is read."""
        async with self.sessions() as session, session.begin():
            row = await session.get(ConsoleSession, _digest(token))
            if row is None or row.purpose != SIGN_IN:
                return None
            await session.delete(row)
            return dict(row.data) if row.expires_at > utcnow() else None

    async def open(self, data: dict[str, Any]) -> Session:
        return await self._add(SESSION, data, self.absolute)

    async def find(self, token: str) -> Session | None:
        """The live session of this token; an idle or too old one is ended here."""
        now = utcnow()
        async with self.sessions() as session, session.begin():
            row = await session.get(ConsoleSession, _digest(token))
            if row is None or row.purpose != SESSION:
                return None
            if row.expires_at <= now or row.seen_at + self.idle <= now:
                await session.delete(row)
                return None
            if now - row.seen_at >= min(TOUCH_EVERY, self.idle / 4):
                row.seen_at = now
            return Session(token, row.csrf, dict(row.data))

    async def close(self, token: str) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                delete(ConsoleSession).where(ConsoleSession.token_hash == _digest(token))
            )
