"""Single-entry writes: create, replace, delete (with the owner's referrers on request).

Each call is one revision through `UnitOfWork`, validated whole before it commits,
so a write is either complete or absent. `column_values` is the one place a
document becomes column values (references resolved, owner kept, server fields
set); batches and kind-specific operations use it too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db.personal import unseal_in
from cdb_service.db.revisions import EntryModel, RevisionWriter, StaleVersionError, WrittenVersion
from cdb_service.kernel.folding import search_text
from cdb_service.kernel.problems import FieldError, conflict, invalid, not_found
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.schemas import EntryIn
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store import idempotency as idempotency_keys
from cdb_service.registry.store.idempotency import IdempotentRequest
from cdb_service.registry.store.participation import owner_errors
from cdb_service.registry.store.references import EntryIndex, Named
from cdb_service.registry.store.unit_of_work import UnitOfWork
from cdb_service.security.audit import Who, as_who


@dataclass
class Created:
    document: dict[str, Any]
    replayed: bool


class EntryWrites:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def create(
        self,
        kind: KindSpec,
        document: EntryIn,
        who: Who | str,
        entry_id: uuid.UUID | None = None,
        idempotency: IdempotentRequest | None = None,
        *,
        dry_run: bool = False,
    ) -> Created:
        """Create an entry; with an idempotency key, a repeat returns the first result.
        `dry_run` does every check and write, then rolls back (a preview)."""
        try:
            async with UnitOfWork(self.sessions, who, f"create {kind.name}",
                                  commit=not dry_run) as writer:  # fmt: skip
                if idempotency is not None:
                    stored = await idempotency_keys.claim(writer.session, idempotency)
                    if stored is not None:
                        raise idempotency_keys.Replay(stored)
                values = await _prepare(writer, kind, document, None, as_who(who).operator)
                written = await writer.create(kind, document.owner, values, entry_id)
                if idempotency is not None:
                    idempotency_keys.remember(
                        writer.session, idempotency, kind.name, written.document
                    )
        except idempotency_keys.Replay as replay:
            if replay.request_hash != idempotency.request_hash:  # type: ignore[union-attr]
                raise invalid(
                    [
                        FieldError(
                            ("header", "Idempotency-Key"),
                            "was already used for a different request",
                        )
                    ]
                ) from None
            return Created((await unseal_in(self.sessions, [replay.document]))[0], replayed=True)
        return Created(await self._shown(written.document), replayed=False)

    async def _shown(self, document: dict[str, Any]) -> dict[str, Any]:
        """A written document as answered: its private fields resolved (`db.personal`)."""
        return (await unseal_in(self.sessions, [document]))[0]

    async def update(
        self,
        kind: KindSpec,
        entry_id: uuid.UUID,
        document: EntryIn,
        who: Who | str,
        expected_version: int | None = None,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Replace an entry's document; `dry_run` checks and writes, then rolls back."""
        async with UnitOfWork(self.sessions, who, f"update {kind.name}",
                              commit=not dry_run) as writer:  # fmt: skip
            row = await current_row(writer.session, kind, entry_id)
            values = await _prepare(writer, kind, document, row, as_who(who).operator)
            written = await writer.update(kind, row, values, expected_version)
        return await self._shown(written.document)

    async def delete(
        self,
        kind: KindSpec,
        entry_id: uuid.UUID,
        who: Who | str,
        expected_version: int | None = None,
        *,
        cascade: bool = False,
    ) -> dict[str, Any]:
        """Delete (tombstone) an entry; referrers block it, unless `cascade` (owner's own)."""
        async with UnitOfWork(self.sessions, who, f"delete {kind.name}") as writer:
            row = await current_row(writer.session, kind, entry_id)
            if expected_version is not None and expected_version != row.version:
                raise StaleVersionError(expected_version, row.version)
            written = await _delete_with_referrers(writer, kind, row, cascade)
        return await self._shown(written.document)


async def current_row(session: AsyncSession, kind: KindSpec, entry_id: uuid.UUID) -> Any:
    row = await session.get(kind.model, entry_id)
    if row is None:
        raise not_found(kind.name, entry_id)
    return row


