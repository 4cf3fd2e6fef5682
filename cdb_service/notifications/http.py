"""`/api/v1/subscriptions`: operators manage who is notified of what; dead letters.

A subscription names a webhook `url` or an `email` address, the event types, and whose
events (`owner`; left out: every owner's). A webhook's signing secret is made by the
registry and shown once, in the answer that creates the subscription. Creating and
deleting are audited; `GET /subscriptions/relay` (the probe's copy, secrets included,
so that it can notify while the registry is down) is audited too.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.kernel.codes import owner_code
from cdb_service.kernel.problems import FieldError, invalid, not_found
from cdb_service.kernel.webhooks import new_secret
from cdb_service.notifications.delivery import Notifier
from cdb_service.notifications.events import now
from cdb_service.notifications.outbox import start_cursor
from cdb_service.notifications.tables import Delivery, Subscription
from cdb_service.notifications.webhooks import Refused
from cdb_service.security import audit, policy
from cdb_service.security.audit import Who
from cdb_service.security.policy import Principal
from cdb_service.web.docs import answer, problems

EventType = Literal[
    "maintenance.declared",
    "incident.opened",
    "incident.updated",
    "incident.closed",
    "routing.effective",
]


class SubscriptionIn(BaseModel):
    url: str | None = Field(
        default=None, max_length=2000, description="the webhook receiver: an https URL"
    )
    email: str | None = Field(
        default=None,
        max_length=320,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="or an e-mail address",
    )
    events: list[EventType] = Field(min_length=1, description="the event types wanted")
    owner: str | None = Field(
        default=None, description="whose events (EC, EJ or a member state); left out: everyone's"
    )

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        return None if value is None else owner_code(value, commission=True)

    @model_validator(mode="after")
    def _one_channel(self) -> SubscriptionIn:
        if (self.url is None) == (self.email is None):
            raise ValueError("give either url or email")
        return self


class SubscriptionOut(BaseModel):
    id: uuid.UUID = Field(description="the subscription's id")
    url: str | None = Field(description="the webhook receiver, or null for e-mail")
    email: str | None = Field(description="the e-mail address, or null for a webhook")
    events: list[str] = Field(description="the event types it receives")
    owner: str | None = Field(description="whose events; null: every owner's")
    created_at: dt.datetime = Field(description="when it was created")
    created_by: str = Field(description="the operator who created it")
    secret: str | None = Field(
        default=None,
        description="the Standard Webhooks signing secret (whsec_…): in the answer that "
        "creates a webhook subscription only",
    )


class Subscriptions(BaseModel):
    items: list[SubscriptionOut] = Field(description="the subscriptions, oldest first")


class DeadLetter(BaseModel):
    id: uuid.UUID = Field(description="the delivery's id (retry it by this)")
    subscription_id: uuid.UUID = Field(description="the subscription it was for")
    event_id: str = Field(description="the event's id, the webhook-id of every attempt")
    event_type: str = Field(description="e.g. incident.opened")
    attempts: int = Field(description="how many times it was tried")
    last_error: str | None = Field(description="why the last attempt failed")
    created_at: dt.datetime = Field(description="when the event was made")
    event: dict[str, Any] = Field(description="the CloudEvent that was not delivered")


class DeadLetters(BaseModel):
    items: list[DeadLetter] = Field(description="the dead letters, oldest first (1,000 at most)")


def _out(row: Subscription, secret: bool = False) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "email": row.email,
        "events": list(row.events),
        "owner": row.owner,
        "created_at": row.created_at,
        "created_by": row.created_by,
        "secret": row.secret if secret else None,
    }


def _operator(principal: Principal) -> None:
    policy.require_operator(principal, "subscriptions are managed by operators")


class SubscriptionController(Controller):
    path = "/subscriptions"
    tags = ["notifications"]  # noqa: RUF012

    @post(
        "/",
        summary="Subscribe a webhook or an e-mail address to events (operators)",
        responses=problems(400, 403, 422) | answer(SubscriptionOut, status=201),
    )
    async def create(
        self,
        data: SubscriptionIn,
        principal: NamedDependency[Principal],
        who: NamedDependency[Who],
        notifier: NamedDependency[Notifier],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
    ) -> SubscriptionOut:
        _operator(principal)
        if data.url is not None:
            try:
                await notifier.webhooks.check(data.url)
            except Refused as refused:
                raise invalid([FieldError(("url",), str(refused))]) from None
        row = Subscription(
            id=uuid.uuid4(),
            url=data.url,
            email=data.email,
            events=sorted(set(data.events)),
            owner=data.owner,
            secret=new_secret(),
            created_at=now(),
            created_by=who.subject,
        )
        async with sessions() as session, session.begin():
            # The row first: its INSERT takes SQLite's write lock before anything is read
            # (a read first, then a write, fails at once if another writer commits between).
            session.add(row)
            await session.flush()
            await start_cursor(session)
            await audit.append(
                session,
                who,
                "subscription.create",
                "ok",
                str(row.id),
                {"url": data.url, "events": row.events, "owner": data.owner},
            )
        return SubscriptionOut(**_out(row, secret=data.url is not None))

    @get(
        "/",
        summary="The subscriptions (operators)",
        responses=problems(403) | answer(Subscriptions),
    )
    async def list(
        self,
        principal: NamedDependency[Principal],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
    ) -> Subscriptions:
        _operator(principal)
        async with sessions() as session:
            rows = (
                await session.scalars(select(Subscription).order_by(Subscription.created_at))
            ).all()
        return Subscriptions(items=[SubscriptionOut(**_out(row)) for row in rows])

    @get(
        "/relay",
        summary="The probe's copy: every subscription with its secret (operators, audited)",
        responses=problems(403) | answer(Subscriptions),
    )
    async def relay(
        self,
        principal: NamedDependency[Principal],
        who: NamedDependency[Who],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
    ) -> Subscriptions:
        _operator(principal)
        async with sessions() as session, session.begin():
            rows = (
                await session.scalars(select(Subscription).order_by(Subscription.created_at))
            ).all()
            await audit.append(session, who, "subscription.relay", "ok", None, {"count": len(rows)})
        return Subscriptions(items=[SubscriptionOut(**_out(row, secret=True)) for row in rows])

    @get(
        "/{subscription_id:uuid}",
        summary="One subscription (operators)",
        responses=problems(403, 404) | answer(SubscriptionOut),
    )
    async def one(
        self,
        subscription_id: Annotated[uuid.UUID, Parameter(description="the subscription's id")],
        principal: NamedDependency[Principal],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
    ) -> SubscriptionOut:
        _operator(principal)
        async with sessions() as session:
            row = await session.get(Subscription, subscription_id)
        if row is None:
            raise not_found("subscriptions", subscription_id)
        return SubscriptionOut(**_out(row))

    @delete(
        "/{subscription_id:uuid}",
        summary="End a subscription and drop its pending deliveries",
        responses=problems(403, 404),
    )
    async def remove(
        self,
        subscription_id: Annotated[uuid.UUID, Parameter(description="the subscription's id")],
        principal: NamedDependency[Principal],
        who: NamedDependency[Who],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
    ) -> None:
        _operator(principal)
        async with sessions() as session, session.begin():
            if await session.get(Subscription, subscription_id) is None:
                raise not_found("subscriptions", subscription_id)
            await session.execute(
                sql_delete(Delivery).where(Delivery.subscription_id == subscription_id)
            )
            await session.execute(
                sql_delete(Subscription).where(Subscription.id == subscription_id)
            )
            await audit.append(session, who, "subscription.delete", "ok", str(subscription_id))

    @get(
        "/dead-letters",
        summary="Deliveries given up after every attempt (operators)",
        responses=problems(403) | answer(DeadLetters),
    )
    async def dead_letters(
        self,
        principal: NamedDependency[Principal],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
    ) -> DeadLetters:
        _operator(principal)
        async with sessions() as session:
            rows = (
                await session.scalars(
                    select(Delivery)
                    .where(Delivery.state == "dead")
                    .order_by(Delivery.created_at)
                    .limit(1000)
                )
            ).all()
        return DeadLetters(
            items=[
                DeadLetter(
                    id=r.id,
                    subscription_id=r.subscription_id,
                    event_id=r.event_id,
                    event_type=r.event_type,
                    attempts=r.attempts,
                    last_error=r.last_error,
                    created_at=r.created_at,
                    event=r.event,
                )
                for r in rows
            ]
        )

    @post(
        "/dead-letters/{delivery_id:uuid}/retry",
        status_code=202,
        summary="Try a dead letter again, from its first attempt (operators)",
        responses=problems(403, 404),
    )
    async def retry(
        self,
        delivery_id: Annotated[uuid.UUID, Parameter(description="the dead letter's id")],
        principal: NamedDependency[Principal],
        who: NamedDependency[Who],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
    ) -> None:
        _operator(principal)
        async with sessions() as session, session.begin():
            row = await session.get(Delivery, delivery_id)
            if row is None or row.state != "dead":
                raise not_found("dead-letters", delivery_id)
            row.state, row.attempts, row.next_attempt_at, row.leased_until = (
                "pending",
                0,
                now(),
                None,
            )
            await audit.append(session, who, "subscription.retry", "ok", str(delivery_id))
