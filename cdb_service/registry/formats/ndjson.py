"""National batches as NDJSON: one entry per line, `{"kind": …, "document": {…}}`.

Entries are matched by natural key (authority code, routing-party name, `ref`).

Every line is read and validated before anything is applied, and every bad line
is reported with its number; the service then checks the valid lines too (references,
duplicates, replace mode) and reports every problem together (`Batches.apply`), or
applies the batch as one revision (or, as a dry run, reports what it would do).
Exports are written in the same shape, so an export re-imports as a no-op.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from cdb_service.kernel import codes
from cdb_service.kernel.problems import MAX_FIELD_ERRORS, FieldError
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store.batch_items import BatchItem, BatchResult
from cdb_service.registry.store.batches import Batches
from cdb_service.registry.store.validation import field_errors
from cdb_service.security.audit import Who

# Errors kept to report; beyond, they are only counted: a batch of junk costs the
# service the memory of these, not of every line.
MAX_KEPT_ERRORS = MAX_FIELD_ERRORS
MAX_LINE_BYTES = 2 * 1024 * 1024  # an entry's own limit (MAX_ENTRY_BYTES)


@dataclass
class ParsedBatch:
    items: list[BatchItem] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)
    error_count: int = 0
    lines: int = 0
    # (kind, natural key) of entries whose line did not validate: references to them
    # are not reported again as references to nothing (see Batches.apply).
    broken: set[tuple[str, Any]] = field(default_factory=set)
    # Lines whose entry is unknown (not JSON, no kind): replace mode cannot tell what the
    # batch still names, so its conflicts are reported with that caveat (Batches.apply).
    unidentified: int = 0
    # Set by the parser once it has read the file to its end, never before: a parse that
    # was cut short (a budget, a broken stream) cannot reach replace mode's deletions.
    read_whole: bool = False

    def note(self, *errors: FieldError) -> None:
        self.error_count += len(errors)
        room = MAX_KEPT_ERRORS - len(self.errors)
        if room > 0:
            self.errors.extend(errors[:room])


Mode = Literal["merge", "replace"]


async def apply_parsed(
    batches: Batches,
    batch: ParsedBatch,
    who: Who | str,
    owner: str,
    *,
    mode: Mode = "merge",
    dry_run: bool = False,
    via: str = "import",
) -> BatchResult:
    """The one way from a parsed batch to a revision (the API, the console, the CLI):
    what did not parse is reported with what the service finds, and replace mode deletes
    only `owner`'s entries. `via` names the door in the revision's summary."""
    return await batches.apply(
        batch.items,
        who,
        replace_owner=owner if mode == "replace" else None,
        dry_run=dry_run,
        summary=f"{via} {owner} ({mode})",
        prior_errors=batch.errors,
        unlisted_errors=batch.error_count - len(batch.errors),
        broken=batch.broken,
        # Replace mode deletes what the batch does not name: only a batch read to its end,
        # with every line's entry known, can say what that is (otherwise it is refused).
        complete=batch.read_whole and not batch.unidentified,
    )


def parse_line(number: int, raw: str | bytes | None, owner: str, batch: ParsedBatch) -> None:
    """Validate one line into `batch` (an item, or errors naming the line)."""
    if raw is None:
        batch.lines += 1
        batch.note(FieldError(("line", number), f"is longer than {MAX_LINE_BYTES} bytes"))
        batch.unidentified += 1
        return
    if not raw.strip():
        return
    batch.lines += 1
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:200]
        batch.note(FieldError(("line", number), f"is not JSON: {reason}", "json_invalid"))
        batch.unidentified += 1
        return
    if not isinstance(data, dict):
        batch.note(FieldError(("line", number), "must be a JSON object", "type_error"))
        batch.unidentified += 1
        return
    kind_name = data.get("kind")
    kind: KindSpec | None = KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        batch.note(
            FieldError(("line", number, "kind"), f"must be one of {', '.join(KINDS)}", "kind")
        )
        batch.unidentified += 1
        return
    data = data.get("document")
    if not isinstance(data, dict):
        batch.note(FieldError(("line", number, "document"), "must be a JSON object"))
        batch.unidentified += 1
        return
    add_document(batch, kind, data, owner, ("line", number), number)


def add_document(
    batch: ParsedBatch,
    kind: KindSpec,
    data: dict[str, Any],
    owner: str,
    where: tuple[str | int, ...],
    line: int,
) -> None:
    """Validate one entry's document (from a line or a spreadsheet row) into `batch`."""
    from pydantic import ValidationError

    natural = data.get(kind.natural_key)
    label = f"{kind.name} {natural}" if isinstance(natural, str) and natural else None
    data.setdefault("owner", owner)
    if codes.code_of(str(data["owner"])) != owner:
        batch.note(
            FieldError(
                (*where, "owner"), f"is {data['owner']!r}; this batch is {owner}'s", "owner", label
            )
        )
        return
    try:
        entry_id = uuid.UUID(str(data["id"])) if data.get("id") else None
    except ValueError:
        batch.note(FieldError((*where, "id"), "is not an entry id", "uuid", label))
        return
    try:
        document = kind.schema.model_validate(data)
    except ValidationError as error:
        batch.note(*(FieldError(e.loc, e.msg, e.type, label) for e in field_errors(error, where)))
        if isinstance(natural, str):
            batch.broken.add((kind.name, natural.strip()))
        return
    where_kept = None if where == ("line", line) else where
    batch.items.append(BatchItem.of(kind, document, line, entry_id, where_kept))


def parse_lines(lines: Iterable[str | bytes], owner: str,
                progress: Callable[[int], None] | None = None) -> ParsedBatch:  # fmt: skip
    """Lines held or read one by one (a file); one longer than MAX_LINE_BYTES is refused
    as the streamed body's is."""
    batch = ParsedBatch()
    for number, raw in enumerate(lines, start=1):
        parse_line(number, None if len(raw) > MAX_LINE_BYTES else raw, owner, batch)
        if progress is not None:
            progress(number)
    batch.read_whole = True
    return batch


async def parse_stream(chunks: AsyncIterable[bytes], owner: str) -> ParsedBatch:
    """Parse a request body as it arrives, without holding the raw body whole."""
    batch = ParsedBatch()
    number = 0
    async for line in _lines(chunks):
        number += 1
        parse_line(number, line, owner, batch)
    batch.read_whole = True
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
                yield None if len(pending) > MAX_LINE_BYTES else bytes(pending)
            pending.clear()
            start = end + 1
    if pending and not skipping:
        yield bytes(pending)


def export_lines(documents: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[str]:
    """Entries in the import shape."""
    for kind, document in documents:
        line = {"kind": kind, "document": document}
        yield json.dumps(line, ensure_ascii=False, separators=(",", ":"))
