"""The lookup index as an immutable snapshot file, mapped read-only by every worker of a host.

`snapshot.py` builds an index from the database; this module writes one to a file and
maps it back. The packed tables (the geo keys, each country's postal codes: most of an
index's bytes at a million keys) lie in the file as they lie in memory and are used in
place through `mmap`, so the workers of a host share one copy of their pages (the
kernel's page cache) instead of holding one each. The rest of the index (criteria,
entries, the gazetteer's places) is a pickle in the same file, read into each worker:
the service's own file (nobody else writes into its runtime directory).

The file: a 64-byte header (magic, format, where the description is, the file's length
and the SHA-256 of everything after the header), the tables (8-byte aligned), each
criterion's own keys (read only when that criterion changes), the pickle, and a JSON
description (release, revision, the revision's commit time, when the index matched the
database, where each table is). A file that is shorter or longer
than its header says, whose digest does not match, or of another format or release is
refused whole (`Unusable`), never half-served: the caller builds a new one.

Written atomically (a temporary file, fsync, rename, mode 0600): a worker that maps
the old file keeps its pages (the old inode lives until the last map goes); a new one
maps the new file.
"""

from __future__ import annotations

import copy
import datetime as dt
import gc
import hashlib
import json
import mmap
import os
import pickle
import struct
import time
from array import array
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from cdb_service import __version__
from cdb_service.lookup.index import CountryPlaces, Criterion, Freshness, Gazetteer, LookupIndex
from cdb_service.lookup.packed import MappedText, PackedKeys

MAGIC = b"CDBLIDX\n"
FORMAT = 2
HEADER = struct.Struct(
    "<8sIIQQQ32s"
)  # magic, format, 0, description at, its length, file length, sha256
ALIGN = 8


class Unusable(Exception):
    """The file is not a whole snapshot of this release: rebuild, never serve it."""


@dataclass(frozen=True)
class Saved:
    index: LookupIndex
    synced_at: dt.datetime  # when the index last matched the database (wall clock)
    committed_at: str | None  # the commit time of its revision: which database it is of
    file: tuple[int, int]  # the file's (inode, mtime_ns): a new file is a new pair

    def age_s(self) -> float:
        return max(0.0, (dt.datetime.now(dt.UTC) - self.synced_at).total_seconds())


def stamp_of(path: Path) -> tuple[int, int] | None:
    """(inode, mtime_ns) of the file now, or None when there is none."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_ino, found.st_mtime_ns


def write(path: Path, index: LookupIndex, synced_at: dt.datetime, committed_at: str | None) -> None:
    """Write `index` (just built: nothing changed since its snapshot) atomically to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            _write_to(out, index, synced_at, committed_at)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def _write_to(out: BinaryIO, index: LookupIndex, synced_at: dt.datetime,
              committed_at: str | None) -> None:  # fmt: skip
    digest = hashlib.sha256()
    at = HEADER.size
    out.write(bytes(at))

    def put(data: bytes | memoryview) -> int:
        nonlocal at
        pad = -at % ALIGN
        out.write(bytes(pad))
        digest.update(bytes(pad))
        start = at + pad
        out.write(data)
        digest.update(data)
        at = start + len(data)
        return start

    def table(packed: PackedKeys) -> dict[str, int]:
        shape, keys, values = packed.layout()
        return {**shape, "keys_at": put(keys), "values_at": put(values)}

    tables = {"geo": table(index.built_geo)}
    countries = {}
    for country, places in index.gazetteer.countries.items():
        tables[f"postal:{country}"] = table(places.postal)
        stripped = CountryPlaces(places.stamp, places.loaded_at)
        stripped.places, stripped.lau_nuts3 = places.places, places.lau_nuts3
        countries[country] = stripped
    # Each criterion's own keys: one text after another, and where each slot's lies.
    spans, criteria = array("Q"), list[Criterion | None]()
    for criterion in index.criteria:
        text = str(criterion.keys).encode() if criterion is not None else b""
        start = put(text) if text else 0
        spans.extend((start, start + len(text)))
        if criterion is not None:
            criterion = copy.copy(criterion)
            criterion.keys = ""
        criteria.append(criterion)
    spans_at = put(memoryview(spans).cast("B"))
    rest = replace(index, built_geo=PackedKeys(), criteria=criteria,
                   gazetteer=Gazetteer(countries, index.gazetteer.identity))  # fmt: skip
    pickled = pickle.dumps(rest, protocol=pickle.HIGHEST_PROTOCOL)
    description = {
        "format": FORMAT, "release": __version__, "revision": index.revision,
        "committed_at": committed_at, "synced_at": synced_at.isoformat(),
        "tables": tables, "rest": [put(pickled), len(pickled)],
        "criterion_keys": [spans_at, len(spans)],
    }  # fmt: skip
    text = json.dumps(description).encode()
    described_at = put(text)
    header = HEADER.pack(MAGIC, FORMAT, 0, described_at, len(text), at, digest.digest())
    out.seek(0)
    out.write(header)


