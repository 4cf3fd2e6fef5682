from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Boolean, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import DateTimeUTC
from cdb_service.db.revisions import EntryModel


class MaintenanceWindow(EntryModel):
    __tablename__ = "maintenance_windows"
    __table_args__ = (UniqueConstraint("owner", "ref"),)

    component: Mapped[str] = mapped_column(String(100))
    starts_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC, index=True)
    ends_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    reason: Mapped[str] = mapped_column(String(500))
    cancelled: Mapped[bool] = mapped_column(Boolean)
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
    """The notice and preferred-hours fields of a window (Annex I 6.3–6.4)."""
    from cdb_service.kernel.calendar import derive as notice

    announced_at = values.get("announced_at") or (current or {})["announced_at"]
    return dataclasses.asdict(notice(values["starts_at"], values["ends_at"], announced_at))
