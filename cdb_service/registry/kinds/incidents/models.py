from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import DateTimeUTC
from cdb_service.db.revisions import EntryModel

OPEN, CLOSED = "open", "closed"


class Incident(EntryModel):
    __tablename__ = "incidents"
    __table_args__ = (UniqueConstraint("owner", "ref"),)

    component: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(500))
    started_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC, index=True)
    # When the outage was confirmed; given by the probe, else the time it was recorded.
    detected_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    expected_recovery_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC)
    source: Mapped[str] = mapped_column(String(10))
    # Set by the server: when the registry published the incident (Annex I 6.10); fixed.
    notified_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC, doc="when the registry published the incident (set by the server)"
    )
    # Derived from ended_at; a client cannot set it.
    status: Mapped[str] = mapped_column(
        String(10), index=True, doc="open, or closed once ended_at is set (set by the server)"
    )


def derive(values: Mapping[str, Any], current: Mapping[str, Any] | None) -> dict[str, Any]:
    """`status` follows `ended_at`; `detected_at`, when not given, is kept as it was or,
    on creation, is the time the incident was recorded (`notified_at`)."""
    before = current or {}
    detected_at = (
        values.get("detected_at") or before.get("detected_at")
        or values.get("notified_at") or before.get("notified_at")
    )  # fmt: skip
    return {
        "status": OPEN if values.get("ended_at") is None else CLOSED,
        "detected_at": detected_at,
    }
