"""Reading entries by their natural keys (a code; an owner and a name), in chunks that
every database accepts in one IN list."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cdb_service.registry.kinds.spec import KindSpec

CHUNK = 500


def chunks(values: Iterable[Any]) -> list[list[Any]]:
    items = list(values)
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


async def rows_by_natural_key(session: AsyncSession, kind: KindSpec, keys: set[Any],
                               columns: Sequence[Any] = ()) -> list[Any]:  # fmt: skip
    """The current rows of these natural keys: whole (ORM objects), or only `columns`."""
    model = kind.model
    column = getattr(model, kind.natural_key)

    async def rows(query: Any) -> list[Any]:
        if columns:
            return list((await session.execute(query)).all())
        return list((await session.scalars(query)).all())

    chosen = select(*columns) if columns else select(model)
    out: list[Any] = []
    if kind.natural_key_global:
        for chunk in chunks(keys):
            out += await rows(chosen.where(column.in_(chunk)))
        return out
    by_owner: dict[str, list[Any]] = defaultdict(list)
    for owner, value in keys:
        by_owner[owner].append(value)
    for owner, values in by_owner.items():
        for chunk in chunks(values):
            out += await rows(chosen.where(model.owner == owner, column.in_(chunk)))
    return out
