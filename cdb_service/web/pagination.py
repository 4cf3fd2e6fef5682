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

from cdb_service.kernel.problems import FieldError, Problem


def encode_cursor(revision: int, after: uuid.UUID, sort_value: Any = None) -> str:
    """`sort_value`: the last entry's value of the sort field, for pages in another order."""
    data: dict[str, Any] = {"r": revision, "a": str(after)}
    if sort_value is not None:
        data["s"] = sort_value
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, uuid.UUID]:
    revision, after, _ = decode_sorted_cursor(cursor)
    return revision, after


def decode_sorted_cursor(cursor: str) -> tuple[int, uuid.UUID, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return int(data["r"]), uuid.UUID(data["a"]), data.get("s")
    except (ValueError, KeyError, TypeError, binascii.Error):
        error = FieldError(("query", "cursor"), "unknown cursor")
        raise Problem(
            400, "Malformed request", "the cursor is not one this service gave out",
            "malformed-request", [error],
        ) from None  # fmt: skip
