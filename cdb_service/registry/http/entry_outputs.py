"""What an entry answer carries: its ETag, and the headers of every write's answer."""

from __future__ import annotations

from typing import Any

from cdb_service.web.consistency import REVISION_HEADER


def etag(document: dict[str, Any]) -> str:
    return f'"{document["version"]}"'


def written_headers(document: dict[str, Any]) -> dict[str, str]:
    """Every write's answer: the new version's ETag and the revision it made (for
    `min_revision` on a read through another worker)."""
    return {"ETag": etag(document), REVISION_HEADER: str(document["revision"])}
