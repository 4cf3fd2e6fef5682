"""Reads of every kind: one entry, pages of a kind, history, and whole owners for export.

Every read is one snapshot (`read_snapshot`). Current state comes from the kind's
table; anything "as of revision R" and all history comes from the append-only
entry versions, through the same filters (see `filters.py`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import documents
from cdb_service.db import revisions as rev
from cdb_service.db.documents import document_of
from cdb_service.db.personal import unseal
from cdb_service.kernel.owners import Owners
from cdb_service.kernel.text import unprintable
from cdb_service.registry.kinds import APPLY_ORDER
from cdb_service.registry.kinds.filters import Filter
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store.participation import owners_in

MAX_PAGE = 1000
AS_OF_CHUNK = 500


@dataclass
class Page:
    items: list[dict[str, Any]]
    revision: int
    next: uuid.UUID | None
    # In a sorted walk, the last entry's sort value (the cursor carries it with `next`).
    next_value: Any = None


@dataclass(frozen=True)
class Sort:
    """A page order other than id: a column, ascending or descending, id breaking ties."""

    field: str
    descending: bool = False

    @classmethod
    def parse(cls, text: str) -> Sort:
        return cls(text.lstrip("-"), text.startswith("-"))

    def value_of(self, document: Mapping[str, Any]) -> Any:
        value = document.get(self.field)
        return "" if value is None else value

    def mark(self, value: Any) -> Any:
        """A page mark's sort value (from a cursor, a console link) as the query compares
        it: a time for `updated_at`, printable text otherwise; a ValueError for anything
        this service would not have given out."""
        if not isinstance(value, str) or len(value) > 1000 or unprintable(value):
            raise ValueError("not a sort value")
        if self.field != "updated_at":
            return value
        moment = dt.datetime.fromisoformat(value)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        try:
            return moment.astimezone(dt.UTC)
        except OverflowError:  # year 1 or 9999 moved past the calendar's end
            raise ValueError("not a time") from None

    def column(self, model: Any) -> Any:
        column = getattr(model, self.field)
        # Text columns may be empty (ref): NULL sorts as '' so that keyset pages compare.
        return func.coalesce(column, "") if self.field != "updated_at" else column

    def keyset(self, model: Any, value: Any, after: uuid.UUID) -> Any:
        column = self.column(model)
        if self.field == "updated_at" and isinstance(value, str):
            value = self.mark(value)
        beyond = column < value if self.descending else column > value
        return or_(beyond, and_(column == value, model.id > after))


def change_of(version: rev.EntryVersion) -> dict[str, Any]:
    """An entry version as the change feed serves it (and history, which adds the actor)."""
    return {
        "revision": version.revision,
        "kind": version.kind,
        "id": str(version.entry_id),
        "version": version.version,
        "operation": version.operation,
        "recorded_at": documents.to_json_value(version.recorded_at),
        "document": version.document,
    }


class EntryReads:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def head(self) -> int:
        async with rev.read_snapshot(self.sessions) as session:
            return await rev.head_revision(session)

    async def owners(self) -> Owners:
        """The owners and what each takes part in, at the head revision (one snapshot)."""
        async with rev.read_snapshot(self.sessions) as session:
            head = await rev.head_revision(session)
            return replace(await owners_in(session), revision=head)

    async def get(
        self, kind: KindSpec, entry_id: uuid.UUID, revision: int | None = None
    ) -> dict[str, Any] | None:
        async with rev.read_snapshot(self.sessions) as session:
            if revision is not None:
                version = await rev.version_as_of(session, entry_id, revision)
                if version is None or version.kind != kind.name:
                    return None
                return (await unseal(session, [dict(version.document)]))[0]
            row = await session.get(kind.model, entry_id)
            if row is None:
                return None
            return (await unseal(session, [document_of(kind, row)]))[0]

    async def collection(
        self,
        kind: KindSpec,
        *,
        filters: Mapping[str, Any] | None = None,
        valid_at: dt.date | None = None,
        revision: int | None = None,
        after: uuid.UUID | None = None,
        limit: int = 100,
        sort: Sort | None = None,
        after_value: Any = None,
        private: bool = False,
    ) -> Page:
        """One page of a kind, in id order (or `sort`, current state only): current state,
        or as it stood at `revision`. `private`: the caller may read the kind's private
        fields (`policy.sees_named_persons`), so `q` searches them too; else it does not,
        and no entry is found by a text the caller may not see."""
        limit = max(1, min(limit, MAX_PAGE))
        wanted = [(kind.all_filters[name], value) for name, value in (filters or {}).items()]
        async with rev.read_snapshot(self.sessions) as session:
            head = await rev.head_revision(session)
            if revision is not None:
                hidden = () if private else kind.private_fields
                docs = await _documents_as_of(
                    session, kind, revision, wanted, valid_at, after, limit, hidden
                )
                read_at = revision
            else:
                model = kind.model
                query = _current_query(kind, wanted, valid_at, private).limit(limit + 1)
                if sort is None:
                    query = query.order_by(model.id)
                    if after is not None:
                        query = query.where(model.id > after)
                else:
                    column = sort.column(model)
                    query = query.order_by(column.desc() if sort.descending else column, model.id)
                    if after is not None:
                        query = query.where(sort.keyset(model, after_value, after))
                docs = [document_of(kind, r) for r in (await session.scalars(query)).all()]
                read_at = head
            docs = await unseal(session, docs)
        more = len(docs) > limit
        docs = docs[:limit]
        if not more:
            return Page(docs, read_at, None)
        last = docs[-1]
        return Page(docs, read_at, uuid.UUID(last["id"]), sort.value_of(last) if sort else None)

    async def count(
        self,
        kind: KindSpec,
        *,
        filters: Mapping[str, Any] | None = None,
        valid_at: dt.date | None = None,
        private: bool = False,
    ) -> tuple[int, int]:
        """How many current entries match, and the revision that count is of (`private`: as
        in `collection`)."""
        wanted = [(kind.all_filters[name], value) for name, value in (filters or {}).items()]
        # The table stays in FROM without a filter too (else: SELECT count(*) = 1).
        query = _current_query(kind, wanted, valid_at, private).with_only_columns(
            func.count(), maintain_column_froms=True
        )
        async with rev.read_snapshot(self.sessions) as session:
            return int(await session.scalar(query) or 0), await rev.head_revision(session)

    async def history(self, entry_id: uuid.UUID) -> list[dict[str, Any]]:
        async with rev.read_snapshot(self.sessions) as session:
            changes = [
                change_of(v) | {"actor": v.actor} for v in await rev.history(session, entry_id)
            ]
            documents = await unseal(session, [c["document"] for c in changes])
        return [c | {"document": d} for c, d in zip(changes, documents, strict=True)]

    async def documents(
        self, kinds: Iterable[KindSpec], owner: str | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Every current entry of these kinds (of one owner), in the order a batch applies them."""
        out: list[tuple[str, dict[str, Any]]] = []
        for kind in sorted(kinds, key=lambda k: APPLY_ORDER.index(k.name)):
            after = None
            while True:
                filters = {"owner": owner} if owner else {}
                page = await self.collection(kind, filters=filters, after=after, limit=MAX_PAGE)
                out += [(kind.name, d) for d in page.items]
                if page.next is None:
                    break
                after = page.next
        return out


