"""Entries as spreadsheets (CSV, one file per kind; XLSX, one sheet per kind), both ways.

The columns of a kind are read from its schema, so every kind has them without a
table of its own here:

- `id` first: it matches, on re-import, an entry that has no natural key;
- a plain field is one column (`code`, `kind`, `valid_from`, `priority`, …);
- a field of names per language is one column per language: `names.fr`, `names.en`
  (add a column `names.de` to add a German name);
- a nested object is one column per member: `address.street`, `address.city`,
  `contact.channel`, `contact.value`, …;
- a list of plain values is one cell, the values separated by `;`
  (`languages`: `fr; en`); a list of objects is one cell holding a JSON array
  (`geo`: `[{"scheme": "postal-code", "code": "75001", "country": "FR"}]`);
- a reference is given by the target's natural key (`routing_party_name`,
  `parent_code`, `authority_code`), never by its id, so that a row can be edited
  by someone who knows the court's code and not its UUID.

An empty cell is an absent field (it takes its default). A CSV cell that a spreadsheet
program would run as a formula (`=`, `+`, `-`, `@` first) is written after an apostrophe,
which reading removes; XLSX cells are typed as text. Server-set and derived
fields (version, revision, timestamps, certificate fingerprints, …) are not
columns: they are recomputed. Reading a spreadsheet produces the same batch items
as NDJSON lines, located by sheet and row, so validation and application are the
one mechanism of `ndjson.py` and `store/batches.py`.
"""

from __future__ import annotations

import csv
import io
import json
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from cdb_service.kernel import codes
from cdb_service.kernel.problems import FieldError
from cdb_service.registry.formats.budget import Meter
from cdb_service.registry.formats.ndjson import MAX_LINE_BYTES, ParsedBatch, add_document
from cdb_service.registry.kinds import APPLY_ORDER, KINDS
from cdb_service.registry.kinds.spec import KindSpec

LIST_SEPARATOR = ";"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Excel refuses longer cells; a longer value (a very long list) is kept as it is and the
# workbook says so on import rather than truncating it silently.
XLSX_CELL_LIMIT = 32_767
# A kind has a few dozen columns, a few hundred with a name in every EU language; a
# sheet or row wider than this is refused whole, so that a hostile header of a million
# columns costs one error, not a million.
MAX_COLUMNS = 1_000

# (target kind, id) -> the target's natural key, for references written as keys.
KeyOf = Callable[[str, str], Any]


@dataclass(frozen=True)
class Column:
    name: str  # header: `code`, `names.fr`, `address.city`
    field: str  # the document field
    member: str | None = None  # the member of a dict / nested object
    shape: str = "plain"  # plain | list | objects (a list of objects, as JSON)
    # A text field: a number typed into a spreadsheet cell (a postal code, a ref) is
    # read back as the text it shows, not refused as "not a string".
    text: bool = False


def _unwrap(annotation: Any) -> Any:
    """The annotation without `| None` and `Annotated[...]`."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        else:
            return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _reference_fields(kind: KindSpec) -> tuple[set[str], set[str]]:
    """(fields left out, fields kept) for the kind's references: by key where it is global."""
    left_out, kept = set(), set()
    for ref in kind.references:
        if KINDS[ref.target].natural_key_global:
            left_out.add(ref.id_field)
            kept.add(ref.key_field)
        else:
            left_out.add(ref.key_field)
            kept.add(ref.id_field)
    return left_out, kept


def columns(kind: KindSpec, languages: Iterable[str] = ()) -> list[Column]:
    """The kind's columns; `languages` are the name columns (those the data uses)."""
    left_out, _ = _reference_fields(kind)
    out = [Column("id", "id")]
    for name, info in kind.schema.model_fields.items():
        if name in left_out or name in kind.schema.server_set:
            continue
        annotation = _unwrap(info.annotation)
        origin = typing.get_origin(annotation)
        if origin is dict:
            langs = [lang for lang in codes.LANGUAGES if lang in set(languages)] or ["en"]
            out += [Column(f"{name}.{lang}", name, lang, text=True) for lang in langs]
        elif origin is list:
            item = _unwrap(typing.get_args(annotation)[0])
            out.append(Column(name, name, None, "objects" if _model_of(item) else "list"))
        elif (model := _model_of(annotation)) is not None:
            out += [
                Column(f"{name}.{m}", name, m, text=_unwrap(f.annotation) is str)
                for m, f in model.model_fields.items()
            ]
        else:
            out.append(Column(name, name, text=annotation is str))
    return out


