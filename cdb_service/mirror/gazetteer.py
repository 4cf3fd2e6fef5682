"""The mirror's copy of its source's gazetteer: without it, postal codes resolve differently.

Every feed page announces the source's gazetteer identity; when it differs from the
mirror's, the mirror reads the source's manifest and copies each country whose digest
differs from a signed extract (`distribution/gazetteer.py`), verified line by line
and loaded in one transaction that is refused, leaving the old copy, unless the
trailer verifies and the loaded places have the announced digest.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.distribution.extracts import ExtractVerifier
from cdb_service.logging import get_logger
from cdb_service.lookup import gazetteer
from cdb_service.lookup.gazetteer import GazetteerError, Place
from cdb_service.mirror.errors import ExtractRefused
from cdb_service.mirror.source import SourceClient

log = get_logger("cdb.mirror")


async def local_identity(sessions: async_sessionmaker[AsyncSession]) -> str:
    async with sessions() as session:
        loads = await gazetteer.loads(session)
    return gazetteer.identity({load.country: gazetteer.stamp_of(load) for load in loads})


async def follow(sessions: async_sessionmaker[AsyncSession], client: SourceClient) -> str:
    """Make the mirror's gazetteer the source's; returns the source's identity copied."""
    manifest = await client.gazetteer_manifest()
    async with sessions() as session:
        held = {load.country: gazetteer.stamp_of(load) for load in await gazetteer.loads(session)}
    wanted = {item["country"]: item["digest"] for item in manifest["countries"]}
    for country, digest in sorted(wanted.items()):
        if held.get(country) == digest:
            continue
        async with client.gazetteer(country) as lines:
            places = _verified_places(lines, country, digest, client.jwks)
            try:
                count = await gazetteer.replace_country(
                    sessions, country, places, f"mirror of {client.config.source}", digest
                )
            except GazetteerError as error:
                raise ExtractRefused(f"gazetteer of {country}: {error}") from error
        log.info("gazetteer copied", country=country, places=count)
    for country in sorted(set(held) - set(wanted)):
        await gazetteer.remove_country(sessions, country)
        log.info("gazetteer removed, as at the source", country=country)
    return str(manifest["identity"])


async def _verified_places(
    lines: AsyncIterator[bytes], country: str, digest: str, keys: Callable[[], Awaitable[KeySet]]
) -> AsyncIterator[Place]:
    """The places of a country's extract, checked as they come; the trailer last.

    Raises (so the loading transaction rolls back) on any line that does not verify,
    on a header for another country or digest, and on a trailer that does not.
    """
    verifier = ExtractVerifier()
    first = await anext(lines, None)
    if first is None or verifier.line(first) is not None:
        raise ExtractRefused(f"gazetteer of {country}: no valid first line")
    header = json.loads(first)
    if header.get("type") != "gazetteer" or header.get("country") != country:
        raise ExtractRefused(f"gazetteer of {country}: the first line is not its header")
    if header.get("digest") != digest:
        raise ExtractRefused(f"gazetteer of {country}: changed since the manifest (retry)")
    held: bytes | None = None
    async for raw in lines:
        if held is not None:
            failed = verifier.line(held)
            if failed is not None:
                raise ExtractRefused(f"gazetteer of {country}, line {failed.line}: {failed.detail}")
            try:
                item = json.loads(held)
                yield Place(item["postal_code"], item["lau"], item["nuts3"], item["lau_name"])
            except (ValueError, KeyError, TypeError) as error:
                raise ExtractRefused(f"gazetteer of {country}: {error}") from error
        held = raw
    if held is None:
        raise ExtractRefused(f"gazetteer of {country}: no trailer (truncated?)")
    verdict = verifier.trailer(held, await keys())
    if not verdict.ok:
        raise ExtractRefused(f"gazetteer of {country} does not verify: {verdict.detail}")
