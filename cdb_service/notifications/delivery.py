"""The delivery worker: in every worker of every instance, one delivery at a time each.

Each round it makes the new events (`outbox.produce`), then claims the deliveries that
are due: a lease (`leased_until`) set by compare and set, so two workers never hold the
same delivery (on PostgreSQL the candidates are read `FOR UPDATE SKIP LOCKED`, so they
do not queue on each other's rows). A delivery that is not accepted is tried again after
an exponential backoff with jitter, and after `notify_max_attempts` it is a dead letter,
listed for the operator (`GET /api/v1/subscriptions/dead-letters`) and retried on
request. At least once: a worker that dies after sending and before recording it sends
again when the lease runs out, with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.kernel.background import Background
from cdb_service.kernel.webhooks import body_of
from cdb_service.logging import get_logger
from cdb_service.notifications.email import relay_of, send_email
from cdb_service.notifications.events import now
from cdb_service.notifications.outbox import produce
from cdb_service.notifications.tables import Delivery, Subscription
from cdb_service.notifications.webhooks import Failed, Refused, WebhookSender
from cdb_service.settings import Settings

log = get_logger("cdb.notifications")
CLAIM = 20  # deliveries per round


def backoff_s(attempts: int, base_s: float, cap_s: float) -> float:
    """Wait before the next attempt after `attempts` failed ones: base·2^(n-1), capped,
    with jitter (between half and all of it), so that receivers back up do not get
    every retry at the same instant."""
    full = min(cap_s, base_s * 2.0 ** max(0, attempts - 1))
    return full * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Claimed:
    id: object
    event: dict[str, object]
    url: str | None
    email: str | None
    secret: str
    attempts: int


class Notifier:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        self.webhooks = WebhookSender(settings)
        self.relay = relay_of(settings)
        self._loop = Background("cdb-notifications")

    @property
    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.settings.webhook_timeout_s * 4 + 30)

    def start(self) -> None:
        self._loop.start(self._run)

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a database hiccup: the next round tries again
                log.warning("notifications: round failed", error=f"{type(error).__name__}: {error}")
            await asyncio.sleep(self.settings.notify_poll_s)

    async def round(self) -> int:
        """Make the new events, then deliver what is due; how many were delivered."""
        await produce(self.sessions)
        delivered = 0
        for claimed in await self._claim():
            error = await self._send(claimed)
            await self._settle(claimed, error)
            delivered += error is None
        return delivered

    async def _claim(self) -> list[Claimed]:
        at = now()
        async with self.sessions() as session, session.begin():
            query = (
                select(Delivery, Subscription)
                .join(Subscription, Subscription.id == Delivery.subscription_id)
                .where(
                    Delivery.state == "pending",
                    Delivery.next_attempt_at <= at,
                    or_(Delivery.leased_until.is_(None), Delivery.leased_until < at),
                )
                .order_by(Delivery.next_attempt_at)
                .limit(CLAIM)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=Delivery)
            claimed = []
            for delivery, subscription in (await session.execute(query)).all():
                taken = await session.execute(
                    update(Delivery)
                    .where(
                        Delivery.id == delivery.id,
                        or_(Delivery.leased_until.is_(None), Delivery.leased_until < at),
                    )
                    .values(leased_until=at + self.lease)
                    .execution_options(synchronize_session=False)
                )
                if getattr(taken, "rowcount", 0) == 1:
                    claimed.append(
                        Claimed(
                            delivery.id,
                            dict(delivery.event),
                            subscription.url,
                            subscription.email,
                            subscription.secret,
                            delivery.attempts,
                        )
                    )
            return claimed

    async def _send(self, claimed: Claimed) -> str | None:
        """None once delivered, else what went wrong (kept as the delivery's last error)."""
        try:
            if claimed.url is not None:
                body = body_of(claimed.event)
                await self.webhooks.send(
                    claimed.url, claimed.secret, str(claimed.event["id"]), body
                )
            elif claimed.email is not None:
                if self.relay is None:
                    return "no SMTP relay configured (CDB_SMTP_URL)"
                await send_email(self.relay, claimed.email, claimed.event)
            return None
        except (Refused, Failed) as error:
            return str(error)
        except Exception as error:  # SMTP refusals, a relay that is down
            return f"{type(error).__name__}: {error}"[:500]

    async def _settle(self, claimed: Claimed, error: str | None) -> None:
        at = now()
        attempts = claimed.attempts + 1
        values: dict[str, object] = {"attempts": attempts, "leased_until": None}
        if error is None:
            values |= {"state": "delivered", "delivered_at": at, "last_error": None}
        elif attempts >= self.settings.notify_max_attempts:
            values |= {"state": "dead", "last_error": error}
            log.warning(
                "notifications: dead letter",
                delivery=str(claimed.id),
                event_id=claimed.event.get("id"),
                attempts=attempts,
                error=error,
            )
        else:
            wait = backoff_s(
                attempts, self.settings.notify_retry_base_s, self.settings.notify_retry_cap_s
            )
            values |= {"next_attempt_at": at + dt.timedelta(seconds=wait), "last_error": error}
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Delivery)
                .where(Delivery.id == claimed.id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
