"""The probe's own notices: when the registry is down, its incident still reaches subscribers.

While the registry answers, the probe copies its subscriptions (secrets included:
`GET /api/v1/subscriptions/relay`, operators only) into its store. When the probe
opens or closes an incident it queues an `incident.opened` / `incident.closed` notice
for each subscriber of the Commission's incidents (or of every owner's) and sends it
directly: a signed CloudEvent (the service's wire form, `kernel/webhooks.py`) or an
e-mail through the probe's SMTP relay. The event id is the one the registry gives the
same incident's copy later (`probe/<ref>/<type>`), so a receiver that keeps the ids it
has seen is told once. A notice not accepted is tried again after each sample, up to
`MAX_ATTEMPTS` times. The same guard as the service's: https only, and only addresses
that are public or inside the networks the probe was told to allow.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from cdb_service import outbound
from cdb_service.kernel.webhooks import (
    body_of,
    cloud_event,
    in_words,
    networks,
    refusal,
    signed_headers,
    target_of,
)
from cdb_service.probe.store import Incident, Store

log = logging.getLogger("cdb_service.probe")
MAX_ATTEMPTS = 20
SCHEMA = """
CREATE TABLE IF NOT EXISTS subscribers (
    id TEXT PRIMARY KEY, url TEXT, email TEXT, events TEXT NOT NULL, owner TEXT,
    secret TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notices (
    subscriber TEXT NOT NULL, event_id TEXT NOT NULL, event TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0,
    last_error TEXT, PRIMARY KEY (subscriber, event_id)
);
"""


def ref_of(incident: Incident) -> str:
    """The `ref` of the incident's copy in the registry (owner EC, `source: probe`)."""
    return f"probe-{incident.id}-{int(incident.started_at.timestamp())}"


def event_of(incident: Incident, event_type: str) -> dict[str, Any]:
    ref = ref_of(incident)
    data = {
        "kind": "incidents",
        "owner": "EC",
        "component": "cdb",
        "source": "probe",
        "ref": ref,
        "summary": f"cdb: {incident.description}",
        "description": incident.description,
        "started_at": incident.started_at.isoformat(),
        "detected_at": incident.detected_at.isoformat(),
        "ended_at": incident.ended_at.isoformat() if incident.ended_at else None,
        "status": "closed" if incident.ended_at else "open",
    }
    at = incident.ended_at if event_type == "incident.closed" and incident.ended_at else None
    return cloud_event(
        f"probe/{ref}/{event_type}", event_type, "/probe", ref, at or incident.detected_at, data
    )


class Notices:
    def __init__(
        self,
        store: Store,
        allowed: Sequence[str] = (),
        ca: Path | None = None,
        smtp: outbound.SmtpRelay | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.db = store.db
        self.db.executescript(SCHEMA)
        self.store = store
        self.allowed = networks(allowed)
        self.ca, self.smtp, self.timeout_s = ca, smtp, timeout_s

    def replace_subscribers(self, items: Sequence[dict[str, Any]]) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM subscribers")
            db.executemany(
                "INSERT INTO subscribers VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        str(i["id"]),
                        i.get("url"),
                        i.get("email"),
                        json.dumps(i["events"]),
                        i.get("owner"),
                        i.get("secret") or "",
                    )
                    for i in items
                ],
            )

    def queue(self, incident: Incident, event_type: str) -> int:
        """A notice for every subscriber of the event; how many were queued."""
        event = json.dumps(event_of(incident, event_type))
        event_id = json.loads(event)["id"]
        rows = self.db.execute("SELECT id, events, owner FROM subscribers").fetchall()
        wanted = [
            (sid, event_id, event)
            for sid, events, owner in rows
            if event_type in json.loads(events) and owner in (None, "EC")
        ]
        with self.store.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO notices (subscriber, event_id, event) VALUES (?, ?, ?)",
                wanted,
            )
        return len(wanted)

    def pending(self) -> int:
        return int(
            self.db.execute(
                "SELECT count(*) FROM notices WHERE delivered = 0 AND attempts < ?", (MAX_ATTEMPTS,)
            ).fetchone()[0]
        )

    def deliver(self) -> None:
        rows = self.db.execute(
            "SELECT n.subscriber, n.event_id, n.event, s.url, s.email, s.secret FROM notices n "
            "JOIN subscribers s ON s.id = n.subscriber WHERE n.delivered = 0 AND n.attempts < ?",
            (MAX_ATTEMPTS,),
        ).fetchall()
        for subscriber, event_id, text, url, email, secret in rows:
            error = self._send(json.loads(text), url, email, secret)
            self.db.execute(
                "UPDATE notices SET attempts = attempts + 1, delivered = ?, last_error = ? "
                "WHERE subscriber = ? AND event_id = ?",
                (int(error is None), error, subscriber, event_id),
            )
            if error is not None:
                log.warning("probe: notice %s to %s not delivered: %s", event_id, subscriber, error)

    def _send(
        self, event: dict[str, Any], url: str | None, email: str | None, secret: str
    ) -> str | None:
        try:
            if url:
                self._post(url, secret, event)
            elif email and self.smtp is not None:
                subject, text = in_words(event)
                self.smtp.send(email, subject, text, {"X-CDB-Event-Id": str(event["id"])})
            else:
                return "no SMTP relay given to the probe (--smtp-url)"
            return None
        except Exception as error:  # every failure is kept and tried again
            return f"{type(error).__name__}: {error}"[:500]

    def _post(self, url: str, secret: str, event: dict[str, Any]) -> None:
        target = target_of(url)
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            why = refusal(address, self.allowed)
            if why is not None:
                raise PermissionError(f"{target.host} resolves to {why}")
        pinned, host, extensions = target.pinned(addresses[0])
        body = body_of(event)
        headers = signed_headers(secret, str(event["id"]), body, dt.datetime.now(dt.UTC)) | host
        verify = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        # Streamed and not read: the receiver's answer is its status alone.
        with (
            httpx.Client(
                verify=verify, timeout=self.timeout_s, follow_redirects=False, trust_env=False
            ) as client,
            client.stream(
                "POST", pinned, content=body, headers=headers, extensions=extensions
            ) as response,
        ):
            status = response.status_code
        if not 200 <= status < 300:
            raise RuntimeError(f"the receiver answered {status}")
