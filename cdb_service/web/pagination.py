"""Keyset page cursors: opaque to clients, pinned to the revision of the first page.

A cursor carries the revision the walk reads and the last id it returned, so the
next page reads the same revision after that id: a walk neither misses nor repeats
an entry, whatever is written meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

from cdb_service.kernel.problems import unknown_cursor


def encode_cursor(revision: int, after: uuid.UUID, sort_value: Any = None) -> str:
    """`sort_value`: the last entry's value of the sort field, for pages in another order."""
    data: dict[str, Any] = {"r": revision, "a": str(after)}
    if sort_value is not None:
        data["s"] = sort_value
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# What encode_cursor gives out: about 80 characters, plus a sort value (a code or name
# of at most a few hundred).
MAX_CURSOR = 2048


def decode_cursor(cursor: str) -> tuple[int, uuid.UUID]:
    revision, after, _ = decode_sorted_cursor(cursor)
    return revision, after


def decode_sorted_cursor(cursor: str) -> tuple[int, uuid.UUID, Any]:
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError("too long")
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        revision = data["r"]
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
            raise ValueError("not a revision")
        carried = data.get("s")
        if carried is not None and not _sort_value(carried):
            raise ValueError("not a sort value")
        return revision, uuid.UUID(data["a"]), carried
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        raise unknown_cursor() from None


def _sort_value(carried: Any) -> bool:
    """[field, value] as encode_cursor wrote it: a name and a scalar the query can compare."""
    return (
        isinstance(carried, list)
        and len(carried) == 2
        and isinstance(carried[0], str)
        and (carried[1] is None or isinstance(carried[1], str | int | float))
        and not isinstance(carried[1], bool)
    )
