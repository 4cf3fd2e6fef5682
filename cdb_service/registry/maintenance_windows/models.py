from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, String, UniqueConstraint
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
    announced_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
