from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import DateTimeUTC
from cdb_service.db.revisions import EntryModel

OPEN, CLOSED = "open", "closed"
STATUSES = (OPEN, CLOSED)
SOURCES = ("operator", "probe")


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
    notified_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    # Derived from ended_at; a client cannot set it.
    status: Mapped[str] = mapped_column(String(10), index=True)


_PENDING = "_status_pending"


def status_of(ended_at: dt.datetime | None) -> str:
    return OPEN if ended_at is None else CLOSED


@event.listens_for(Incident.ended_at, "set", retval=True)
def _on_ended(target: Incident, value: Any, old: Any, initiator: Any) -> Any:
    target.__dict__[_PENDING] = status_of(value)
    try:
        target.status = status_of(value)
    finally:
        del target.__dict__[_PENDING]
    return value


@event.listens_for(Incident.status, "set", retval=True)
def _on_status(target: Incident, value: Any, old: Any, initiator: Any) -> Any:
    # Whatever is offered (the service offers the write time for every server field),
    # the stored status is the one derived from ended_at.
    return target.__dict__.get(_PENDING) or status_of(target.__dict__.get("ended_at"))


@event.listens_for(Incident.detected_at, "set", retval=True)
def _on_detected(target: Incident, value: Any, old: Any, initiator: Any) -> Any:
    """Not given: kept as it was, or (on creation) the time the incident is recorded."""
    if value is not None:
        return value
    kept = target.__dict__.get("detected_at")
    return kept if kept is not None else target.__dict__.get("notified_at")


@event.listens_for(Incident.notified_at, "set", retval=True)
def _on_notified(target: Incident, value: Any, old: Any, initiator: Any) -> Any:
    if value is not None and target.__dict__.get("detected_at") is None:
        target.detected_at = value
    return value


@event.listens_for(Incident, "before_delete")
def _never_deleted(mapper: Any, connection: Any, target: Incident) -> None:
    """An incident stays on record: it is closed, not deleted."""
    from cdb_service.problems import conflict

    raise conflict(
        "an incident is never deleted: close it instead "
        '(PUT the incident with "ended_at" set to when the service recovered)'
    )
