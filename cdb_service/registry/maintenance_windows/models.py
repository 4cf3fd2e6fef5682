from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Integer, String, UniqueConstraint, event
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
    # Derived by the server from starts_at, ends_at and announced_at (Annex I 6.3–6.4);
    # see cdb_service/probe/calendar.py for the rules. A client cannot set them.
    required_notice_working_days: Mapped[int] = mapped_column(Integer)
    notice_working_days: Mapped[int] = mapped_column(Integer)
    notice_met: Mapped[bool] = mapped_column(Boolean)
    within_preferred_hours: Mapped[bool] = mapped_column(Boolean)


INPUTS = ("starts_at", "ends_at", "announced_at")
DERIVED = ("required_notice_working_days", "notice_working_days", "notice_met",
           "within_preferred_hours")  # fmt: skip
_PENDING = "_derived_pending"


def _compute(inputs: dict[str, Any]) -> dict[str, Any] | None:
    from cdb_service.probe.calendar import derive

    if any(inputs.get(name) is None for name in INPUTS):
        return None
    return dataclasses.asdict(
        derive(inputs["starts_at"], inputs["ends_at"], inputs["announced_at"])
    )


def _current(target: MaintenanceWindow) -> dict[str, Any]:
    return {name: target.__dict__.get(name) for name in INPUTS}


def _on_input(name: str) -> Any:
    def listener(target: MaintenanceWindow, value: Any, old: Any, initiator: Any) -> Any:
        computed = _compute(_current(target) | {name: value})
        if computed is not None:
            target.__dict__[_PENDING] = computed
            try:
                for key, derived in computed.items():
                    setattr(target, key, derived)
            finally:
                del target.__dict__[_PENDING]
        return value

    return listener


def _on_derived(name: str) -> Any:
    def listener(target: MaintenanceWindow, value: Any, old: Any, initiator: Any) -> Any:
        # Whatever is offered (the service offers the write time for every server field),
        # the stored value is the one derived from the window itself.
        computed = target.__dict__.get(_PENDING) or _compute(_current(target))
        return computed[name] if computed is not None else value

    return listener


for _name in INPUTS:
    event.listen(getattr(MaintenanceWindow, _name), "set", _on_input(_name), retval=True)
for _name in DERIVED:
    event.listen(getattr(MaintenanceWindow, _name), "set", _on_derived(_name), retval=True)


@event.listens_for(MaintenanceWindow, "before_delete")
def _never_deleted(mapper: Any, connection: Any, target: MaintenanceWindow) -> None:
    """An announced window stays on record: it is cancelled, not deleted."""
    from cdb_service.problems import conflict

    raise conflict(
        "a maintenance window is never deleted: cancel it instead "
        '(PUT the window with "cancelled": true)'
    )
