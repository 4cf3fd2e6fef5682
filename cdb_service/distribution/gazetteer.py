"""The gazetteer as the service publishes it, so that a mirror resolves exactly alike.

`GET /api/v1/gazetteer` lists every country's load (digest, time, places) and the
identity of the whole; the change feed announces that identity with every page.
`GET /api/v1/gazetteer/{country}` is one country's places as a signed extract in
the registry extract's framing (hash-chained lines, a trailer with digest, count and
JWS), so `extracts.ExtractVerifier` checks it: the first line names the country and
its digest, each further line one place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import revisions as rev
from cdb_service.distribution.extracts import SignedLines
from cdb_service.lookup import gazetteer
from cdb_service.security.signing_keys import SigningKeys


def manifest_of(loads: list[gazetteer.GazetteerLoad]) -> dict[str, Any]:
    stamps = {load.country: gazetteer.stamp_of(load) for load in loads}
    return {
        "identity": gazetteer.identity(stamps),
        "countries": [
            {
                "country": load.country,
                "digest": stamps[load.country],
                "loaded_at": load.loaded_at.isoformat(),
                "place_count": load.place_count,
                "source": load.source,
            }
            for load in loads
        ],
    }


async def manifest(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    async with sessions() as session:
        return manifest_of(await gazetteer.loads(session))


async def stream_country(
    sessions: async_sessionmaker[AsyncSession], keys: SigningKeys, country: str
) -> AsyncIterator[bytes]:
    """One country's places from one snapshot, framed and signed like an extract."""
    lines = SignedLines()
    async with rev.read_snapshot(sessions) as session:
        load = next((x for x in await gazetteer.loads(session) if x.country == country), None)
        yield lines.header({
            "type": "gazetteer",
            "revision": None,  # reference data: not a registry revision (the signature says so)
            "country": country,
            "digest": gazetteer.stamp_of(load) if load else None,
            "loaded_at": load.loaded_at.isoformat() if load else None,
            "source": load.source if load else None,
            "generated_at": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        })  # fmt: skip
        async for postal_code, lau, nuts3, lau_name in gazetteer.stream_places(session, country):
            written = lines.item({"type": "place", "postal_code": postal_code, "lau": lau,
                                  "nuts3": nuts3, "lau_name": lau_name})  # fmt: skip
            if written:
                yield written
        if rest := lines.flush():
            yield rest
    yield lines.trailer(keys, None, gazetteer=country)
