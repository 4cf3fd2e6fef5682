"""Personal data kept apart so that it can be erased (Annex I 5.5, 5.6; Regulation
2018/1725 art. 4(1)(e), storage limitation) while history and every chain still verify.

A kind's private fields (`KindSpec.private_fields`: a named person) are never stored in
its current table or its entry versions as they are: each value is a row of
`personal_data`, and the documents carry `{"$personal": ref}` in its place. The ref is
the SHA-256 of a random salt and the value's canonical JSON; the salt is kept in the row,
so while the row exists the value can be checked against the ref, and once it is
deleted (erasure) the ref says nothing: a guessed name cannot be tried against it.

Every read resolves the refs of the documents it shows (`unseal`, one query per batch of
documents) before `Viewer.visible` / `policy.redact` decide who sees them; a ref whose
row is gone reads as `ERASED`. The change feed, history, extracts and the audit trail
are computed over what is stored, so erasing a row changes nothing they hold.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import GUID, Base, DateTimeUTC, JsonB, utcnow

MARK = "$personal"
ERASED = "[erased]"
_CHUNK = 500


class PersonalData(Base):
    __tablename__ = "personal_data"
    ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    entry_id: Mapped[uuid.UUID] = mapped_column(GUID, index=True)
    field: Mapped[str] = mapped_column(String(60))
    salt: Mapped[str] = mapped_column(String(64))
    value: Mapped[Any] = mapped_column(JsonB, nullable=False)
    stored_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC, default=utcnow)


def canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def digest(salt: str, value: Any) -> str:
    return hashlib.sha256(f"{salt}\n{canonical(value)}".encode()).hexdigest()


def ref_of(value: Any) -> str | None:
    """The ref a stored value carries, or None when it is not a sealed value."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get(MARK), str):
        return str(value[MARK])
    return None


def is_empty(value: Any) -> bool:
    return value in (None, "", [], {})


def new_row(kind: str, entry_id: uuid.UUID, field: str, value: Any,
            now: dt.datetime) -> dict[str, Any]:  # fmt: skip
    salt = secrets.token_hex(16)
    return {"ref": digest(salt, value), "kind": kind, "entry_id": entry_id, "field": field,
            "salt": salt, "value": value, "stored_at": now}  # fmt: skip


def refs_in(documents: Iterable[Mapping[str, Any]]) -> set[str]:
    found: set[str] = set()
    for document in documents:
        for value in document.values():
            ref = ref_of(value)
            if ref is not None:
                found.add(ref)
    return found


async def values_of(session: AsyncSession, refs: Iterable[str]) -> dict[str, Any]:
    """The stored values of these refs (an erased ref is absent)."""
    wanted = sorted(set(refs))
    found: dict[str, Any] = {}
    for start in range(0, len(wanted), _CHUNK):
        rows = await session.execute(
            select(PersonalData.ref, PersonalData.value).where(
                PersonalData.ref.in_(wanted[start : start + _CHUNK])
            )
        )
        found.update({ref: value for ref, value in rows})
    return found


async def values_of_kind(session: AsyncSession, kind: str) -> dict[str, Any]:
    """Every stored value of one kind (a few thousand named persons at most): for a stream
    that resolves as it goes, without a query per entry."""
    rows = await session.execute(
        select(PersonalData.ref, PersonalData.value).where(PersonalData.kind == kind)
    )
    return {ref: value for ref, value in rows}


def shown(document: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """`document` with each sealed value resolved from `values`, `ERASED` where gone."""
    out = None
    for name, value in document.items():
        ref = ref_of(value)
        if ref is not None:
            out = out if out is not None else dict(document)
            out[name] = values.get(ref, ERASED)
    return out if out is not None else document


async def unseal(session: AsyncSession, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The documents as their readers may see them once the policy allows: refs resolved."""
    refs = refs_in(documents)
    if not refs:
        return documents
    values = await values_of(session, refs)
    return [shown(d, values) for d in documents]


async def unseal_in(sessions: async_sessionmaker[AsyncSession],
                    documents: list[dict[str, Any]]) -> list[dict[str, Any]]:  # fmt: skip
    """`unseal` in a session of its own (after the read that gave the documents)."""
    if not refs_in(documents):
        return documents
    async with sessions() as session:
        return await unseal(session, documents)


class Sealer:
    """The write side, held by one revision's writer: a private field's plain value becomes
    a ref (a row to insert with the revision); a value unchanged since the version before
    keeps that version's ref, so an entry's unchanged person is one row, not one per version."""

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []

    def seal(self, kind: str, entry_id: uuid.UUID, fields: Iterable[str],
             values: dict[str, Any], now: dt.datetime,
             kept: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        """`values` with its private fields sealed; `kept`: the previous version's refs by
        their values' canonical text (so an unchanged value keeps its ref)."""
        out = values
        for name in fields:
            if name not in values:
                continue
            value = values[name]
            if is_empty(value) or ref_of(value) is not None or value == ERASED:
                if value == ERASED:  # a document read back after erasure: nothing to keep
                    out = out if out is not values else dict(values)
                    out[name] = None
                continue
            ref = (kept or {}).get(canonical(value))
            if ref is None:
                row = new_row(kind, entry_id, name, value, now)
                self.pending.append(row)
                ref = row["ref"]
            out = out if out is not values else dict(values)
            out[name] = {MARK: ref}
        return out

    def take(self) -> list[dict[str, Any]]:
        taken, self.pending = self.pending, []
        return taken


async def kept_refs(session: AsyncSession, row: Any, fields: Iterable[str]) -> dict[str, Any]:
    """An entry's current refs by their values' canonical text (see `Sealer.seal`)."""
    refs = [r for r in (ref_of(getattr(row, name, None)) for name in fields) if r]
    if not refs:
        return {}
    values = await values_of(session, refs)
    return {canonical(value): ref for ref, value in values.items()}
