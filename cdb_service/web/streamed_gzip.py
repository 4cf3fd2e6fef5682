"""Gzip for the long signed streams (an extract, a country's gazetteer), done by the route
itself with ISA-L's deflate (`isal`) instead of by the app's compression middleware
(zlib at level 6).

An extract is tens of megabytes of NDJSON: at zlib's level 6, deflate was about half of
the service's CPU for one (128 MB/s), and the client waited on it; zlib's level 1 was
twice as fast for an answer 13 % larger, and still held a 1,000,000-key extract at 0.74
of `psql`'s COPY pace (make bench). ISA-L's level 1 makes about zlib level 6's size at
three times zlib level 1's speed here. The routes mark themselves with OWN_GZIP, which the
middleware's `exclude_opt_key` skips, and answer with `gzip_stream`. Each write is flushed
(sync flush), as the middleware does, so a client reads every line as soon as it was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from isal import isal_zlib
from litestar import Request
from litestar.response import Stream

from cdb_service.web.qvalues import accepted

OWN_GZIP = "own_gzip"  # a route's opt: it compresses its answer itself
LEVEL = 1  # of ISA-L's 0-3
GZIP_WBITS = 31  # zlib's window of 2**15 with a gzip header and trailer
THREAD_BYTES = 64 * 1024  # writes this large are deflated off the event loop


def accepts_gzip(request: Request[Any, Any, Any]) -> bool:
    """Gzip among the accepted encodings, not refused with q=0."""
    codings = accepted(request.headers.get("accept-encoding", ""))
    return any(coding.lower() in ("gzip", "x-gzip") for coding in codings)


async def gzipped(chunks: AsyncIterator[bytes], level: int = LEVEL) -> AsyncIterator[bytes]:
    compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, GZIP_WBITS)

    def deflate(chunk: bytes) -> bytes:
        return compressor.compress(chunk) + compressor.flush(isal_zlib.Z_SYNC_FLUSH)

    try:
        async for chunk in chunks:
            # A fetch's worth of an extract (megabytes) takes milliseconds to deflate: in
            # a worker thread (ISA-L lets go of the GIL), the event loop serves meanwhile.
            yield (
                await asyncio.to_thread(deflate, chunk)
                if len(chunk) >= THREAD_BYTES
                else deflate(chunk)
            )
    finally:  # a reader that leaves closes the body's stream (and its database cursor) now
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()
    yield compressor.flush()


def gzip_stream(request: Request[Any, Any, Any], body: AsyncIterator[bytes], media_type: str,
                headers: Mapping[str, str]) -> Stream:  # fmt: skip
    """The streamed answer, gzipped when the client accepts gzip (as the middleware
    decides for other answers: every answer says it varies by Accept-Encoding)."""
    varies = {**headers, "Vary": "Accept-Encoding"}
    if accepts_gzip(request):
        return Stream(gzipped(body), media_type=media_type,
                      headers={**varies, "Content-Encoding": "gzip"})  # fmt: skip
    return Stream(body, media_type=media_type, headers=varies)
