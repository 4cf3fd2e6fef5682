"""Routing-party certificates that expire soon (or have): the operators' daily report.

A connector whose peer's certificate has expired cannot exchange messages with it;
the owner must rotate it before then (`POST /api/v1/routing-parties/certificate-
rotation`). The report names each one with its owner, so the operator knows whom
to write to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any


def expiring(documents: Iterable[tuple[str, dict[str, Any]]], within: dt.timedelta,
             now: dt.datetime) -> list[dict[str, Any]]:  # fmt: skip
    """Every certificate whose not-after falls before `now + within`, soonest first."""
    horizon = now + within
    found = []
    for _, party in documents:
        for certificate in party.get("certificates") or ():
            not_after = certificate.get("not_after")
            if not not_after:
                continue
            when = dt.datetime.fromisoformat(str(not_after))
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            if when < horizon:
                found.append({
                    "owner": party["owner"], "routing_party": party["name"],
                    "id": party["id"], "use": certificate.get("use"),
                    "sha256": certificate.get("sha256"), "subject": certificate.get("subject"),
                    "not_after": when.isoformat(), "expired": when <= now,
                    "days_left": round((when - now).total_seconds() / 86400, 1),
                })  # fmt: skip
    return sorted(found, key=lambda c: c["not_after"])
