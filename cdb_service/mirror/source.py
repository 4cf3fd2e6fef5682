"""Talking to the source: its extract as a stream of lines, its change feed, its JWKS.

Over the one outbound client (`cdb_service/outbound.py`): mutual TLS with the
configured identity and a bearer token re-read at every request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from joserfc.jwk import KeySet

from cdb_service import outbound
from cdb_service.mirror.config import MirrorConfig
from cdb_service.mirror.errors import ExtractRefused, FeedGone

# Error bodies are problem details: small. More than this is not read.
ERROR_BODY_BYTES = 64 * 1024


async def bounded_lines(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """Lines (with their newline) from a byte stream, none longer than `limit` bytes.

    At most one line is buffered; a longer one is refused as soon as the buffer
    passes the limit, before the rest of it arrives.
    """
    pending = bytearray()
    number = 0
    async for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            pending += chunk[start : end + 1]
            start = end + 1
            number += 1
            if len(pending) > limit:
                raise ExtractRefused(f"line {number} is longer than {limit} bytes")
            yield bytes(pending)
            pending.clear()
        pending += chunk[start:]
        if len(pending) > limit:
            raise ExtractRefused(f"line {number + 1} is longer than {limit} bytes")
    if pending:
        yield bytes(pending)


class SourceClient:
    """The source's extract, feed and JWKS."""

    def __init__(self, config: MirrorConfig, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        wait = min(config.poll_s, 60)
        self.http = outbound.async_client(
            config.source, config.tls, config.bearer,
            timeout=httpx.Timeout(wait + 30, connect=10), transport=transport,
        )  # fmt: skip

    async def jwks(self) -> KeySet:
        response = await self.http.get("/.well-known/jwks.json")
        response.raise_for_status()
        return KeySet.import_key_set(response.json())

    @asynccontextmanager
    async def extract(self) -> AsyncIterator[AsyncIterator[bytes]]:
        """The whole registry's extract, line by line, as it arrives.

        Uncompressed on purpose: a gzip body could expand a small network read into
        an unbounded one before the line bound sees it.
        """
        headers = {"Accept-Encoding": "identity"}
        timeout = httpx.Timeout(600, connect=10)  # between two reads, not in total
        async with self.http.stream(
            "GET", "/api/v1/extract", headers=headers, timeout=timeout
        ) as response:
            await _raise_for_status(response)
            yield bounded_lines(response.aiter_bytes(), self.config.max_line_bytes)

    async def gazetteer_manifest(self) -> dict[str, Any]:
        response = await self.http.get("/api/v1/gazetteer")
        response.raise_for_status()
        manifest: dict[str, Any] = response.json()
        return manifest

    @asynccontextmanager
    async def gazetteer(self, country: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """One country's signed gazetteer extract, line by line (bounded like `extract`)."""
        headers = {"Accept-Encoding": "identity"}
        timeout = httpx.Timeout(600, connect=10)
        async with self.http.stream(
            "GET", f"/api/v1/gazetteer/{country}", headers=headers, timeout=timeout
        ) as response:
            await _raise_for_status(response)
            yield bounded_lines(response.aiter_bytes(), self.config.max_line_bytes)

    async def changes(self, since: int, wait: float, cursor: str | None = None) -> dict[str, Any]:
        """One feed page; `cursor` continues a revision the last page could not hold."""
        params: dict[str, Any] = {"since": since, "limit": self.config.feed_page, "wait": int(wait)}
        if cursor is not None:
            params["cursor"] = cursor
        response = await self.http.get("/api/v1/changes", params=params)
        if response.status_code == 410:
            raise FeedGone(f"the feed no longer reaches back to revision {since}")
        if response.status_code == 422:
            raise FeedGone(f"the source says revision {since} is after its head (restored?)")
        response.raise_for_status()
        page: dict[str, Any] = response.json()
        return page

    async def aclose(self) -> None:
        await self.http.aclose()


async def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code == 200:
        return
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk[: ERROR_BODY_BYTES - len(body)]
        if len(body) >= ERROR_BODY_BYTES:
            break
    raise httpx.HTTPStatusError(
        f"the source answered {response.status_code}: {bytes(body)[:300]!r}",
        request=response.request,
        response=response,
    )
