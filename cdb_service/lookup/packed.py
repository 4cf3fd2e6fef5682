"""A frozen map of short byte strings to small integers, packed into two buffers.

At a million keys a dict of str costs about 100 MiB (a 50-byte object per key and
the dict's own table); the same keys padded to one width in one `bytes` object,
sorted, with their values in an `array`, cost about 15 MiB and hold no object per
key for the garbage collector to walk. A look-up is a binary search (some twenty
slice comparisons, a few microseconds), which the answer cache makes rare.

Keys are compared as bytes padded with NUL to the table's width; keys never hold
NUL (stored text refuses control characters), so the padded order is the order of
the keys themselves and `b"10"` stays apart from `b"100"`. A key may appear more
than once (one geo key of several criteria): its values are adjacent.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from typing import Any

_VALUE_BYTES = 4
_SEP = b"\0"


def record(key: bytes, value: int) -> bytes:
    """One entry to build a table from: the key, a NUL, the value (big-endian, so that
    records sort by key first)."""
    return key + _SEP + value.to_bytes(_VALUE_BYTES, "big")


class PackedKeys:
    # `_blob` is `bytes`, or an `mmap` (a table mapped from a snapshot file, `_base` bytes
    # in): both slice to `bytes`. `_values` an `array`, or a memoryview of the same map.
    __slots__ = ("_base", "_blob", "_count", "_distinct", "_values", "_width")

    def __init__(self, records: Iterable[bytes] = ()) -> None:
        """`records` from `record`, in any order; a list is sorted in place (no copy),
        and may be dropped by the caller afterwards."""
        ordered = records if isinstance(records, list) else list(records)
        ordered.sort()
        width = max((len(r) for r in ordered), default=_VALUE_BYTES + 1) - _VALUE_BYTES - 1
        self._width = width
        self._base = 0
        self._count = len(ordered)
        self._values: Any = array("I")
        blob = bytearray()
        self._distinct, last = 0, b""
        for r in ordered:
            key = r[: -_VALUE_BYTES - 1].ljust(width, _SEP)
            self._distinct += key != last
            blob += key
            last = key
            self._values.append(int.from_bytes(r[-_VALUE_BYTES:], "big"))
        self._blob: Any = bytes(blob)

    @classmethod
    def mapped(cls, buffer: Any, keys_at: int, values_at: int, width: int, count: int,
               distinct: int) -> PackedKeys:  # fmt: skip
        """A table whose buffers lie in `buffer` (an `mmap`, read-only): nothing is copied,
        so every process that maps the same file shares the pages."""
        table = cls()
        table._width, table._count, table._distinct = width, count, distinct
        table._blob, table._base = buffer, keys_at
        view = memoryview(buffer)[values_at : values_at + count * _VALUE_BYTES]
        table._values = view.cast("I")
        return table

    def layout(self) -> tuple[dict[str, int], bytes, memoryview]:
        """(width, count, distinct), the keys' bytes and the values' bytes: what `mapped`
        takes back from a file."""
        keys = self._blob[self._base : self._base + self._count * self._width]
        shape = {"width": self._width, "count": self._count, "distinct": self._distinct}
        return shape, keys, memoryview(self._values).cast("B")

    def __len__(self) -> int:
        """How many distinct keys."""
        return self._distinct

    def _first(self, probe: bytes) -> int:
        """Where `probe` (padded to the width) is, or would be."""
        blob, width, base = self._blob, self._width, self._base
        lo, hi = 0, self._count
        while lo < hi:
            mid = (lo + hi) >> 1
            at = base + mid * width
            if blob[at : at + width] < probe:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def get(self, key: bytes) -> tuple[int, ...]:
        """Every value of `key`, in increasing order; () when it is absent."""
        width = self._width
        if len(key) > width:
            return ()
        probe = key.ljust(width, _SEP)
        blob, at, base = self._blob, self._first(probe), self._base
        found: list[int] = []
        while at < self._count and blob[base + at * width : base + at * width + width] == probe:
            found.append(self._values[at])
            at += 1
        return tuple(found)

    def __iter__(self) -> Iterator[bytes]:
        """Each key once, in order."""
        blob, width, last, base = self._blob, self._width, b"", self._base
        for at in range(self._count):
            key = blob[base + at * width : base + at * width + width].rstrip(_SEP)
            if key != last:
                yield key
            last = key

    def size_bytes(self) -> int:
        return self._count * self._width + int(self._values.itemsize) * len(self._values)


class MappedText:
    """Text that lies in a mapped file (a criterion's own geo keys, `index.Criterion`):
    read, as `str` methods would, only when it is used."""

    __slots__ = ("_at", "_buffer", "_end")

    def __init__(self, buffer: Any, at: int, end: int) -> None:
        self._buffer, self._at, self._end = buffer, at, end

    def __bool__(self) -> bool:
        return self._end > self._at

    def __len__(self) -> int:
        return self._end - self._at

    def __str__(self) -> str:
        return bytes(self._buffer[self._at : self._end]).decode()

    def split(self, separator: str) -> list[str]:
        return str(self).split(separator)


class PackedBuilder:
    """A table from keys that arrive in order, without an object per key on the way.

    `width`: the longest key that may come. Keys out of order (a database collation
    that is not byte order) are not an error: the table is then sorted at the end.
    Values of one key are stored in increasing order, whatever order they came in.
    """

    __slots__ = ("_blob", "_distinct", "_last", "_run", "_sorted", "_values", "_width")

    def __init__(self, width: int) -> None:
        self._width = width
        self._blob = bytearray()
        self._values = array("I")
        self._last = b""
        self._run: list[int] = []  # the values of the current key, not yet written
        self._sorted = True
        self._distinct = 0

    def add(self, key: bytes, value: int) -> None:
        padded = key.ljust(self._width, _SEP)
        if padded != self._last:
            self._flush()
            if padded < self._last:
                self._sorted = False
            self._last = padded
        self._run.append(value)

    def _flush(self) -> None:
        self._distinct += bool(self._run)
        for value in sorted(self._run):
            self._blob += self._last
            self._values.append(value)
        self._run = []

    def build(self) -> PackedKeys:
        self._flush()
        width, blob = self._width, self._blob
        if not self._sorted:
            return PackedKeys(
                record(bytes(blob[at * width : at * width + width]).rstrip(_SEP), value)
                for at, value in enumerate(self._values)
            )
        table = PackedKeys()
        table._width, table._count, table._distinct = width, len(self._values), self._distinct
        table._blob, table._values = bytes(blob), self._values
        self._blob = bytearray()
        return table
