from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Boolean, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import DateTimeUTC, JsonB
from cdb_service.db.revisions import EntryModel


class MaintenanceWindow(EntryModel):
    __tablename__ = "maintenance_windows"
    __table_args__ = (UniqueConstraint("owner", "ref"),)

    component: Mapped[str] = mapped_column(String(100))
    starts_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC, index=True)
    ends_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    reason: Mapped[str] = mapped_column(String(500))
    cancelled: Mapped[bool] = mapped_column(Boolean)
    # A regular, fixed window's day and time (kernel/recurrence.py); None for a one-off.
    recurrence: Mapped[dict[str, Any] | None] = mapped_column(JsonB, default=None)
    # `doc`: the description of a server-set field in the contract (registry/answers.py).
    announced_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC, doc="when the window was first recorded (set by the server, never changed)"
    )
    # Derived by the server from starts_at, ends_at and announced_at (Annex I 6.3–6.4);
    # see cdb_service/probe/calendar.py for the rules. A client cannot set them.
    required_notice_working_days: Mapped[int] = mapped_column(
        Integer, doc="the notice its length requires: 5, 10 or 30 working days (Annex I 6.4)"
    )
    notice_working_days: Mapped[int] = mapped_column(
        Integer, doc="working days between announced_at and starts_at"
    )
    notice_met: Mapped[bool] = mapped_column(
        Boolean, doc="whether it was announced with the required notice"
    )
    within_preferred_hours: Mapped[bool] = mapped_column(
        Boolean, doc="whether it lies within 20:00-07:00 CET on working days (Annex I 6.3)"
    )


DERIVED = ("required_notice_working_days", "notice_working_days", "notice_met",
           "within_preferred_hours")  # fmt: skip


def derive(values: Mapping[str, Any], current: Mapping[str, Any] | None) -> dict[str, Any]:
    """The notice and preferred-hours fields of a window (Annex I 6.3–6.4); of a regular
    window's first occurrence (6.5: its notice is given once, when it is declared)."""
    from cdb_service.kernel.calendar import derive as notice
    from cdb_service.kernel.recurrence import Recurrence

    announced_at = values.get("announced_at") or (current or {})["announced_at"]
    starts_at, ends_at = values["starts_at"], values["ends_at"]
    if values.get("recurrence"):
        first = Recurrence.of(values["recurrence"]).first((starts_at, ends_at))
        if first is not None:  # the schema refuses a schedule without one
            starts_at, ends_at = first
    return dataclasses.asdict(notice(starts_at, ends_at, announced_at))
