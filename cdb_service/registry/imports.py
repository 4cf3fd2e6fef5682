"""National batches as NDJSON: one entry per line, `{"kind": …, "document": {…}}`.

Entries are matched by natural key (authority code, routing-party name, `ref`).

Every line is read and validated before anything is applied, and every bad line
is reported with its number; only a batch without errors reaches the service,
which applies it as one revision (or, as a dry run, reports what it would do).
Exports are written in the same shape, so an export re-imports as a no-op.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cdb_service.kernel.problems import MAX_FIELD_ERRORS, FieldError, Problem, invalid
from cdb_service.registry.batches import BatchItem
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.spec import KindSpec
from cdb_service.registry.validation import field_errors

# Errors kept to report; beyond, they are only counted: a batch of junk costs the
# service the memory of these, not of every line.
MAX_ERRORS = MAX_FIELD_ERRORS
MAX_LINE_BYTES = 2 * 1024 * 1024  # an entry's own limit (MAX_ENTRY_BYTES)


@dataclass
class ParsedBatch:
    items: list[BatchItem] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)
    error_count: int = 0
    lines: int = 0

    def note(self, *errors: FieldError) -> None:
        self.error_count += len(errors)
        room = MAX_ERRORS - len(self.errors)
        if room > 0:
            self.errors.extend(errors[:room])

    def raise_if_invalid(self) -> None:
        if self.error_count:
            problem = invalid(
                self.errors,
                f"{self.error_count} problem(s) in {self.lines} line(s); nothing was written"
                + (
                    f" (the first {MAX_ERRORS} are listed)" if self.error_count > MAX_ERRORS else ""
                ),
            )
            problem.extra["errors_total"] = self.error_count
            raise problem


def parse_line(number: int, raw: str | bytes | None, owner: str, batch: ParsedBatch) -> None:
    """Validate one line into `batch` (an item, or errors naming the line)."""
    from pydantic import ValidationError

    if raw is None:
        batch.lines += 1
        batch.note(FieldError(("line", number), f"is longer than {MAX_LINE_BYTES} bytes"))
        return
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as error:
        batch.lines += 1
        batch.note(FieldError(("line", number), f"is not UTF-8 (byte {error.start})", "utf8"))
        return
    if not text.strip():
        return
    batch.lines += 1
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:200]
        batch.note(FieldError(("line", number), f"is not JSON: {reason}", "json_invalid"))
        return
    if not isinstance(data, dict):
        batch.note(FieldError(("line", number), "must be a JSON object", "type_error"))
        return
    kind_name = data.get("kind")
    kind: KindSpec | None = KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        batch.note(
            FieldError(("line", number, "kind"), f"must be one of {', '.join(KINDS)}", "kind")
        )
        return
    data = data.get("document")
    if not isinstance(data, dict):
        batch.note(FieldError(("line", number, "document"), "must be a JSON object"))
        return
    data.setdefault("owner", owner)
    if str(data["owner"]).upper() != owner:
        batch.note(
            FieldError(("line", number, "owner"), f"is {data['owner']!r}; this batch is {owner}'s")
        )
        return
    try:
        document = kind.schema.model_validate(data)
    except ValidationError as error:
        batch.note(*field_errors(error, ("line", number)))
        return
    batch.items.append(BatchItem(kind, document, number))


def parse_lines(lines: Iterable[str | bytes], owner: str,
                progress: Callable[[int], None] | None = None) -> ParsedBatch:  # fmt: skip
    batch = ParsedBatch()
    for number, raw in enumerate(lines, start=1):
        parse_line(number, raw, owner, batch)
        if progress is not None:
            progress(number)
    return batch


async def parse_stream(chunks: AsyncIterable[bytes], owner: str) -> ParsedBatch:
    """Parse a request body as it arrives, without holding the raw body whole."""
    batch = ParsedBatch()
    number = 0
    async for line in _lines(chunks):
        number += 1
        parse_line(number, line, owner, batch)
    return batch


async def _lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes | None]:
    """The body's lines as they arrive; None for a line longer than MAX_LINE_BYTES, which
    is skipped rather than held (and each byte is looked at once, however long it is)."""
    pending = bytearray()
    skipping = False
    async for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not skipping:
                    pending += chunk[start:]
                    if len(pending) > MAX_LINE_BYTES:
                        pending.clear()
                        skipping = True
                        yield None
                break
            if skipping:
                skipping = False
            else:
                pending += chunk[start:end]
                if len(pending) > MAX_LINE_BYTES:
                    yield None
                else:
                    yield bytes(pending)
            pending.clear()
            start = end + 1
    if pending and not skipping:
        yield bytes(pending)


def export_lines(documents: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[str]:
    """Entries in the import shape."""
    for kind, document in documents:
        line = {"kind": kind, "document": document}
        yield json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def owner_of_batch(requested: str | None, administers: str | None, is_operator: bool) -> str:
    owner = (requested or administers or "").upper()
    if not owner:
        raise Problem(
            400,
            "Malformed request",
            "name the batch's owner (?owner=XX)",
            "malformed-request",
            [FieldError(("query", "owner"), "is required")],
        )
    return owner
