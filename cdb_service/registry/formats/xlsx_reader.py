"""An XLSX workbook read row by row within a `Budget`: the rows as they are in the sheet.

Not openpyxl's reader: its read-only mode trusts the sheet's `<dimension>` (rows past it
are silently dropped, which in replace mode deleted the entries they held), pads every
row to the widest column, keeps an emptied element per row and builds a cell's whole
text before anyone can look at its length. Here each part is unpacked 64 KiB at a time
through a stream that counts what it gives against what the ZIP declared, and fed to
expat, whose callbacks count rows, cells, characters and shared strings and refuse
(`TooLarge`) as soon as one passes its budget; a document type declaration (entities)
is refused outright. Values are read as openpyxl reads them (`data_only`): numbers,
booleans, shared and inline strings, dates by the cell's number format.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
import zlib
from array import array
from collections.abc import Callable, Iterator
from typing import Any
from xml.parsers import expat

from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format
from openpyxl.utils.cell import column_index_from_string, coordinate_from_string
from openpyxl.utils.datetime import (
    CALENDAR_MAC_1904,
    CALENDAR_WINDOWS_1900,
    from_excel,
    from_ISO8601,
)

from cdb_service.registry.formats.budget import EXCEL_ROWS, Meter, TooLarge

CHUNK = 64 * 1024
MAX_PARTS = 10_000
MAX_DEPTH = 64
_OFFICE_DOCUMENT = "/officeDocument"
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
               OSError, expat.ExpatError, KeyError, IndexError)  # fmt: skip
Handlers = tuple[Callable[..., None], Callable[[str], None], Callable[[str], None]]


def _local(name: str) -> str:
    return name.rpartition(" ")[2]


def _refuse_dtd(*_: Any) -> None:
    raise ValueError("not an XLSX workbook (a part declares a document type)")


class Workbook:
    """The sheets of one workbook, each read as numbered rows of values."""

    def __init__(self, data: bytes, meter: Meter, max_columns: int) -> None:
        self.meter, self.max_columns = meter, max_columns
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zip.infolist()
        except _ZIP_ERRORS as error:
            raise ValueError(f"not an XLSX workbook ({type(error).__name__})") from None
        names = [info.filename for info in infos]
        if len(infos) > MAX_PARTS or len(set(names)) != len(names):
            raise ValueError("not an XLSX workbook (too many or repeated parts)")
        declared = sum(info.file_size for info in infos)
        if declared > meter.budget.uncompressed:
            limit = meter.budget.uncompressed // 2**20
            raise TooLarge(f"the workbook unpacks to more than {limit} MiB")
        root = self._relationships("_rels/.rels", "")
        book = next((t for _, (kind, t) in root.items() if kind.endswith(_OFFICE_DOCUMENT)),
                    "xl/workbook.xml")  # fmt: skip
        folder, file = posixpath.split(book)
        rels = self._relationships(f"{folder}/_rels/{file}.rels", folder)
        self.epoch = CALENDAR_WINDOWS_1900
        self.sheets: list[tuple[str, str]] = []
        self._read_small(book, self._workbook_handlers(rels))
        self.dates: set[int] = set()
        self.durations: set[int] = set()
        styles = next((t for kind, t in rels.values() if kind.endswith("/styles")), None)
        if styles in names:
            self._styles(styles)
        self.strings = array("L", [0])
        self.text = bytearray()
        shared = next((t for kind, t in rels.values() if kind.endswith("/sharedStrings")), None)
        if shared in names:
            self._shared_strings(shared)

    # --- parts ---------------------------------------------------------------------

    def _feed(self, name: str, handlers: Handlers, limit: int | None = None
              ) -> Iterator[None]:  # fmt: skip
        """Unpacks `name` a chunk at a time into a parser with `handlers`; yields after
        each chunk (rows done so far can then be taken)."""
        info = self.zip.NameToInfo.get(name)
        if info is None:
            raise ValueError(f"not an XLSX workbook (no part {name[:100]})")
        if limit is not None and info.file_size > limit:
            raise TooLarge(f"the workbook's part {name} is larger than {limit // 2**20} MiB")
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = handlers
        parser.StartDoctypeDeclHandler = _refuse_dtd
        parser.EntityDeclHandler = _refuse_dtd
        read = 0
        try:
            with self.zip.open(info) as stream:
                while chunk := stream.read(CHUNK):
                    read += len(chunk)
                    if read > info.file_size:
                        raise ValueError(f"not an XLSX workbook ({name} is longer than declared)")
                    self.meter.unpack(len(chunk))
                    parser.Parse(chunk, False)
                    self.meter.tick()
                    yield
            parser.Parse(b"", True)
        except _ZIP_ERRORS as error:
            raise ValueError(f"not a readable XLSX workbook ({type(error).__name__})") from None
        yield

    def _read_small(self, name: str, handlers: Handlers) -> None:
        for _ in self._feed(name, handlers, self.meter.budget.part):
            pass

    def _relationships(self, name: str, folder: str) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}

        def start(tag: str, attrs: dict[str, str]) -> None:
            if _local(tag) == "Relationship" and len(found) < MAX_PARTS:
                target = attrs.get("Target", "")
                path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(
                    posixpath.join(folder, target))  # fmt: skip
                found[attrs.get("Id", "")] = (attrs.get("Type", ""), path)

        if name in self.zip.NameToInfo:
            self._read_small(name, (start, _nothing, _nothing))
        return found

    def _workbook_handlers(self, rels: dict[str, tuple[str, str]]) -> Handlers:
        def start(tag: str, attrs: dict[str, str]) -> None:
            local = _local(tag)
            if local == "workbookPr" and attrs.get("date1904", "").lower() in ("1", "true"):
                self.epoch = CALENDAR_MAC_1904
            elif local == "sheet" and len(self.sheets) < MAX_PARTS:
                rel = next((v for k, v in attrs.items() if _local(k) == "id"), "")
                if rel in rels:
                    self.sheets.append((attrs.get("name", ""), rels[rel][1]))

        return start, _nothing, _nothing

    def _styles(self, name: str) -> None:
        formats: dict[int, str] = {}
        styles: list[int] = []
        within = [False]

        def start(tag: str, attrs: dict[str, str]) -> None:
            local = _local(tag)
            if local == "numFmt":
                formats[_int(attrs.get("numFmtId"))] = attrs.get("formatCode", "")
            elif local == "cellXfs":
                within[0] = True
            elif local == "xf" and within[0]:
                styles.append(_int(attrs.get("numFmtId")))

        def end(tag: str) -> None:
            if _local(tag) == "cellXfs":
                within[0] = False

        self._read_small(name, (start, end, _nothing))
        for index, number in enumerate(styles):
            code = formats.get(number) or BUILTIN_FORMATS.get(number) or "General"
            if is_date_format(code):
                self.dates.add(index)
            if is_timedelta_format(code):
                self.durations.add(index)

    def _shared_strings(self, name: str) -> None:
        budget = self.meter.budget
        pieces: list[str] = []
        size = [0]
        path: list[str] = []

        def start(tag: str, attrs: dict[str, str]) -> None:
            path.append(_local(tag))
            if len(path) > MAX_DEPTH:
                raise ValueError("not an XLSX workbook (its shared strings nest too deeply)")
            if path[-1] == "si":
                pieces.clear()
                size[0] = 0

        def end(tag: str) -> None:
            if path.pop() == "si":
                text = "".join(pieces).replace("x005F_", "").encode()
                self.text += text
                if len(self.text) > budget.shared_bytes:
                    limit = budget.shared_bytes // 2**20
                    raise TooLarge(f"the workbook's shared strings hold more than {limit} MiB")
                if len(self.strings) > budget.shared_strings:
                    raise TooLarge(f"the workbook has more than {budget.shared_strings} "
                                   "shared strings")  # fmt: skip
                self.strings.append(len(self.text))

        def characters(data: str) -> None:
            # A string's text: its <t>, or the <t> of its runs (not phonetic hints).
            if len(path) >= 2 and path[-1] == "t" and path[-2] in ("si", "r") and "si" in path:
                size[0] += len(data)
                if size[0] > budget.cell_chars:
                    raise TooLarge(f"a shared string is longer than {budget.cell_chars} "
                                   "characters")  # fmt: skip
                pieces.append(data)

        for _ in self._feed(name, (start, end, characters)):
            pass

    def shared(self, index: str) -> str:
        number = int(index)
        if not 0 <= number < len(self.strings) - 1:
            raise ValueError(f"not a readable XLSX workbook (no shared string {number})")
        return self.text[self.strings[number] : self.strings[number + 1]].decode()

    # --- rows ------------------------------------------------------------------------

    def rows(self, part: str) -> Iterator[tuple[int, list[Any]]]:
        """The sheet's rows that hold a cell, numbered as in the sheet (no `<dimension>`
        is consulted); a cell past `max_columns` + 1 marks its row as too wide."""
        reader = _SheetReader(self)
        for _ in self._feed(part, (reader.start, reader.end, reader.characters)):
            done, reader.done = reader.done, []
            yield from done


class _SheetReader:
    def __init__(self, book: Workbook) -> None:
        self.book, self.meter = book, book.meter
        self.done: list[tuple[int, list[Any]]] = []
        self.path: list[str] = []
        self.row, self.column = 0, 0
        self.cells: dict[int, Any] = {}
        self.row_chars = 0
        self.kind, self.style, self.text, self.inline = "n", 0, [""], False
        self.cell_chars = 0

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        local = _local(tag)
        self.path.append(local)
        if len(self.path) > MAX_DEPTH:
            raise ValueError("not an XLSX workbook (a sheet nests too deeply)")
        if local == "row":
            self.meter.row()
            self.row = _int(attrs["r"]) if attrs.get("r") else self.row + 1
            if not 0 < self.row <= EXCEL_ROWS:
                raise ValueError(f"not an XLSX workbook (row number {self.row})")
            self.column, self.cells, self.row_chars = 0, {}, 0
        elif local == "c":
            self.meter.cell()
            reference = attrs.get("r") or ""
            try:
                self.column = (column_index_from_string(coordinate_from_string(reference)[0])
                               if reference else self.column + 1)  # fmt: skip
            except ValueError:
                raise ValueError(f"not an XLSX workbook (cell {reference[:20]!r})") from None
            self.kind, self.style = attrs.get("t", "n"), _int(attrs.get("s"))
            self.text, self.inline, self.cell_chars = [], False, 0
        elif local == "is":
            self.inline = True

    def characters(self, data: str) -> None:
        path = self.path
        if len(path) < 2 or "c" not in path[-4:]:
            return
        if (path[-1] == "v" and path[-2] == "c") or (
            path[-1] == "t" and (path[-2] == "is" or (path[-2] == "r" and path[-3] == "is"))
        ):
            budget = self.meter.budget
            self.cell_chars += len(data)
            self.row_chars += len(data)
            if self.cell_chars > budget.cell_chars:
                raise TooLarge(f"a cell (row {self.row}) is longer than {budget.cell_chars} "
                               "characters")  # fmt: skip
            if self.row_chars > budget.row_chars:
                raise TooLarge(f"row {self.row} holds more than {budget.row_chars} characters")
            self.text.append(data)

    def end(self, tag: str) -> None:
        local = self.path.pop()
        if local == "c":
            value = self._value()
            if value is not None:
                limit = self.book.max_columns + 1
                self.cells[min(self.column, limit)] = value
        elif local == "row" and self.cells:
            width = max(self.cells)
            values = [None] * width
            for column, value in self.cells.items():
                values[column - 1] = value
            self.done.append((self.row, values))
            self.cells = {}

    def _value(self) -> Any:
        text = "".join(self.text)
        kind = self.kind
        if kind == "inlineStr":
            return text if self.inline else None
        if not text:
            return None
        try:
            if kind == "n":
                number: Any = float(text) if any(c in text for c in ".eE") else int(text)
                if self.style in self.book.dates:
                    try:
                        return from_excel(number, self.book.epoch,
                                          timedelta=self.style in self.book.durations)  # fmt: skip
                    except (OverflowError, ValueError):
                        return "#VALUE!"
                return number
            if kind == "s":
                return self.book.shared(text)
            if kind == "b":
                return bool(int(text))
            if kind == "d":
                return from_ISO8601(text)
        except ValueError:
            raise ValueError(f"not a readable XLSX workbook (cell of row {self.row})") from None
        return text  # str (a formula's text), e (an error such as #N/A)


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        raise ValueError("not an XLSX workbook (a number that is not one)") from None


def _nothing(*_: Any) -> None:
    return None
