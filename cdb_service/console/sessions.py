"""Console sessions, kept in the database so that every worker (and a restarted service)
knows them, and a sign-out in one worker is a sign-out in all.

The browser holds only a random token; the table holds its SHA-256, so a copy of the
table signs no one in. Two purposes share the table: a pending sign-in (the PKCE
verifier, state and nonce, for ten minutes) and a signed-in session (who, roles, the
CSRF token) with an idle and an absolute timeout.

A session writes only while the identity provider's access token would still be
accepted (`access_expires_at`): after that, the provider's refresh token (kept here,
never in the cookie, sealed with a key derived from the browser's token so that a copy
of the table holds none usable) renews it and the roles with it (`renew`), or the
person signs in again to write. Reading goes on until the idle or absolute timeout.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import secrets
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import String, delete, update
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


def _key(token: str) -> bytes:
    """The refresh token's key: from the browser's token, not the table's digest of it."""
    return hashlib.sha256(b"cdb console refresh token\0" + token.encode()).digest()


def seal(token: str, secret: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_key(token)).encrypt(nonce, secret.encode(), b"refresh")
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(token: str, sealed: Any) -> str | None:
    if not isinstance(sealed, str):
        return None
    try:
        raw = base64.urlsafe_b64decode(sealed)
        return AESGCM(_key(token)).decrypt(raw[:12], raw[12:], b"refresh").decode()
    except (ValueError, InvalidTag):
        return None


def writes_lapsed(data: dict[str, Any], now: dt.datetime | None = None) -> bool:
    """Has the access token of this session expired (or was none recorded)? Then the
    session may read but not write until it is renewed or the person signs in again."""
    expires = data.get("access_expires_at")
    if not isinstance(expires, int | float):
        return True
    return (now or utcnow()).timestamp() >= expires


@dataclass(frozen=True)
class Session:
    token: str
    csrf: str
    data: dict[str, Any]

    @property
    def may_write(self) -> bool:
        return not writes_lapsed(self.data)

    @property
    def renewable(self) -> bool:
        return "refresh" in self.data


# Given the session's data and its refresh token: the renewed data and the refresh token
# to keep (the provider may rotate it), or None when the provider refused the refresh
# token (it is then forgotten). An exception (provider unreachable) keeps it for later.
Renewer = Callable[[dict[str, Any], str], Awaitable[tuple[dict[str, Any], str] | None]]


@dataclass
class SessionStore:
    sessions: async_sessionmaker[AsyncSession]
    idle: dt.timedelta
    absolute: dt.timedelta
    # One renewal at a time per session in this worker (the row lock does it across
    # workers on PostgreSQL; SQLite has no row locks).
    _renewing: weakref.WeakValueDictionary[str, asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary, init=False, repr=False
    )

    async def _add(self, purpose: str, data: dict[str, Any], lifetime: dt.timedelta,
                   token: str | None = None) -> Session:  # fmt: skip
        token = token or secrets.token_urlsafe(32)
        csrf, now = secrets.token_urlsafe(32), utcnow()
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
        """The pending sign-in, once: it is deleted as it is read.

        One statement that writes first: on SQLite, a transaction that reads and then
        writes fails at once (SQLITE_BUSY_SNAPSHOT, a 503) when another writer commits
        in between, where a write waits its turn."""
        async with self.sessions() as session, session.begin():
            taken = await session.execute(
                delete(ConsoleSession)
                .where(ConsoleSession.token_hash == _digest(token),
                       ConsoleSession.purpose == SIGN_IN)
                .returning(ConsoleSession.data, ConsoleSession.expires_at)
            )  # fmt: skip
            row = taken.first()
        return dict(row.data) if row is not None and row.expires_at > utcnow() else None

    async def open(self, data: dict[str, Any], refresh_token: str | None = None) -> Session:
        if not refresh_token:
            return await self._add(SESSION, data, self.absolute)
        # The sealing key comes from the cookie's token: chosen here, before the row.
        token = secrets.token_urlsafe(32)
        return await self._add(SESSION, data | {"refresh": seal(token, refresh_token)},
                               self.absolute, token)  # fmt: skip

    async def find(self, token: str) -> Session | None:
        """The live session of this token; an idle or too old one is ended here.

        Read, then written (ended or touched) by statements of their own that write
        first (see `take_sign_in`): a page view is not refused because another write
        committed while it read."""
        now, digest = utcnow(), _digest(token)
        async with self.sessions() as session, session.begin():
            row = await session.get(ConsoleSession, digest)
            if row is None or row.purpose != SESSION:
                return None
            ended = row.expires_at <= now or row.seen_at + self.idle <= now
            touch = now - row.seen_at >= min(TOUCH_EVERY, self.idle / 4)
            found = Session(token, row.csrf, dict(row.data))
        if ended:
            await self.close(token)
            return None
        if touch:
            async with self.sessions() as session, session.begin():
                await session.execute(update(ConsoleSession)
                                      .where(ConsoleSession.token_hash == digest)
                                      .values(seen_at=now))  # fmt: skip
        return found

    async def renew(self, token: str, renewer: Renewer) -> Session | None:
        """The session with a fresh access token, if its refresh token gets one.

        The row is locked while the provider is asked, so that two requests of one
        session do not both spend the refresh token (a provider that rotates them would
        see a replay and end the grant); the second finds the first's result."""
        lock = self._renewing.setdefault(_digest(token), asyncio.Lock())
        async with lock, self.sessions() as session, session.begin():
            row = await session.get(ConsoleSession, _digest(token), with_for_update=True)
            if row is None or row.purpose != SESSION or row.expires_at <= utcnow():
                return None
            data = dict(row.data)
            refresh = unseal(token, data.get("refresh"))
            if not writes_lapsed(data) or refresh is None:
                return Session(token, row.csrf, data)
            try:
                renewed = await renewer(data, refresh)
            except Exception:  # the provider did not answer: lapsed for now, tried again later
                return Session(token, row.csrf, data)
            if renewed is None:
                data.pop("refresh", None)
            else:
                data = renewed[0] | {"refresh": seal(token, renewed[1])}
            row.data = data
            return Session(token, row.csrf, data)

    async def close(self, token: str) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                delete(ConsoleSession).where(ConsoleSession.token_hash == _digest(token))
            )