async def _prepare(writer: RevisionWriter, kind: KindSpec, document: EntryIn,
                   row: EntryModel | None, operator: bool) -> dict[str, Any]:  # fmt: skip
    """Column values for one entry written on its own (create or replace)."""
    index = await EntryIndex.load(writer.session, [Named.of(kind, document)], operator=operator)
    key = getattr(document, kind.natural_key)
    other = index.existing(kind, document.owner, key) if key is not None else None
    if other is not None and (row is None or other.id != row.id):
        raise conflict(
            f"another {kind.name} entry already has {kind.natural_key} {key!r}",
            errors=[{"loc": [kind.natural_key], "msg": "already exists", "type": "duplicate"}],
        )
    return column_values(writer, index, kind, document, row)


# Columns derived for search (`kernel.folding.search_text`), not part of the document.
SEARCH_TEXT = frozenset({"search", "search_full"})


def column_values(
    writer: RevisionWriter,
    index: EntryIndex,
    kind: KindSpec,
    document: EntryIn,
    row: EntryModel | None,
) -> dict[str, Any]:
    """Column values: references resolved, the owner kept, server fields set on create."""
    values = kind.column_values(document)
    errors = owner_errors(index.owners, kind, document)
    errors += index.resolve(kind, document, values, row.id if row is not None else None)
    errors += index.lane_errors(kind, document, row.id if row is not None else None)
    errors += index.grant_errors(kind, document, row)
    if row is not None and row.owner != document.owner:
        moved = f"an entry of {row.owner} cannot move to another owner"
        errors.insert(0, FieldError(("owner",), moved))
    if errors:
        raise invalid(errors)
    if row is None:
        values |= {name: writer.now for name in kind.server_fields}
    if kind.derive is not None:
        current = None if row is None else {n: getattr(row, n) for n in kind.fields}
        values |= kind.derive(values, current)
    values["search"] = search_text(values, kind.private_fields)
    values["search_full"] = search_text(values) if kind.private_fields else None
    return values


@dataclass(frozen=True)
class DeleteBlock:
    """What keeps an entry from being deleted: its kind never is (`never`, the reason),
    or current entries refer to it (`referrers`, each with its kind)."""

    never: str | None = None
    referrers: tuple[tuple[KindSpec, Any], ...] = ()

    def __bool__(self) -> bool:
        return self.never is not None or bool(self.referrers)


async def delete_block(session: AsyncSession, kind: KindSpec, entry_id: uuid.UUID) -> DeleteBlock:
    """The one rule of what blocks a delete, for a single delete and a batch's replace
    mode alike; each says it in its own answer (a 409, or a field error per referrer)."""
    if kind.never_deleted is not None:
        return DeleteBlock(never=kind.never_deleted)
    return DeleteBlock(referrers=tuple(await referrers_of(session, kind, entry_id)))


async def _delete_with_referrers(
    writer: RevisionWriter, kind: KindSpec, row: Any, cascade: bool
) -> WrittenVersion:
    block = await delete_block(writer.session, kind, row.id)
    if block.never is not None:
        raise conflict(block.never)
    if referrers := block.referrers:
        foreign = [(k, r) for k, r in referrers if r.owner != row.owner]
        if not cascade or foreign:
            listed = [
                {"kind": k.name, "id": str(r.id), "key": getattr(r, k.natural_key),
                 "owner": r.owner}
                for k, r in referrers
            ]  # fmt: skip
            why = "other owners' entries refer to it" if cascade else "entries refer to it"
            raise conflict(
                f"cannot delete this {kind.name} entry: {len(listed)} {why}"
                + ("" if cascade else " (cascade=true deletes the owner's own referrers)"),
                referrers=listed,
            )
        for referrer_kind, referrer in referrers:
            await _delete_with_referrers(writer, referrer_kind, referrer, cascade)
    return await writer.delete(kind, row)


async def referrers_of(
    session: AsyncSession, kind: KindSpec, entry_id: uuid.UUID
) -> list[tuple[KindSpec, Any]]:
    """Every current entry whose reference fields name this one."""
    found: list[tuple[KindSpec, Any]] = []
    for other in KINDS.values():
        for ref in other.references:
            if ref.target == kind.name:
                column = getattr(other.model, ref.id_field)
                rows = (await session.scalars(select(other.model).where(column == entry_id))).all()
                found += [(other, r) for r in rows if r.id != entry_id]
    return found
