"""Idempotency keys for creates: a retried POST returns the first result, never a duplicate.

The key is claimed inside the writing transaction, under the registry write
lock, so two concurrent requests with the same key cannot both create.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import GUID, Base, DateTimeUTC, JsonB, utcnow

RETENTION = dt.timedelta(hours=48)  # at least the promised 24 h


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    caller: Mapped[str] = mapped_column(String(300), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))
    entry_id: Mapped[uuid.UUID] = mapped_column(GUID)
    document: Mapped[dict[str, Any]] = mapped_column(JsonB)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC, index=True)


@dataclass(frozen=True)
class IdempotentRequest:
    caller: str  # the key is bound to who sent it
    key: str
    request_hash: str

    @classmethod
    def of(cls, caller: str, key: str, method: str, path: str, body: bytes) -> IdempotentRequest:
        digest = hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()
        return cls(caller, key, digest)


class Replay(Exception):
    """The key was used before: carries what the first request got (read in-session)."""

    def __init__(self, stored: IdempotencyKey) -> None:
        super().__init__(stored.key)
        self.request_hash = stored.request_hash
        self.document = dict(stored.document)


async def claim(session: AsyncSession, request: IdempotentRequest) -> IdempotencyKey | None:
    """The stored first result for this key, if any (purging expired keys first)."""
    await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - RETENTION)
    )
    return await session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.caller == request.caller, IdempotencyKey.key == request.key
        )
    )


def remember(session: AsyncSession, request: IdempotentRequest, kind: str,
             document: dict[str, Any]) -> None:  # fmt: skip
    session.add(
        IdempotencyKey(
            caller=request.caller, key=request.key, request_hash=request.request_hash,
            status=201, kind=kind, entry_id=uuid.UUID(document["id"]), document=document,
            created_at=utcnow(),
        )
    )  # fmt: skip
