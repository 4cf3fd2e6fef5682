"""The probe's reading of the service's answers, and its one multi-step call: a failed
request's outcome class, the readiness status, whether a lookup matched, a maintenance
window, and an incident's copy updated in place (read, then PUT with If-Match).
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
from typing import Any

import httpx

from cdb_service.probe.store import Window


def outcome_of(error: Exception) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(f"{type(c).__name__} {c}" for c in chain)
    if any(isinstance(c, ssl.SSLError) for c in chain) or "SSL" in text or "CERTIFICATE" in text:
        return "tls"
    if isinstance(error, httpx.ConnectError):
        return "connect"
    return "transport"


def update_copy(
    client: httpx.Client, auth: httpx.Auth, body: dict[str, Any], remote_id: str | None
) -> httpx.Response | None:
    """Read the service's copy (by id, or by `ref`) and PUT it back with `ended_at` set.

    None when there is no such copy (any more); a refused read is returned as it is.
    """
    if remote_id is None:
        params = {"owner": body["owner"], "ref": body["ref"]}
        found = client.get("/api/v1/incidents", params=params, auth=auth)
        if found.status_code != 200:
            return found
        items = found.json()["items"]
        if not items:
            return None
        current = items[0]
    else:
        read = client.get(f"/api/v1/incidents/{remote_id}", auth=auth)
        if read.status_code == 404:
            return None
        if read.status_code != 200:
            return read
        current = read.json()
    changed = current | {"ended_at": body["ended_at"]}
    return client.put(f"/api/v1/incidents/{current['id']}", json=changed, auth=auth,
                      headers={"If-Match": f'"{current["version"]}"'})  # fmt: skip


def health_status(response: httpx.Response) -> str | None:
    try:
        return str(response.json().get("status"))
    except (json.JSONDecodeError, AttributeError, ValueError):
        return None


def has_matches(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and bool(body.get("matches"))


def _parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def window_of(item: dict[str, Any]) -> Window:
    return Window(
        id=str(item["id"]),
        owner=str(item["owner"]),
        component=str(item["component"]),
        starts_at=_parse(item["starts_at"]),
        ends_at=_parse(item["ends_at"]),
        announced_at=_parse(item["announced_at"]),
        cancelled=bool(item.get("cancelled")),
        reason=item.get("reason"),
        recurrence=item.get("recurrence"),
    )
