"""An owner's entries in the import shape, and uploads in any of its formats, both ways.

One place decides the formats (NDJSON, CSV, XLSX) for the CLI (`export`, `import`)
and the API (`GET /export`, `POST /import`), so that an export re-imports as a
no-op whichever way it travelled.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import anyio.to_thread

from cdb_service.registry.formats import spreadsheets
from cdb_service.registry.formats.budget import Budget, Meter, TooLarge
from cdb_service.registry.formats.ndjson import ParsedBatch, export_lines, parse_lines
from cdb_service.registry.formats.spreadsheets import KeyOf
from cdb_service.registry.kinds import APPLY_ORDER, KINDS
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store.reads import EntryReads

FORMATS = ("ndjson", "csv", "xlsx")
MEDIA_TYPES = {
    "ndjson": "application/x-ndjson",
    "csv": "text/csv",
    "xlsx": spreadsheets.XLSX_MEDIA_TYPE,
}


class FormatError(ValueError):
    """A user's mistake about the format: said in one sentence."""


class FileTooLarge(FormatError):
    """The file is more than reading it may cost (a 413): said in one sentence."""


def format_of_media_type(media_type: str) -> str:
    media = media_type.split(";")[0].strip().lower()
    for name, known in MEDIA_TYPES.items():
        if media == known:
            return name
    if media in ("text/plain", "application/json", "application/octet-stream", ""):
        return "ndjson"
    raise FormatError(f"cannot read {media!r}; send one of {', '.join(MEDIA_TYPES.values())}")


def format_of_file(name: str) -> str:
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix in ("ndjson", "jsonl", "json"):
        return "ndjson"
    if suffix in ("csv", "xlsx"):
        return suffix
    raise FormatError(f"{name}: cannot tell the format; name it *.ndjson, *.csv or *.xlsx")


async def documents_by_kind(
    reads: EntryReads, kinds: Iterable[KindSpec], owner: str | None
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for name, document in await reads.documents(kinds, owner):
        out.setdefault(name, []).append(document)
    return out


async def natural_keys(
    reads: EntryReads, by_kind: Mapping[str, Sequence[Mapping[str, Any]]]
) -> KeyOf:
    """References written as the target's natural key: from the export itself, or read
    (a routing party of another owner that this owner's courts use)."""
    keys: dict[str, dict[str, Any]] = {
        name: {d["id"]: d.get(KINDS[name].natural_key) for d in docs}
        for name, docs in by_kind.items()
    }
    for name, docs in by_kind.items():
        for ref in KINDS[name].references:
            known = keys.setdefault(ref.target, {})
            target = KINDS[ref.target]
            for document in docs:
                ident = document.get(ref.id_field)
                if ident and ident not in known:
                    found = await reads.get(target, uuid.UUID(str(ident)))
                    known[ident] = found.get(target.natural_key) if found else None

    def key_of(kind: str, ident: str) -> Any:
        return keys.get(kind, {}).get(ident)

    return key_of


async def render(
    reads: EntryReads,
    by_kind: Mapping[str, Sequence[Mapping[str, Any]]],
    fmt: str,
) -> bytes:
    """The export in `fmt`: NDJSON lines; one CSV (of one kind); one XLSX workbook."""
    if fmt == "ndjson":
        pairs = [(name, dict(d)) for name in APPLY_ORDER for d in by_kind.get(name, ())]
        return "".join(line + "\n" for line in export_lines(pairs)).encode()
    key_of = await natural_keys(reads, by_kind)
    if fmt == "csv":
        if len(by_kind) != 1:
            raise FormatError("a CSV file holds one kind: name it (kind=…)")
        ((name, docs),) = by_kind.items()
        return spreadsheets.write_csv(KINDS[name], docs, key_of).encode()
    if fmt == "xlsx":
        return spreadsheets.write_xlsx(by_kind, key_of)
    raise FormatError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")


def parse_upload(data: bytes, fmt: str, owner: str, kind: KindSpec | None,
                 budget: Budget | None = None) -> ParsedBatch:  # fmt: skip
    """An uploaded batch (any format) as batch items and every error found in it, read
    whole within `budget` (`FileTooLarge` once it is spent)."""
    meter = Meter(budget or Budget())
    if fmt == "ndjson":
        return parse_lines(data.splitlines(), owner)
    batch = ParsedBatch()
    try:
        if fmt == "csv":
            if kind is None:
                raise FormatError("a CSV file holds one kind: name it (kind=… or --kind)")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise FormatError("the CSV file is not UTF-8 text") from None
            spreadsheets.read_csv(text, kind, owner, batch, meter)
        elif fmt == "xlsx":
            spreadsheets.read_xlsx(data, owner, batch, meter)
        else:
            raise FormatError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    except TooLarge as error:
        raise FileTooLarge(str(error)) from None
    except FormatError:
        raise
    except ValueError as error:
        raise FormatError(str(error)) from None
    batch.read_whole = True
    return batch


async def parse_upload_aside(data: bytes, fmt: str, owner: str, kind: KindSpec | None,
                             budget: Budget) -> ParsedBatch:  # fmt: skip
    """`parse_upload` in a worker thread: the event loop (every other request of this
    worker) goes on while a workbook is read, and the budget ends the reading."""
    return await anyio.to_thread.run_sync(parse_upload, data, fmt, owner, kind, budget)
