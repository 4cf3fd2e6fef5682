"""An extract asked for with gzip comes compressed by the route itself (at the fastest
level, web/streamed_gzip.py) and reads, once inflated, as the plain one does: every line
chained, the trailer's digest and signature intact."""

from __future__ import annotations

import gzip
import zlib
from types import SimpleNamespace
from typing import Any

import pytest
from joserfc.jwk import KeySet

from cdb_service.distribution.extracts import verify_lines
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.services import Services
from cdb_service.web import streamed_gzip
from tests.support import factories
from tests.support.api import Api

AUTH = KINDS["authorities"]


async def test_a_gzipped_extract_verifies_and_plain_is_asked_for_plainly(
    api: Api, services: Services
) -> None:
    for n in range(30):
        document = factories.authority(code=f"DE:GZ-{n}")
        await services.writes.create(AUTH, validate(AUTH, document), "a")
    answers: dict[str, Any] = {}
    async with api.client("reader") as c:
        for asked in ("gzip", "identity", "gzip;q=0", "br;q=1, gzip;q=0.5"):
            answers[asked] = await c.get("/api/v1/extract", headers={"Accept-Encoding": asked})
        jwks = (await c.get("/.well-known/jwks.json")).json()
    keys = KeySet.import_key_set(jwks)
    for asked, answer in answers.items():
        assert answer.status_code == 200, answer.text
        assert "Accept-Encoding" in answer.headers["vary"]
        compressed = asked in ("gzip", "br;q=1, gzip;q=0.5")
        assert answer.headers.get("content-encoding") == ("gzip" if compressed else None), asked
        lines = answer.content.splitlines(keepends=True)  # inflated by the client
        assert len(lines) == 30 + 2
        assert verify_lines(lines, keys).ok, asked


async def test_the_stream_is_one_gzip_member_each_write_readable_at_once() -> None:
    # A fetch's worth (deflated in a worker thread), then small writes (deflated at once).
    large = streamed_gzip.THREAD_BYTES // 8 + 1
    writes = [b'{"a":1}\n' * large, b'{"b":2}\n', b'{"c":3}\n' * 50, b'{"d":4}\n' * large]

    async def chunks() -> Any:
        for write in writes:
            yield write

    parts = [part async for part in streamed_gzip.gzipped(chunks())]
    assert gzip.decompress(b"".join(parts)) == b"".join(writes)
    # Sync-flushed: what came so far inflates to every write so far, before the end.
    inflater = zlib.decompressobj(streamed_gzip.GZIP_WBITS)
    assert inflater.decompress(b"".join(parts[:2])) == b"".join(writes[:2])


@pytest.mark.parametrize(
    ("header", "wanted"),
    [("gzip", True), ("gzip, deflate", True), ("deflate, GZIP;q=0.1", True), ("x-gzip", True),
     ("gzip;q=0", False), ("gzip; q=0.0", False), ("identity", False), ("", False),
     ("br", False)],
)  # fmt: skip
def test_gzip_is_accepted_as_the_header_says(header: str, wanted: bool) -> None:
    request: Any = SimpleNamespace(headers={"accept-encoding": header})
    assert streamed_gzip.accepts_gzip(request) is wanted