def load(path: Path) -> Saved | None:
    """The snapshot at `path`, mapped; None when there is no file. Raises `Unusable`
    when there is one that must not be served (truncated, damaged, another release)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        found = os.fstat(fd)
        if found.st_size < HEADER.size:
            raise Unusable(f"{found.st_size} bytes: shorter than its header")
        buffer = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    try:
        return _read(buffer, found.st_size, (found.st_ino, found.st_mtime_ns))
    except Unusable:
        buffer.close()
        raise
    except Exception as error:  # a digest that matches over an unreadable pickle: not ours
        raise Unusable(repr(error)) from error


def _read(buffer: mmap.mmap, size: int, file: tuple[int, int]) -> Saved:
    magic, form, _, described_at, described_len, length, digest = HEADER.unpack(
        buffer[: HEADER.size]
    )
    if magic != MAGIC or form != FORMAT:
        raise Unusable(f"not a lookup snapshot of format {FORMAT}")
    if length != size:
        raise Unusable(f"{size} bytes where its header says {length}: truncated or extended")
    with memoryview(buffer) as whole:
        # hashlib lets other threads run while it hashes a large buffer
        if hashlib.sha256(whole[HEADER.size :]).digest() != digest:
            raise Unusable("its SHA-256 does not match its header")
    description: dict[str, Any] = json.loads(buffer[described_at : described_at + described_len])
    if description.get("release") != __version__:
        raise Unusable(f"written by release {description.get('release')}")
    rest_at, rest_len = description["rest"]
    index = pickle.loads(buffer[rest_at : rest_at + rest_len])  # the service's own file
    if not isinstance(index, LookupIndex):
        raise Unusable("no lookup index inside")
    tables = description["tables"]

    def table(name: str) -> PackedKeys:
        shape = tables[name]
        return PackedKeys.mapped(buffer, shape["keys_at"], shape["values_at"], shape["width"],
                                 shape["count"], shape["distinct"])  # fmt: skip

    index.built_geo = table("geo")
    spans_at, count = description["criterion_keys"]
    spans = memoryview(buffer)[spans_at : spans_at + count * 8].cast("Q")
    for slot, criterion in enumerate(index.criteria):
        if criterion is not None:
            criterion.keys = MappedText(buffer, spans[2 * slot], spans[2 * slot + 1])
    spans.release()
    for country, places in index.gazetteer.countries.items():
        places.postal = table(f"postal:{country}")
    synced_at = dt.datetime.fromisoformat(description["synced_at"])
    saved = Saved(index, synced_at, description.get("committed_at"), file)
    # Its last sync was `age` ago: readiness judges it by that, as it would a live one.
    index.freshness = Freshness(time.monotonic() - saved.age_s())
    gc.freeze()  # as a built index: out of the collector's walks
    return saved
