"""Notifications pushed: subscriptions, signed CloudEvents to a real HTTPS receiver, retries
with one webhook-id, dead letters, e-mail to a real SMTP server, and the SSRF guard."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

from cdb_service.services import Services
from cdb_service.settings import Settings
from tests.support.api import Api, As, build
from tests.support.receivers import WebhookReceiver, start_receiver

V1 = "/api/v1"
UTC = dt.UTC
ALL = [
    "maintenance.declared",
    "incident.opened",
    "incident.updated",
    "incident.closed",
    "routing.effective",
]
WAIT_S = 30.0  # a bound on waiting for the worker, not a measurement


def _fast(settings: Settings, **changes: Any) -> Settings:
    quick = {"notify_poll_s": 0.05, "notify_retry_base_s": 0.05, "notify_retry_cap_s": 0.2}
    return settings.model_copy(update=quick | changes)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Api]:
    async with build(settings).running() as api:
        yield api


async def until(condition: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the worker did not get there"
        await asyncio.sleep(0.05)


def _window(ref: str = "w1") -> dict[str, Any]:
    starts = (dt.datetime.now(UTC) + dt.timedelta(days=60)).replace(
        hour=19, minute=0, second=0, microsecond=0
    )
    return {
        "owner": "EC",
        "ref": ref,
        "component": "cdb",
        "reason": "database upgrade",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + dt.timedelta(hours=2)).isoformat(),
    }


def _incident(ref: str = "inc-1") -> dict[str, Any]:
    started = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=20)
    return {
        "owner": "EC",
        "ref": ref,
        "component": "cdb",
        "description": "lookups fail with 503",
        "started_at": started.isoformat(),
        "expected_recovery_at": (started + dt.timedelta(hours=2)).isoformat(),
    }


async def _subscribe(
    c: As, receiver: WebhookReceiver, events: list[str] = ALL, owner: str | None = "EC"
) -> dict[str, Any]:
    created = await c.post(
        f"{V1}/subscriptions", json={"url": receiver.url, "events": events, "owner": owner}
    )
    assert created.status_code == 201, created.text
    receiver.secret = created.json()["secret"]
    return dict(created.json())


@pytest.fixture
def receiver_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "receiver"
    folder.mkdir()
    return folder


async def test_events_of_the_registrys_writes_reach_a_receiver_signed_as_cloudevents(
    settings: Settings, services: Services, receiver_dir: Path
) -> None:
    receiver, server = start_receiver(receiver_dir)
    config = _fast(
        settings, webhook_allowed_networks=["127.0.0.0/8"], webhook_ca_file=receiver.ca_file
    )
    try:
        async with running(config) as api, api.client("operator") as c:
            sub = await _subscribe(c, receiver)
            assert sub["secret"].startswith("whsec_") and sub["owner"] == "EC"
            # The secret is shown once: never in the list or the subscription read again.
            listed = (await c.get(f"{V1}/subscriptions")).json()["items"]
            assert [s["id"] for s in listed] == [sub["id"]] and listed[0]["secret"] is None
            one = await c.get(f"{V1}/subscriptions/{sub['id']}")
            assert one.status_code == 200 and one.json()["secret"] is None
            # A reader or an administrator manages no subscriptions.
            async with api.client("admin-de") as admin:
                assert (await admin.get(f"{V1}/subscriptions")).status_code == 403

            window = await c.post(f"{V1}/maintenance-windows", json=_window())
            assert window.status_code == 201, window.text
            opened = await c.post(f"{V1}/incidents", json=_incident())
            assert opened.status_code == 201, opened.text
            incident = opened.json()
            ended = (dt.datetime.now(UTC) - dt.timedelta(minutes=1)).isoformat()
            closed = await c.put(
                f"{V1}/incidents/{incident['id']}",
                json=incident | {"ended_at": ended},
                headers={"If-Match": '"1"'},
            )
            assert closed.status_code == 200, closed.text
            await until(lambda: len(receiver.accepted) >= 3)

        got = receiver.accepted
        assert all(r.signature_ok for r in got)
        assert all(r.headers["content-type"] == "application/cloudevents+json" for r in got)
        events = [r.event for r in got]
        assert sorted(e["type"] for e in events) == [
            "eu.judex.cdb.incident.closed",
            "eu.judex.cdb.incident.opened",
            "eu.judex.cdb.maintenance.declared",
        ]
        for event, received in zip(events, got, strict=True):
            assert event["specversion"] == "1.0" and event["datacontenttype"] == "application/json"
            assert event["id"] == received.headers["webhook-id"]
            assert event["time"].endswith("Z") and event["source"].startswith("/api/v1/")
            assert event["data"]["owner"] == "EC"
        declared = next(e for e in events if e["type"].endswith("maintenance.declared"))
        assert declared["data"]["id"] == window.json()["id"]
        assert declared["data"]["reason"] == "database upgrade"
    finally:
        server.shutdown()


async def test_a_failing_receiver_gets_retries_then_the_event_once_with_one_webhook_id(
    settings: Settings, services: Services, receiver_dir: Path
) -> None:
    receiver, server = start_receiver(receiver_dir, fail_first=3)
    config = _fast(
        settings,
        webhook_allowed_networks=["127.0.0.0/8"],
        webhook_ca_file=receiver.ca_file,
        notify_max_attempts=10,
    )
    try:
        async with running(config) as api, api.client("operator") as c:
            await _subscribe(c, receiver, ["incident.opened"])
            assert (await c.post(f"{V1}/incidents", json=_incident())).status_code == 201
            await until(lambda: len(receiver.accepted) == 1)
            # Ten more rounds of the worker send nothing more: the delivery is done.
            await asyncio.sleep(10 * config.notify_poll_s)
        assert [r.status for r in receiver.received] == [503, 503, 503, 204]
        assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
        assert len({r.body for r in receiver.received}) == 1
    finally:
        server.shutdown()


async def test_a_receiver_that_never_accepts_is_a_dead_letter_the_operator_retries(
    settings: Settings, services: Services, receiver_dir: Path
) -> None:
    receiver, server = start_receiver(receiver_dir, fail_first=-1)
    config = _fast(
        settings,
        webhook_allowed_networks=["127.0.0.0/8"],
        webhook_ca_file=receiver.ca_file,
        notify_max_attempts=2,
    )
    try:
        async with running(config) as api, api.client("operator") as c:
            await _subscribe(c, receiver, ["maintenance.declared"])
            assert (await c.post(f"{V1}/maintenance-windows", json=_window())).status_code == 201

            async def dead() -> list[dict[str, Any]]:
                listed = await c.get(f"{V1}/subscriptions/dead-letters")
                assert listed.status_code == 200, listed.text
                return list(listed.json()["items"])

            deadline = asyncio.get_running_loop().time() + WAIT_S
            while not (letters := await dead()):
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            [letter] = letters
            assert letter["attempts"] == 2 and "503" in letter["last_error"]
            assert letter["event"]["type"] == "eu.judex.cdb.maintenance.declared"
            assert len(receiver.received) == 2

            receiver.fail_first = 0  # the receiver is mended; the operator retries
            retried = await c.post(f"{V1}/subscriptions/dead-letters/{letter['id']}/retry")
            assert retried.status_code == 202, retried.text
            await until(lambda: len(receiver.accepted) == 1)
            assert await dead() == []
        assert receiver.accepted[0].headers["webhook-id"] == letter["event"]["id"]
    finally:
        server.shutdown()


async def test_a_subscription_to_a_private_address_is_refused_naming_the_url(
    settings: Settings, services: Services
) -> None:
    async with running(_fast(settings)) as api, api.client("operator") as c:
        for url in (
            "https://10.1.2.3/hook",
            "https://127.0.0.1:8443/hook",
            "https://169.254.169.254/latest",
            "http://example.org/hook",
        ):
            refused = await c.post(
                f"{V1}/subscriptions", json={"url": url, "events": ["incident.opened"]}
            )
            assert refused.status_code == 422, (url, refused.text)
            body = refused.json()
            assert body["type"].endswith("/invalid-content")
            assert [e["loc"] for e in body["errors"]] == [["url"]], body
        assert (await c.get(f"{V1}/subscriptions")).json()["items"] == []


async def test_a_name_that_resolves_to_loopback_at_delivery_is_not_called(
    settings: Settings, services: Services, receiver_dir: Path
) -> None:
    """DNS rebinding: public when subscribed, loopback when delivered; refused then."""
    receiver, server = start_receiver(receiver_dir)
    answers = {"receiver.example": "93.184.215.14"}

    async def resolver(host: str, port: int) -> list[str]:
        return [answers[host]]

    config = _fast(settings, webhook_ca_file=receiver.ca_file, notify_max_attempts=1)
    try:
        async with running(config) as api, api.client("operator") as c:
            api.app.state.notifier.webhooks.resolver = resolver
            url = f"https://receiver.example:{receiver.port}/hook"
            created = await c.post(
                f"{V1}/subscriptions", json={"url": url, "events": ["incident.opened"]}
            )
            assert created.status_code == 201, created.text
            answers["receiver.example"] = "127.0.0.1"
            assert (await c.post(f"{V1}/incidents", json=_incident())).status_code == 201
            deadline = asyncio.get_running_loop().time() + WAIT_S
            while not (
                letters := (await c.get(f"{V1}/subscriptions/dead-letters")).json()["items"]
            ):
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
        assert "127.0.0.1 is a loopback address" in letters[0]["last_error"]
        assert receiver.received == []
    finally:
        server.shutdown()


async def test_an_incident_is_mailed_through_the_smtp_relay(
    settings: Settings, services: Services
) -> None:
    mails: list[Any] = []

    class Keep(Message):
        def handle_message(self, message: Any) -> None:
            mails.append(message)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(Keep(), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        config = _fast(settings, smtp_url=f"smtp://127.0.0.1:{port}", smtp_from="cdb@ec.test")
        async with running(config) as api, api.client("operator") as c:
            created = await c.post(
                f"{V1}/subscriptions",
                json={
                    "email": "duty@justice.example",
                    "events": ["incident.opened"],
                    "owner": "EC",
                },
            )
            assert created.status_code == 201, created.text
            assert created.json()["secret"] is None
            assert (await c.post(f"{V1}/incidents", json=_incident())).status_code == 201
            await until(lambda: len(mails) == 1)
        [mail] = mails
        assert mail["To"] == "duty@justice.example" and mail["From"] == "cdb@ec.test"
        assert mail["Subject"].startswith("[CDB] Incident opened: EC")
        text = mail.get_payload(decode=True).decode()
        assert "Incident opened" in text and "lookups fail with 503" in text
        assert mail["X-CDB-Event-Type"] == "eu.judex.cdb.incident.opened"
    finally:
        smtp.stop()


async def test_a_write_right_after_the_first_subscription_is_not_missed(
    settings: Settings, services: Services, receiver_dir: Path
) -> None:
    """The event cursor starts with the first subscription. A full run once lost the event
    of an incident created just after subscribing: the worker's first round had failed
    (SQLite busy), and the next one started the cursor after the incident."""
    from sqlalchemy import delete, select

    from cdb_service.notifications.outbox import produce
    from cdb_service.notifications.tables import Delivery, NotificationCursor

    receiver, server = start_receiver(receiver_dir)
    config = _fast(settings, webhook_allowed_networks=["127.0.0.0/8"],
                   webhook_ca_file=receiver.ca_file)  # fmt: skip
    try:
        async with running(config) as api, api.client("operator") as c:
            await api.app.state.notifier.stop()  # no round runs but the test's own
            async with services.sessions() as session, session.begin():
                await session.execute(delete(NotificationCursor))  # as if none had succeeded
            await _subscribe(c, receiver, ["incident.opened"])
            assert (await c.post(f"{V1}/incidents", json=_incident())).status_code == 201
            await produce(services.sessions)
            await produce(services.sessions)
            async with services.sessions() as session:
                events = (await session.scalars(select(Delivery.event))).all()
            assert [event["type"] for event in events] == ["eu.judex.cdb.incident.opened"]
    finally:
        server.shutdown()
