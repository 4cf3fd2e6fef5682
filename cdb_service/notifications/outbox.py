"""The follower that turns the registry's new revisions into deliveries.

A stored cursor (the last revision done) and the change feed's own query: the versions
of the kinds that make events after the cursor, whole revisions at a time. The cursor
moves and the deliveries are written in one transaction, so an event is made once
for every subscription that existed when it was made, and never lost: a worker that
dies in between made nothing, and the next round makes it. Two workers at once: the
cursor moves only from the value that was read (compare and set), the other's round
changes nothing. On its first round the cursor starts at the head: subscriptions
receive what happens after they exist, not the registry's past.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db.revisions.queries import changes_after
from cdb_service.db.revisions.tables import EntryVersion, RegistryHead
from cdb_service.notifications.events import KINDS, Event, events_of, now
from cdb_service.notifications.tables import Delivery, NotificationCursor, Subscription

BATCH = 500
CHUNK = 200  # rows per INSERT (SQLite's bound on parameters)


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def start_cursor(session: AsyncSession) -> None:
    """Events are made from the revisions after the registry's head at this moment, unless
    the cursor already stands somewhere. Called in the transaction that creates a
    subscription: every write after a subscription exists becomes its event, even when no
    round has run yet (a first round that failed would otherwise start the cursor after
    them, and their events would never be made)."""
    head = await session.scalar(select(RegistryHead.revision).where(RegistryHead.id == 1)) or 0
    statement = _insert(session)(NotificationCursor).values(id=1, revision=head)
    await session.execute(statement.on_conflict_do_nothing(index_elements=["id"]))


async def _cursor(session: AsyncSession) -> int | None:
    found = await session.scalar(
        select(NotificationCursor.revision).where(NotificationCursor.id == 1)
    )
    if found is not None:
        return int(found)
    await start_cursor(session)
    return None


async def _previous(session: AsyncSession, version: EntryVersion) -> dict[str, Any] | None:
    if version.kind != "incidents" or version.version == 1:
        return None
    found = await session.scalar(
        select(EntryVersion.document).where(
            EntryVersion.entry_id == version.entry_id, EntryVersion.version == version.version - 1
        )
    )
    return dict(found) if found is not None else None


def wants(subscription: Subscription, event: Event) -> bool:
    return event.type in subscription.events and subscription.owner in (None, event.owner)


def delivery_rows(
    subscriptions: Sequence[Subscription], events: Sequence[Event]
) -> list[dict[str, Any]]:
    at = now()
    return [
        {
            "id": uuid.uuid4(),
            "subscription_id": subscription.id,
            "event_id": event.id,
            "event_type": event.type,
            "event": event.body,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": at,
            "leased_until": None,
            "last_error": None,
            "created_at": at,
            "delivered_at": None,
        }
        for event in events
        for subscription in subscriptions
        if wants(subscription, event)
    ]


async def produce(sessions: async_sessionmaker[AsyncSession]) -> int:
    """One round: the events of the revisions after the cursor; how many deliveries it made."""
    async with sessions() as session, session.begin():
        cursor = await _cursor(session)
        if cursor is None:
            return 0
        versions = await changes_after(session, cursor, BATCH, kinds=KINDS)
        if not versions:
            return 0
        moved = await session.execute(
            update(NotificationCursor)
            .where(NotificationCursor.id == 1, NotificationCursor.revision == cursor)
            .values(revision=versions[-1].revision)
        )
        if getattr(moved, "rowcount", 0) != 1:
            return 0  # another worker made this round
        subscriptions = (await session.scalars(select(Subscription))).all()
        if not subscriptions:
            return 0
        events: list[Event] = []
        for version in versions:
            events += events_of(version, await _previous(session, version))
        rows = delivery_rows(subscriptions, events)
        for start in range(0, len(rows), CHUNK):
            statement = _insert(session)(Delivery).values(rows[start : start + CHUNK])
            await session.execute(
                statement.on_conflict_do_nothing(index_elements=["subscription_id", "event_id"])
            )
        return len(rows)
