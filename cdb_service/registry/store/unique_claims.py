"""Items that must be unique across entries (a routing party's ids), checked for a whole
batch with the line that names each twice."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from cdb_service.kernel.problems import FieldError
from cdb_service.registry.kinds.spec import KindSpec, ListProjection
from cdb_service.registry.store.batch_items import BatchItem


class UniqueClaims:
    """Items of unique list projections (party ids) named twice, in the batch or by an entry
    outside it: found now, with the line, rather than as a bare integrity error at commit.

    Claims are gathered as the items are applied (from their column values), so the
    documents need not be read a second time.
    """

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.claimed: dict[ListProjection, dict[tuple[Any, ...], BatchItem]] = {}
        self.kinds: dict[ListProjection, KindSpec] = {}

    def add(self, item: BatchItem, entry_id: uuid.UUID | None, values: dict[str, Any]) -> None:
        for projection in item.kind.projections:
            if not isinstance(projection, ListProjection) or not projection.unique:
                continue
            claimed = self.claimed.setdefault(projection, {})
            self.kinds[projection] = item.kind
            for row in projection.rows(entry_id or uuid.uuid4(), values):
                key = tuple(row[c] for c in projection.columns)
                first = claimed.setdefault(key, item)
                if first is not item:
                    where = " ".join(map(str, first.location)) or first.label
                    self.errors.append(FieldError(
                        (*item.location, projection.source),
                        f"{' '.join(map(str, key))} is also named by {first.label} ({where})",
                        "duplicate", item.label,
                    ))  # fmt: skip

    async def held_elsewhere(self, session: Any, in_batch: set[uuid.UUID | None]
                             ) -> list[FieldError]:  # fmt: skip
        """Claims on items that an entry outside the batch holds.

        The projection tables still hold the state before the batch (projections are
        written when the revision finishes), so an entry of the batch is compared with
        its new items.
        """
        errors: list[FieldError] = []
        for projection, claimed in self.claimed.items():
            kind = self.kinds[projection]
            model: Any = projection.model
            column = getattr(model, projection.columns[0])
            firsts = sorted({key[0] for key in claimed})
            for start in range(0, len(firsts), 500):
                query = select(model).where(column.in_(firsts[start : start + 500]))
                for found in (await session.scalars(query)).all():
                    key = tuple(getattr(found, c) for c in projection.columns)
                    claimant = claimed.get(key)
                    if claimant is None or found.entry_id in in_batch:
                        continue
                    other = await session.get(kind.model, found.entry_id)
                    name = getattr(other, kind.natural_key, None) if other else found.entry_id
                    errors.append(FieldError(
                        (*claimant.location, projection.source),
                        f"{' '.join(map(str, key))} already names {kind.name} {name}",
                        "duplicate", claimant.label,
                    ))  # fmt: skip
        return errors
