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

from cdb_service.kernel.problems import FieldError, Problem


def encode_cursor(revision: int, after: uuid.UUID) -> str:
    raw = json.dumps({"r": revision, "a": str(after)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MAX_CURSOR = 200  # what encode_cursor gives out is about 80 characters


def decode_cursor(cursor: str) -> tuple[int, uuid.UUID]:
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError("too long")
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        revision = data["r"]
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
            raise ValueError("not a revision")
        return revision, uuid.UUID(data["a"])
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        error = FieldError(("query", "cursor"), "unknown cursor")
        raise Problem(
            400, "Malformed request", "the cursor is not one this service gave out",
            "malformed-request", [error],
        ) from None  # fmt: skip
