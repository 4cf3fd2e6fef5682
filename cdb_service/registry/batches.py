"""National batches: entries keyed by natural key, applied as one revision or not at all.

Used by `POST /import`, `cdb-service import` and the seeder. A dry run does all of
the work and rolls back, so its diff is exactly what the real run would do.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db.revisions import RevisionWriter
from cdb_service.kernel.problems import FieldError, Problem, conflict, invalid
from cdb_service.registry.kinds import APPLY_ORDER, KINDS
from cdb_service.registry.references import EntryIndex
from cdb_service.registry.schemas import EntryIn
from cdb_service.registry.spec import KindSpec
from cdb_service.registry.unit_of_work import UnitOfWork
from cdb_service.registry.writes import column_values, ensure_deletable
from cdb_service.security.audit import Who


class Change(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    UNCHANGED = "unchanged"


@dataclass
class BatchItem:
    kind: KindSpec
    document: EntryIn
    line: int | None = None


@dataclass
class DiffRow:
    kind: str
    key: Any
    change: Change
    id: uuid.UUID | None
    fields: list[str] = field(default_factory=list)
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        row = {"kind": self.kind, "key": self.key, "change": self.change.value}
        return row | {"id": str(self.id) if self.id else None, "fields": self.fields}


@dataclass
class BatchResult:
    revision: int | None
    diff: list[DiffRow]

    def counts(self) -> dict[str, int]:
        totals = dict.fromkeys((c.value for c in Change), 0)
        for row in self.diff:
            totals[row.change.value] += 1
        return totals


class Batches:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def apply(
        self,
        items: Sequence[BatchItem],
        who: Who | str,
        *,
        replace_owner: str | None = None,
        dry_run: bool = False,
        summary: str = "batch",
    ) -> BatchResult:
        """Apply entries keyed by natural key as one revision, or nothing at all.

        Unchanged entries write nothing; if every entry is unchanged there is no
        revision. With `replace_owner`, that owner's entries of the batch's kinds
        that the batch does not name are deleted in the same revision.
        """
        diff: list[DiffRow] = []
        errors: list[FieldError] = []
        async with UnitOfWork(self.sessions, who, summary, commit=not dry_run) as writer:
            ordered = parents_first(sorted(items, key=lambda i: APPLY_ORDER.index(i.kind.name)))
            with writer.session.no_autoflush:
                index = await EntryIndex.load(
                    writer.session, [(i.kind, i.document) for i in ordered]
                )
                seen: dict[tuple[str, Any], int | None] = {}
                for item in ordered:
                    prefix: tuple[str | int, ...] = ("line", item.line) if item.line else ()
                    try:
                        diff.append(await _apply_one(writer, index, item, seen))
                    except Problem as problem:
                        errors.extend(_with_prefix(problem, prefix))
            if replace_owner and not errors:
                named = {(row.kind, row.id) for row in diff}
                kinds = {item.kind.name for item in items}
                for kind_name in reversed(APPLY_ORDER):
                    if kind_name in kinds:
                        diff += await _delete_unnamed(
                            writer, KINDS[kind_name], replace_owner, named
                        )
            if errors:
                raise invalid(errors, f"{len(errors)} problem(s) in the batch; nothing was written")
        revision = writer.revision if writer.written and not dry_run else None
        return BatchResult(revision, diff)


async def _apply_one(
    writer: RevisionWriter,
    index: EntryIndex,
    item: BatchItem,
    seen: dict[tuple[str, Any], int | None],
) -> DiffRow:
    kind, document = item.kind, item.document
    key = getattr(document, kind.natural_key)
    if key is None:
        raise invalid([FieldError((kind.natural_key,), "is required to match entries in a batch")])
    marker = (kind.name, key if kind.natural_key_global else (document.owner, key))
    if marker in seen:
        raise invalid(
            [FieldError((kind.natural_key,), f"repeats line {seen[marker]}'s key {key!r}")]
        )
    seen[marker] = item.line
    row = index.existing(kind, document.owner, key)
    if row is not None and row.owner != document.owner:
        raise conflict(
            f"{kind.natural_key} {key!r} belongs to an entry of {row.owner}",
            errors=[{"loc": [kind.natural_key], "msg": "already used by another owner"}],
        )
    values = column_values(writer, index, kind, document, row)
    if row is None:
        written = await writer.create(kind, document.owner, values, None)
        index.learn(kind, document.owner, values, written.entry_id)
        return DiffRow(kind.name, key, Change.CREATED, written.entry_id, [], item.line)
    changed = [name for name, value in values.items() if getattr(row, name) != value]
    if not changed:
        return DiffRow(kind.name, key, Change.UNCHANGED, row.id, [], item.line)
    await writer.update(kind, row, values)
    return DiffRow(kind.name, key, Change.UPDATED, row.id, changed, item.line)


async def _delete_unnamed(
    writer: RevisionWriter,
    kind: KindSpec,
    owner: str,
    named: set[tuple[str, uuid.UUID | None]],
) -> list[DiffRow]:
    rows = (
        await writer.session.scalars(
            select(kind.model).where(kind.model.owner == owner).order_by(kind.model.id)
        )
    ).all()
    out = []
    for row in rows:
        if (kind.name, row.id) not in named:
            ensure_deletable(kind)
            key = getattr(row, kind.natural_key)
            await writer.delete(kind, row)
            out.append(DiffRow(kind.name, key, Change.DELETED, row.id))
    return out


def parents_first(items: list[BatchItem]) -> list[BatchItem]:
    """Within a kind that refers to itself (an authority's parent), the referred come first.

    The self-references are read from each kind's `references`, so a kind that
    gains one is ordered without a change here.
    """

    def own_key(item: BatchItem) -> tuple[str, Any]:
        return item.kind.name, getattr(item.document, item.kind.natural_key, None)

    def parent_keys(item: BatchItem) -> list[tuple[str, Any]]:
        return [
            (item.kind.name, getattr(item.document, ref.key_field, None))
            for ref in item.kind.references
            if ref.target == item.kind.name and getattr(item.document, ref.key_field, None)
        ]

    out: list[BatchItem] = []
    waiting = {own_key(i) for i in items}
    pending = list(items)
    while pending:
        rest = []
        for item in pending:
            if any(key in waiting and key != own_key(item) for key in parent_keys(item)):
                rest.append(item)
            else:
                out.append(item)
                waiting.discard(own_key(item))
        if len(rest) == len(pending):  # a cycle: let reference resolution report it
            return out + rest
        pending = rest
    return out


def _with_prefix(problem: Problem, prefix: tuple[str | int, ...]) -> list[FieldError]:
    if problem.errors:
        return [FieldError((*prefix, *e.loc), e.msg, e.type) for e in problem.errors]
    return [FieldError(prefix, problem.detail, problem.slug)]
