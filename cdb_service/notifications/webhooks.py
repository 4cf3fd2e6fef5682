"""Webhooks out: the SSRF guard and one signed delivery.

A subscription's URL is checked when it is created and again before every delivery
(its name may resolve elsewhere by then: DNS rebinding): https only, and every address
its host resolves to must be public or inside `CDB_WEBHOOK_ALLOWED_NETWORKS`. The
request then goes to the address that was checked (pinned: no second lookup), naming
the host for TLS (SNI, certificate check) and in `Host`. Redirects are not followed,
timeouts are bounded, and at most `webhook_max_response_bytes` of an answer are read.
A fresh connection per delivery: a connection verified for one host name is never
reused for another name on the same address.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
from collections.abc import Awaitable, Callable

import httpx

from cdb_service.kernel.webhooks import networks, refusal, signed_headers, target_of
from cdb_service.settings import Settings

Resolver = Callable[[str, int], Awaitable[list[str]]]


class Refused(Exception):
    """The URL may not be called (scheme, credentials, or an address not allowed)."""


class Failed(Exception):
    """The receiver was called and did not accept (or could not be reached)."""


async def resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class WebhookSender:
    def __init__(self, settings: Settings, resolver: Resolver = resolve) -> None:
        self.allowed = networks(settings.webhook_allowed_networks)
        self.ca = settings.webhook_ca_file
        self.timeout_s = settings.webhook_timeout_s
        self.max_response_bytes = settings.webhook_max_response_bytes
        self.resolver = resolver

    async def check(self, url: str) -> str:
        """The address to connect to, or Refused saying why the URL may not be called."""
        try:
            target = target_of(url)
        except ValueError as error:
            raise Refused(str(error)) from None
        try:
            addresses = await asyncio.wait_for(
                self.resolver(target.host, target.port), self.timeout_s
            )
        except (OSError, TimeoutError) as error:
            raise Refused(f"{target.host} does not resolve: {error}") from None
        if not addresses:
            raise Refused(f"{target.host} does not resolve")
        for address in addresses:
            why = refusal(address, self.allowed)
            if why is not None:
                raise Refused(f"{target.host} resolves to {why}")
        return addresses[0]

    def _verify(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca) if self.ca else None)

    async def send(self, url: str, secret: str, msg_id: str, body: bytes) -> None:
        """Deliver once; returns when the receiver answered 2xx, else raises Refused/Failed."""
        address = await self.check(url)
        pinned_url, host, extensions = target_of(url).pinned(address)
        headers = signed_headers(secret, msg_id, body, dt.datetime.now(dt.UTC))
        headers |= host | {"user-agent": "cdb-service-webhooks"}
        timeout = httpx.Timeout(self.timeout_s)
        try:
            async with (
                asyncio.timeout(self.timeout_s * 3),
                httpx.AsyncClient(
                    verify=self._verify(), timeout=timeout, follow_redirects=False, trust_env=False
                ) as client,
                client.stream(
                    "POST", pinned_url, content=body, headers=headers, extensions=extensions
                ) as response,
            ):
                seen = 0
                async for chunk in response.aiter_raw():
                    seen += len(chunk)
                    if seen >= self.max_response_bytes:
                        break
        except (httpx.HTTPError, OSError, TimeoutError, ssl.SSLError) as error:
            raise Failed(f"{type(error).__name__}: {error}"[:500]) from None
        if not 200 <= response.status_code < 300:
            where = response.headers.get("location")
            said = f" (a redirect to {where[:200]}, not followed)" if where else ""
            raise Failed(f"the receiver answered {response.status_code}{said}")
