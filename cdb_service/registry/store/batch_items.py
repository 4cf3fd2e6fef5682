"""What a batch is made of and what it answers: its items (an entry named by natural key,
with the line or row it came from), the order they are applied in (parents first), and
the result, one diff row per entry (created, updated, unchanged, deleted).
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cdb_service.registry.kinds.schemas import EntryIn
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store.references import Named


class Change(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    UNCHANGED = "unchanged"


@dataclass(slots=True, eq=False)
class BatchItem:
    """One entry of a batch, held compactly until it is applied.

    Its document, validated once when the line was read, is kept as the JSON it dumps
    to and validated again when it is applied (`document`): a few hundred bytes an
    entry instead of the ~2 KiB of a pydantic model, which is what bounded the memory
    of a 50,000-entry import. What the checks need before then is in `named`.
    """

    named: Named
    source: bytes
    line: int | None = None
    # The `id` an exported entry carried: it matches an entry that has no natural key
    # (e.g. a maintenance window created through the API without a `ref`).
    entry_id: uuid.UUID | None = None
    # Where the item came from, when not a line: ("sheet", kind, "row", n) for spreadsheets.
    where: tuple[str | int, ...] | None = None

    @classmethod
    def of(
        cls,
        kind: KindSpec,
        document: EntryIn,
        line: int | None = None,
        entry_id: uuid.UUID | None = None,
        where: tuple[str | int, ...] | None = None,
    ) -> BatchItem:
        source = document.__pydantic_serializer__.to_json(document, exclude_defaults=True)
        return cls(Named.of(kind, document), source, line, entry_id, where)

    @property
    def digest(self) -> str:
        """The SHA-256 of the validated line (hex): what a row written from it keeps
        (`source_sha256`), so that the same line again is known unchanged at a glance."""
        return hashlib.sha256(self.source).hexdigest()

    def document(self) -> EntryIn:
        """The validated document (validated again from what it dumped to: the same model)."""
        return self.kind.schema.model_validate_json(self.source)

    @property
    def kind(self) -> KindSpec:
        return self.named.kind

    @property
    def owner(self) -> str:
        return self.named.owner

    @property
    def key(self) -> Any:
        return self.named.key

    @property
    def location(self) -> tuple[str | int, ...]:
        if self.where is not None:
            return self.where
        return ("line", self.line) if self.line else ()

    @property
    def label(self) -> str:
        key = self.key if self.key is not None else self.entry_id
        return f"{self.kind.name} {key}" if key is not None else self.kind.name


@dataclass(slots=True)
class DiffRow:
    kind: str
    key: Any
    change: Change
    id: uuid.UUID | None
    fields: tuple[str, ...] = ()
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        row = {"kind": self.kind, "key": self.key, "change": self.change.value}
        return row | {"id": str(self.id) if self.id else None, "fields": list(self.fields)}


@dataclass(repr=False)
class BatchResult:
    revision: int | None
    diff: list[DiffRow]

    def __repr__(self) -> str:
        # Short: asyncio.run formats its task's result (twice), and a diff of 50,000
        # rows spelled out was 10 MB of text and a second of a large import.
        return f"BatchResult(revision={self.revision}, counts={self.counts()})"

    def counts(self) -> dict[str, int]:
        totals = dict.fromkeys((c.value for c in Change), 0)
        for row in self.diff:
            totals[row.change.value] += 1
        return totals

    def counts_by_kind(self) -> dict[str, dict[str, int]]:
        """Per kind and operation: the summary an administrator reads before the details."""
        out: dict[str, dict[str, int]] = {}
        for row in self.diff:
            totals = out.setdefault(row.kind, dict.fromkeys((c.value for c in Change), 0))
            totals[row.change.value] += 1
        return out

    def changes(self, first: int | None = None) -> list[dict[str, Any]]:
        """The changes (unchanged entries left out), the first `first` of them if given."""
        rows = (row for row in self.diff if row.change is not Change.UNCHANGED)
        return [row.as_dict() for row in itertools.islice(rows, first)]


def parents_first(items: list[BatchItem]) -> list[BatchItem]:
    """Within a kind that refers to itself (an authority's parent), the referred come first.

    The self-references are read from each kind's `references`, so a kind that
    gains one is ordered without a change here.
    """

    def own_key(item: BatchItem) -> tuple[str, Any]:
        return item.kind.name, item.key

    def parent_keys(item: BatchItem) -> list[tuple[str, Any]]:
        refs = zip(item.kind.references, item.named.ref_keys, strict=True)
        return [(item.kind.name, key) for ref, key in refs if ref.target == item.kind.name and key]

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
