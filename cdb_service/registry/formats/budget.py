"""What reading an uploaded spreadsheet may cost: time, rows, cells, unpacked bytes.

A workbook is a ZIP: 77 KB of it can unpack to millions of empty rows, 400 KB to one
cell of hundreds of megabytes. Reading is therefore metered as it goes, and refused
(`TooLarge`, a 413) the moment a count passes its budget: before the memory or the time
it would take is spent, not after. The budgets are far above what a member state's
registry needs (a 50,000-entry export is a fraction of each) and far below what would
hurt the service (the memory they allow is tens of megabytes).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from cdb_service.registry.formats.ndjson import MAX_LINE_BYTES

MiB = 1024 * 1024
# Excel's own limit of rows in a sheet: a row number beyond it is no spreadsheet's.
EXCEL_ROWS = 1_048_576


class TooLarge(ValueError):
    """The file unpacks to more than reading it may cost (said in one sentence)."""


@dataclass(frozen=True)
class Budget:
    """The most one upload may cost to read (every count is of the whole file)."""

    seconds: float = 60.0
    # All of a workbook's parts, as its ZIP declares them and as they unpack.
    uncompressed: int = 256 * MiB
    # A part that is read whole into a table (the workbook, relationships, styles).
    part: int = 4 * MiB
    rows: int = EXCEL_ROWS  # every sheet together, empty rows included
    cells: int = 16 * MiB
    shared_bytes: int = 32 * MiB  # the shared strings, UTF-8
    shared_strings: int = EXCEL_ROWS
    cell_chars: int = MAX_LINE_BYTES  # an entry's own limit
    row_chars: int = MAX_LINE_BYTES  # the text written in one row's cells


@dataclass
class Meter:
    """Counts what a reading has cost so far against its `Budget`."""

    budget: Budget = field(default_factory=Budget)
    rows: int = 0
    cells: int = 0
    unpacked: int = 0
    deadline: float = 0.0

    def __post_init__(self) -> None:
        seconds = self.budget.seconds
        self.deadline = time.monotonic() + seconds if math.isfinite(seconds) else math.inf

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TooLarge(f"the file takes longer than {self.budget.seconds:g} s to read")

    def row(self) -> None:
        self.rows += 1
        if self.rows > self.budget.rows:
            raise TooLarge(f"the file has more than {self.budget.rows} rows (empty ones count)")
        if not self.rows % 256:
            self.tick()

    def cell(self) -> None:
        self.cells += 1
        if self.cells > self.budget.cells:
            raise TooLarge(f"the file has more than {self.budget.cells} cells")

    def unpack(self, size: int) -> None:
        self.unpacked += size
        if self.unpacked > self.budget.uncompressed:
            limit = self.budget.uncompressed // MiB
            raise TooLarge(f"the workbook unpacks to more than {limit} MiB")
