"""The notification tables: subscriptions, the follower's cursor, deliveries.

Not a registry kind, on purpose: a kind's every version is served to every reader
(history, the change feed, extracts, mirrors) and kept for ever, while a subscription
holds a signing secret, a receiver's address (an endpoint of the subscriber's network)
or a person's e-mail address, which must be deletable for good. Who created or deleted
one is in the audit trail.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import GUID, Base, DateTimeUTC, JsonB


class Subscription(Base):
    __tablename__ = "notification_subscriptions"
    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    url: Mapped[str | None] = mapped_column(String(2000))
    email: Mapped[str | None] = mapped_column(String(320))
    events: Mapped[list[str]] = mapped_column(JsonB)
    # Whose events: an owner code; None: every owner's.
    owner: Mapped[str | None] = mapped_column(String(2))
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    created_by: Mapped[str] = mapped_column(String(200))


class NotificationCursor(Base):
    """The one row: the last revision whose events were turned into deliveries."""

    __tablename__ = "notification_cursor"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)


class Delivery(Base):
    """One event for one subscription: pending, delivered, or dead (a dead letter)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        Index("ix_notification_deliveries_due", "state", "next_attempt_at"),
    )
    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("notification_subscriptions.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(40))
    event: Mapped[dict[str, Any]] = mapped_column(JsonB)
    state: Mapped[str] = mapped_column(String(10))  # pending, delivered, dead
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    leased_until: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC)
