"""Announcing a retired API version: `Deprecation` (RFC 9745), `Sunset` (RFC 8594), `Link`.

From settings (`CDB_API_DEPRECATIONS`), by path prefix; the perimeter adds the headers
to every answer under that prefix, problems included, so that a client sees the
announcement whatever it calls, for the twelve months or more before the sunset.
"""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime

from cdb_service.settings import ApiDeprecation

Headers = list[tuple[bytes, bytes]]


def headers_of(announcement: ApiDeprecation) -> Headers:
    deprecated = announcement.deprecated_at.astimezone(dt.UTC)
    sunset = announcement.sunset_at.astimezone(dt.UTC)
    links = [f'<{announcement.successor}>; rel="successor-version"']
    if announcement.info:
        links.append(f'<{announcement.info}>; rel="deprecation"; type="text/html"')
    return [
        # RFC 9745: a Structured Field Date, seconds since the epoch.
        (b"deprecation", f"@{int(deprecated.timestamp())}".encode()),
        # RFC 8594: an HTTP-date.
        (b"sunset", format_datetime(sunset, usegmt=True).encode()),
        (b"link", ", ".join(links).encode()),
    ]


def announcements(deprecations: dict[str, ApiDeprecation]) -> list[tuple[str, Headers]]:
    """(prefix, headers), longest prefix first."""
    return sorted(
        ((prefix, headers_of(a)) for prefix, a in deprecations.items()),
        key=lambda item: -len(item[0]),
    )


def for_path(table: list[tuple[str, Headers]], path: str) -> Headers:
    for prefix, headers in table:
        if path == prefix or path.startswith(prefix + "/"):
            return headers
    return []
