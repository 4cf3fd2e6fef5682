"""From the registry's own writes to events: which version makes which event, and its form.

- a maintenance window created or changed (moved, cancelled): `maintenance.declared`;
- an incident created: `incident.opened` (and `incident.closed` if it was recorded
  closed); changed while open: `incident.updated`; its `ended_at` set: `incident.closed`;
- a routing party written: `routing.effective`, with the moment it takes effect
  (`go_live_at`, else `valid_from`, else the write itself).

An event's id is derived from the version it comes from, so the follower that makes
it twice (two workers, a restart) makes the same event, and every copy of it carries
the same `webhook-id`. The probe's own incidents keep the id the probe gave them when it
notified subscribers while the registry was down (`probe/<ref>/<type>`): a receiver
that keeps the ids it has seen is not told twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cdb_service.db.revisions.tables import EntryVersion, Operation
from cdb_service.kernel.webhooks import cloud_event

KINDS = ("maintenance-windows", "incidents", "routing-parties")
SOURCE = "/api/v1/"  # + the kind: a URI reference to the collection the event is about


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    owner: str
    body: dict[str, Any]  # the CloudEvent


def _summary(kind: str, document: Mapping[str, Any]) -> str:
    if kind == "maintenance-windows":
        cancelled = " (cancelled)" if document.get("cancelled") else ""
        return f"{document.get('component')} {document.get('starts_at')} to {document.get('ends_at')}{cancelled}"  # noqa: E501
    if kind == "incidents":
        return f"{document.get('component')}: {document.get('description')}"[:300]
    return f"routing party {document.get('name')}"


FIELDS = {
    "maintenance-windows": (
        "component",
        "starts_at",
        "ends_at",
        "reason",
        "cancelled",
        "announced_at",
        "ref",
    ),
    "incidents": (
        "component",
        "description",
        "started_at",
        "detected_at",
        "expected_recovery_at",
        "ended_at",
        "status",
        "source",
        "ref",
    ),
    "routing-parties": ("name", "endpoint_url", "go_live_at", "valid_from", "valid_to", "ref"),
}


def _types(version: EntryVersion, previous: Mapping[str, Any] | None) -> list[str]:
    document = version.document
    if version.kind == "maintenance-windows":
        return [] if version.operation == Operation.DELETE else ["maintenance.declared"]
    if version.kind == "routing-parties":
        return ["routing.effective"]
    if version.kind != "incidents" or version.operation == Operation.DELETE:
        return []
    closed = document.get("ended_at") is not None
    if previous is None or version.operation == Operation.CREATE:
        return ["incident.opened", "incident.closed"] if closed else ["incident.opened"]
    if closed and previous.get("ended_at") is None:
        return ["incident.closed"]
    return ["incident.updated"]


def _effective(version: EntryVersion) -> str:
    document = version.document
    found = document.get("go_live_at") or document.get("valid_from")
    return str(found) if found else version.recorded_at.isoformat()


def events_of(version: EntryVersion, previous: Mapping[str, Any] | None) -> list[Event]:
    """The events one entry version makes (`previous`: the document of the version before)."""
    document = version.document
    events = []
    for event_type in _types(version, previous):
        data: dict[str, Any] = {
            "kind": version.kind,
            "id": str(version.entry_id),
            "version": version.version,
            "revision": version.revision,
            "operation": version.operation,
            "owner": version.owner,
            "summary": _summary(version.kind, document),
        }
        data |= {name: document.get(name) for name in FIELDS[version.kind] if name in document}
        if event_type == "routing.effective":
            data["effective"] = _effective(version)
        probes = version.kind == "incidents" and document.get("source") == "probe"
        if probes and event_type in ("incident.opened", "incident.closed"):
            event_id = f"probe/{document.get('ref')}/{event_type}"
        else:
            event_id = f"{version.kind}/{version.entry_id}/v{version.version}/{event_type}"
        body = cloud_event(
            event_id,
            event_type,
            SOURCE + version.kind,
            str(version.entry_id),
            version.recorded_at,
            data,
        )
        events.append(Event(event_id, event_type, version.owner, body))
    return events


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
