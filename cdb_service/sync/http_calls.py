"""One HTTP call to a gateway or connector, and how its failure is named.

The Domibus and connector-ng targets share this: a synchronous client that trusts the
operator's CA file (or the system's), with one timeout for connecting and reading, and a
single rule for what a failed call means to the agent. A timeout, a refused or dropped
connection and a 5xx are transient (the agent retries with backoff); a refused login
(401/403) or a 4xx that names the request is not, and its message says what the target
said. The target's own words are quoted briefly, with the password cut out: a message
goes to the log and, through the registry's rollout page, to other people.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from cdb_service import outbound
from cdb_service.sync.target import TargetFailed, VerifiedPackage

QUOTE_CHARS = 200
# Domibus keeps an upload's description in a column of 255 characters.
DESCRIPTION_MAX = 255
DEFAULT_DESCRIPTION = "CDB {party} {digest} effective {effective}"


def describe(template: str, package: VerifiedPackage) -> str:
    """An upload's description, as the operator sees it in the target's list: `template`
    with {party}, {owner}, {digest} (the package digest's first 12 characters: enough to
    tell packages apart and to find the acknowledgement) and {effective} (ISO 8601)."""
    effective = (
        package.effective_from.isoformat(timespec="seconds")
        if package.effective_from
        else "since start"
    )
    text = template.format(
        party=package.party, owner=package.owner, digest=package.digest[:12], effective=effective
    )
    return text[:DESCRIPTION_MAX]


def check_template(template: str) -> None:
    """Refuse a description template that names an unknown field: at start, not at go-live."""
    example = VerifiedPackage(
        party="example", owner="XX", digest="0" * 64, effective_from=None, files={}, manifest={},
        store_password="",
    )  # fmt: skip
    try:
        describe(template, example)
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(f"description template {template!r}: unknown field {error}") from None


def client(base_url: str, ca: Path | None, timeout_s: float) -> httpx.Client:
    """A fresh client per package: a CA file replaced on disk is read anew."""
    return outbound.client(base_url, outbound.TlsIdentity(ca=ca), timeout=httpx.Timeout(timeout_s))


def member(package: VerifiedPackage, name: str, target: str) -> bytes:
    """A file of the package that the target needs; its absence is no reason to retry."""
    content = package.files.get(name)
    if content is None:
        raise TargetFailed(
            f"{target}: the package for {package.party} has no {name}", transient=False
        )
    return content


def quoted(response: httpx.Response, secret: str) -> str:
    """What the target said, briefly: the `message` of a JSON error body (Domibus's
    ErrorDTO, connector-ng's ErrorResponse, Spring's default error), else the text."""
    text = response.text.strip()
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        text = body["message"]
    if secret:
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text[:QUOTE_CHARS] + ("…" if len(text) > QUOTE_CHARS else "")


def call(
    send: Callable[[], httpx.Response],
    *,
    target: str,
    what: str,
    user: str,
    secret: str,
    timeout_s: float,
) -> httpx.Response:
    """Send one request and return its 2xx answer, or raise `TargetFailed` naming the
    target (`target`, e.g. "Domibus gw1"), the step (`what`) and the reason."""
    try:
        response = send()
    except httpx.TimeoutException:
        raise TargetFailed(f"{target} gave no answer within {timeout_s:g} s ({what})") from None
    except httpx.TransportError as error:
        # Refused, reset or dropped connections and TLS failures; never the request's data.
        reason = " ".join(str(error).split())[:QUOTE_CHARS] or type(error).__name__
        raise TargetFailed(f"{target} could not be reached ({what}): {reason}") from None
    status = response.status_code
    if status in (401, 403):
        raise TargetFailed(
            f"{target} refused the credentials of user {user} ({what}: HTTP {status})",
            transient=False,
        )
    if status < 300:
        return response
    said = quoted(response, secret)
    detail = f"HTTP {status}" + (f": {said}" if said else "")
    if status >= 500:
        raise TargetFailed(f"{target} failed ({what}): {detail}")
    raise TargetFailed(f"{target} refused {what}: {detail}", transient=False)


def json_body(response: httpx.Response, *, target: str, what: str) -> Any:
    """A 2xx answer's JSON (None for an empty body, as Domibus answers when it has none)."""
    if not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError:
        raise TargetFailed(f"{target}: {what}: the answer is not JSON", transient=False) from None