def _languages(documents: Sequence[Mapping[str, Any]]) -> set[str]:
    found: set[str] = set()
    for document in documents:
        for value in document.values():
            if isinstance(value, dict) and value and set(value) <= set(codes.LANGUAGES):
                found |= set(value)
    return found


def _cell(column: Column, document: Mapping[str, Any], key_of: KeyOf, kind: KindSpec) -> Any:
    value = document.get(column.field)
    if value is None and column.member is None:
        ref = next((r for r in kind.references if r.key_field == column.field), None)
        if ref is not None and document.get(ref.id_field):
            value = key_of(ref.target, str(document[ref.id_field]))
    if column.member is not None:
        value = value.get(column.member) if isinstance(value, dict) else None
    if value is None:
        return None
    if column.shape == "list":
        return f"{LIST_SEPARATOR} ".join(str(v) for v in value) if value else None
    if column.shape == "objects":
        return json.dumps(value, ensure_ascii=False) if value else None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def table(
    kind: KindSpec, documents: Sequence[Mapping[str, Any]], key_of: KeyOf
) -> tuple[list[str], Iterator[list[Any]]]:
    """Header and rows of one kind."""
    cols = columns(kind, _languages(documents))
    rows = ([_cell(c, d, key_of, kind) for c in cols] for d in documents)
    return [c.name for c in cols], rows


def write_csv(kind: KindSpec, documents: Sequence[Mapping[str, Any]], key_of: KeyOf) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header, rows = table(kind, documents, key_of)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else _text(v) for v in row])
    return out.getvalue()


# A CSV cell starting with one of these is a formula to a spreadsheet program (CSV
# injection): it is written with a leading apostrophe, which reading removes again.
_FORMULA_START = ("=", "+", "-", "@")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_xlsx(by_kind: Mapping[str, Sequence[Mapping[str, Any]]], key_of: KeyOf) -> bytes:
    """One sheet per kind (in the order a batch applies them), streamed row by row."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    for name in APPLY_ORDER:
        if name not in by_kind:
            continue
        kind = KINDS[name]
        sheet = book.create_sheet(name)
        header, rows = table(kind, by_kind[name], key_of)
        texts = [c.text for c in columns(kind, _languages(by_kind[name]))]
        sheet.append(header)
        for row in rows:
            cells = []
            for value, text in zip(row, texts, strict=False):
                cell = WriteOnlyCell(sheet, value=value)
                if isinstance(value, str) and value.startswith("="):
                    cell.data_type = "s"  # a value, never a formula
                if text:
                    # A text cell stays text when edited: a postal code 01067 keeps its zero.
                    cell.number_format = "@"
                cells.append(cell)
            sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _parse_cell(column: Column, raw: Any) -> Any:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.strip()
        if raw == "":
            return None
        if raw.startswith("'") and raw[1:2] in _FORMULA_START:
            raw = raw[1:]
    if column.shape == "list":
        text = str(raw)
        if text.startswith("["):
            return json.loads(text)
        return [v.strip() for v in text.split(LIST_SEPARATOR) if v.strip()]
    if column.shape == "objects":
        return json.loads(str(raw))
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if column.text and isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    return raw


def known_columns(kind: KindSpec) -> dict[str, Column]:
    """Every header a sheet of this kind may have (any language for names)."""
    _, kept = _reference_fields(kind)
    known = {c.name: c for c in columns(kind, codes.LANGUAGES)}
    for name in kept:
        known.setdefault(name, Column(name, name, text=True))
    return known


def read_rows(
    kind: KindSpec,
    rows: Iterable[tuple[int, Sequence[Any]]],
    owner: str,
    batch: ParsedBatch,
    where: tuple[str | int, ...],
    meter: Meter,
) -> None:
    """Numbered rows of one kind (the first is the header) into `batch`, each located by
    its number; `meter` bounds the time (its producer counts the rows)."""
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return
    header_number, header = first
    if _width(header) > MAX_COLUMNS:
        batch.note(FieldError((*where, "row", header_number),
                              f"has more than {MAX_COLUMNS} columns"))  # fmt: skip
        batch.unidentified += 1
        return
    known = known_columns(kind)
    names = [str(h).strip() if h is not None else "" for h in header]
    unknown = [n for n in names if n and n not in known]
    if unknown:
        listed = ", ".join(known)
        batch.note(
            *(
                FieldError((*where, "row", header_number, n),
                           f"is not a column of {kind.name}; columns: {listed}")
                for n in unknown
            )
        )  # fmt: skip
        batch.unidentified += 1
        return
    for number, row in iterator:
        meter.tick()
        if _width(row) > MAX_COLUMNS:
            batch.lines += 1
            batch.note(FieldError((*where, "row", number), f"has more than {MAX_COLUMNS} cells"))
            batch.unidentified += 1
            continue
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
            continue
        batch.lines += 1
        data, unreadable = row_document(known, names, row)
        for name, error in unreadable:
            batch.note(FieldError((*where, "row", number, name), error))
        if unreadable:
            batch.unidentified += 1
            continue
        add_document(batch, kind, data, owner, (*where, "row", number), number)


def _width(row: Sequence[Any]) -> int:
    """Cells up to the last one filled in (a workbook read to a column limit pads rows
    with empty cells up to it)."""
    width = len(row)
    while width and (row[width - 1] is None or row[width - 1] == ""):
        width -= 1
    return width


def row_document(
    known: Mapping[str, Column], names: Sequence[str], row: Sequence[Any]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """One row's cells under their column names as a document, and the cells that could
    not be read (name, why). Also the console's edit form, whose fields are these columns."""
    data: dict[str, Any] = {}
    unreadable = []
    for name, raw in zip(names, row, strict=False):
        if not name:
            continue
        column = known[name]
        try:
            value = _parse_cell(column, raw)
        except ValueError as error:
            unreadable.append((name, f"is not a JSON array: {error}"))
            continue
        if value is None:
            continue
        if column.member is None:
            data[column.field] = value
        else:
            data.setdefault(column.field, {})[column.member] = value
    return data, unreadable