def _current_query(
    kind: KindSpec, wanted: list[tuple[Filter, Any]], valid_at: dt.date | None, private: bool
) -> Any:
    model = kind.model
    query = select(model)
    full = private and bool(kind.private_fields)
    for flt, value in wanted:
        query = query.where(flt.clause(model, value, full))
    if valid_at is not None:
        query = query.where(rev.valid_on(model, valid_at))
    return query


async def _documents_as_of(
    session: AsyncSession,
    kind: KindSpec,
    revision: int,
    wanted: list[tuple[Filter, Any]],
    valid_at: dt.date | None,
    after: uuid.UUID | None,
    limit: int,
    hidden: Collection[str],
) -> list[dict[str, Any]]:
    """Past documents through the same filters, read in chunks until a page is full."""
    owner = next((v for f, v in wanted if f.name == "owner"), None)
    docs: list[dict[str, Any]] = []
    while len(docs) <= limit:
        chunk = await rev.collection_as_of(
            session, kind.name, revision, owner=owner, valid_at=valid_at, after=after,
            limit=AS_OF_CHUNK,
        )  # fmt: skip
        past = [dict(v.document) for v in chunk]
        if kind.private_fields and not hidden and wanted:
            # Past documents hold refs to named persons (`db/personal.py`): a caller who
            # may read them searches the names themselves, as in the present.
            past = await unseal(session, past)
        docs += [d for d in past if all(f.accepts(d, x, hidden) for f, x in wanted)]
        if len(chunk) < AS_OF_CHUNK:
            break
        after = chunk[-1].entry_id
    return docs
