"""Pushed notifications in their wire form, shared by the service and the probe.

- CloudEvents 1.0 in structured mode (`application/cloudevents+json`): one JSON object
  holding the context attributes and `data`.
- Standard Webhooks signatures: a `whsec_` secret (base64 of 32 random bytes), and
  `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` beside
  `webhook-id` and `webhook-timestamp`. The id stays the same on every retry, so a
  receiver that keeps the ids it has seen gets each event once.
- Which addresses a webhook may reach (the SSRF guard's rule): public ones, and those
  in the networks the operator allowed; and the pinned form of a request, sent to the
  address that was checked (no second DNS answer between the check and the connection).

Pure: no I/O beyond the random source, so that the probe may use it too.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CONTENT_TYPE = "application/cloudevents+json"
TYPE_PREFIX = "eu.judex.cdb."
EVENT_TYPES = (
    "maintenance.declared",
    "incident.opened",
    "incident.updated",
    "incident.closed",
    "routing.effective",
)
SECRET_PREFIX = "whsec_"
# Standard Webhooks: receivers refuse timestamps further off than this (replays).
TOLERANCE_S = 5 * 60

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` and the base64 HMAC-SHA256 of id.timestamp.body."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: int | None = None) -> bool:
    """A receiver's check: one of the (space separated) `v1` signatures matches, in time."""
    try:
        msg_id, timestamp = headers["webhook-id"], int(headers["webhook-timestamp"])
        given = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    now = int(dt.datetime.now(dt.UTC).timestamp()) if now is None else now
    if abs(now - timestamp) > TOLERANCE_S:
        return False
    expected = sign(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in given)


def signed_headers(secret: str, msg_id: str, body: bytes, at: dt.datetime) -> dict[str, str]:
    timestamp = int(at.timestamp())
    return {
        "content-type": CONTENT_TYPE,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def cloud_event(
    event_id: str,
    event_type: str,
    source: str,
    subject: str,
    time: dt.datetime,
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """A CloudEvents 1.0 event in structured mode; `event_type` is one of `EVENT_TYPES`."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": TYPE_PREFIX + event_type,
        "subject": subject,
        "time": time.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": dict(data),
    }


def body_of(event: Mapping[str, Any]) -> bytes:
    """The bytes sent (and signed): compact, keys in a stable order."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


WORDS = {
    "maintenance.declared": "Maintenance declared",
    "incident.opened": "Incident opened",
    "incident.updated": "Incident updated",
    "incident.closed": "Incident closed",
    "routing.effective": "Routing change effective",
}


def in_words(event: Mapping[str, Any]) -> tuple[str, str]:
    """An e-mail's subject and plain-text body naming the event in words."""
    kind = str(event["type"]).removeprefix(TYPE_PREFIX)
    data = event.get("data") or {}
    what = WORDS.get(kind, kind)
    subject = f"[CDB] {what}: {data.get('owner', '')} {data.get('summary', '')}".strip()
    lines = [f"{what} ({event['type']}), {event['time']}.", ""]
    for name in (
        "summary",
        "owner",
        "component",
        "description",
        "starts_at",
        "ends_at",
        "started_at",
        "expected_recovery_at",
        "ended_at",
        "effective",
        "reason",
    ):
        if data.get(name) not in (None, ""):
            lines.append(f"{name.replace('_', ' ').capitalize()}: {data[name]}")
    lines += [
        "",
        f"Event id: {event['id']} (the same on every copy of this notice).",
        f"Source: {event['source']}",
    ]
    return subject[:200], "\n".join(lines) + "\n"


# --- where a webhook may go ---------------------------------------------------------


def networks(values: Iterable[str]) -> tuple[IpNetwork, ...]:
    """CIDRs (or bare addresses) as networks; ValueError names a wrong one."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def refusal(address: str, allowed: Iterable[IpNetwork]) -> str | None:
    """Why a webhook may not connect to `address`, or None when it may: an address is
    allowed when it is public (globally routable, not multicast) or inside a network
    the operator allowed."""
    ip: IpAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in allowed if network.version == ip.version):
        return None
    if ip.is_global and not ip.is_multicast:
        return None
    what = (
        "loopback"
        if ip.is_loopback
        else "link-local"
        if ip.is_link_local
        else "private"
        if ip.is_private
        else "not a public"
    )
    return f"{ip} is a {what} address (not allowed: CDB_WEBHOOK_ALLOWED_NETWORKS)"


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    url: str

    def pinned(self, address: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        """The request's URL, headers and httpx extensions for a connection to `address`
        (checked) that still names, and verifies the certificate of, `host`."""
        parts = urlsplit(self.url)
        literal = f"[{address}]" if ":" in address else address
        path = parts.path or "/"
        url = f"https://{literal}:{self.port}{path}" + (f"?{parts.query}" if parts.query else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = self.port == 443
        return (
            url,
            {"host": host if default else f"{host}:{self.port}"},
            {"sni_hostname": self.host},
        )


def target_of(url: str) -> Target:
    """The URL's host and port; ValueError unless an https URL without credentials."""
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError as error:
        raise ValueError(f"not a URL: {error}") from None
    if parts.scheme != "https":
        raise ValueError("must be an https:// URL")
    if not parts.hostname:
        raise ValueError("names no host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    if parts.fragment:
        raise ValueError("must not have a fragment")
    return Target(parts.hostname, port, url)