def read_csv(text: str, kind: KindSpec, owner: str, batch: ParsedBatch, meter: Meter) -> None:
    rows = csv.reader(_bounded_lines(text.lstrip("\ufeff"), batch))
    try:
        read_rows(kind, _counted(rows, meter), owner, batch, (), meter)
    except csv.Error as error:  # a cell over the csv module's own limit, a NUL
        batch.note(FieldError(("row", rows.line_num), f"is not CSV: {error}"))
        batch.unidentified += 1


def _counted(rows: Iterable[list[str]], meter: Meter) -> Iterator[tuple[int, list[str]]]:
    for number, row in enumerate(rows, start=1):
        meter.row()
        yield number, row


def _bounded_lines(text: str, batch: ParsedBatch) -> Iterator[str]:
    """The text's lines, an over-long one given as empty (and noted), so that no row the
    reader builds holds more than an entry's worth of cells."""
    start, number = 0, 0
    while start < len(text):
        # Found, not split: an over-long line is skipped without a copy of it being made.
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        number, length, start = number + 1, end - start, end
        if length > MAX_LINE_BYTES:
            what = "the header's columns" if number == 1 else "an entry"
            message = f"is longer than {MAX_LINE_BYTES} characters: too long for {what}"
            batch.note(FieldError(("line", number), message))
            batch.unidentified += 1
            if number == 1:  # without its header no row can be read
                return
            yield "\n"
        else:
            yield text[end - length : end]


def read_xlsx(data: bytes, owner: str, batch: ParsedBatch, meter: Meter) -> None:
    """Every sheet named after a kind, in the order a batch applies them, every row of
    it (whatever its `<dimension>` says), within `meter`'s budget (`TooLarge`)."""
    from cdb_service.registry.formats.xlsx_reader import Workbook  # openpyxl, when needed

    book = Workbook(data, meter, MAX_COLUMNS)
    titles = dict(book.sheets)
    for title in titles:
        if title not in KINDS:
            batch.note(FieldError(("sheet", title), f"is not a kind; sheets: {', '.join(KINDS)}"))
            batch.unidentified += 1
    for name in APPLY_ORDER:
        if name in titles:
            read_rows(KINDS[name], book.rows(titles[name]), owner, batch, ("sheet", name), meter)
