"""Extracts: the registry (or some kinds, or one owner) as NDJSON from one snapshot, signed.

Line 1 says which revision the snapshot is. Every line but the last carries
`chain`, the SHA-256 of the previous line's chain and this line's text before it
(the snapshot line starts the chain), so a changed line is found by number. The
last line, the trailer, holds the count, the SHA-256 of every byte before it and
a JWS over both and the revision.
Entries are read in chunks inside one read transaction (REPEATABLE READ on
PostgreSQL), so memory stays flat however large the registry is. On PostgreSQL the
current entries' lines are written by the database itself (`extract_sql.line_sql`: the same bytes
the Python encoding gives) and fetched through a cursor in chunks sized by their bytes;
so are the lines of the past (`extract_sql.as_of_line_sql`), where the document is the
text the database holds. A row then costs the service its two hashes (link and digest)
and one copy, while the database writes the next fetch: long lines a fetch at a time in a
worker thread, short ones in slices on the loop, so it stays free for other requests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Text, cast, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import personal
from cdb_service.db import revisions as rev
from cdb_service.db.base import COMMON_FIELDS
from cdb_service.db.documents import document_of, to_json_value
from cdb_service.distribution.extract_sql import as_of_line_sql, batches_from_database, line_sql
from cdb_service.kernel import hash_chain
from cdb_service.registry.kinds import APPLY_ORDER, KINDS
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.security import policy
from cdb_service.security.consultations import Viewer
from cdb_service.security.signing_keys import SigningKeys

ROWS_PER_FETCH = 100
FLUSH_BYTES = 256 * 1024


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class SignedLines:
    """The extract framing, for registry extracts and gazetteer extracts alike (one
    verifier checks both): every line's JSON object carries its hash-chain link, lines
    go out in writes of about FLUSH_BYTES, and the trailer signs the digest of every
    line before it and the count of items."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.chain = hash_chain.GENESIS
        self.count = 0
        self._batch: list[bytes] = []
        self._size = 0

    def _line(self, value: Any) -> bytes:
        return self._text_line(_dumps(value))

    def _text_line(self, body: str) -> bytes:
        """A line from its JSON object's text (the chain link goes in before its `}`)."""
        self.chain = hash_chain.link(self.chain, body)
        line = f'{body[:-1]},"chain":"{self.chain}"}}\n'.encode()
        self.digest.update(line)
        return line

    def items_bytes(self, bodies: list[bytes]) -> bytes:
        """The lines of JSON objects' UTF-8 texts (as the database wrote them, never
        decoded), chained, counted and digested, as one write: each text is read twice
        (its link, the digest) and copied once, into the write. Long lines a fetch at a
        time in a worker thread, short ones in slices on the loop (`_chained`)."""
        parts: list[bytes | memoryview] = []
        digest, chain = self.digest, self.chain
        for body in bodies:
            chain = hash_chain.link_bytes(chain, body)
            line = (memoryview(body)[:-1], b',"chain":"', chain.encode(), b'"}\n')
            for part in line:
                digest.update(part)
            parts += line
        self.chain = chain
        self.count += len(bodies)
        return b"".join(parts)

    def header(self, value: dict[str, Any]) -> bytes:
        return self._line(value)

    def item(self, value: dict[str, Any] | str) -> bytes | None:
        """One counted line (a JSON object, or its text); a write's worth of lines once
        enough have gathered."""
        line = self._text_line(value) if isinstance(value, str) else self._line(value)
        self.count += 1
        self._batch.append(line)
        self._size += len(line)
        return self.flush() if self._size >= FLUSH_BYTES else None

    def flush(self) -> bytes | None:
        gathered, self._batch, self._size = b"".join(self._batch), [], 0
        return gathered or None

    def trailer(self, keys: SigningKeys, revision: int | None, **signed_too: Any) -> bytes:
        sha = self.digest.hexdigest()
        signed = {"sha256": sha, "revision": revision, "count": self.count, **signed_too}
        trailer = {"type": "trailer", "count": self.count, "sha256": sha,
                   "jws": keys.sign(signed)}  # fmt: skip
        return (_dumps(trailer) + "\n").encode()


@dataclass
class ExtractRequest:
    kinds: list[KindSpec]
    owner: str | None = None
    revision: int | None = None
    # Who reads it: private fields (named persons) only for those the policy lets see
    # them, and then recorded as consultations; None: redacted (the same for everyone).
    reader: Viewer | None = None


async def _entries_now(session: AsyncSession, kind: KindSpec, owner: str | None
                       ) -> AsyncIterator[tuple[dict[str, Any], int, int]]:  # fmt: skip
    # Plain rows, not ORM objects, a few at a time: a criterion can carry thousands of
    # geo keys, and memory must stay flat whatever the registry holds.
    table: Any = kind.model.__table__
    query = select(table).order_by(table.c.id)
    if owner:
        query = query.where(table.c.owner == owner)
    stream = await session.stream(query.execution_options(yield_per=ROWS_PER_FETCH))
    async for row in stream:
        entry: Any = row  # a Row reads like the model: the same attribute names
        yield document_of(kind, entry), row.version, row.revision


async def _lines_now(session: AsyncSession, kind: KindSpec, owner: str | None
                     ) -> AsyncIterator[str]:  # fmt: skip
    """Entry lines (their JSON text) built from the current rows with the least work per
    row: a JSON column (a criterion's thousands of geo keys) comes as the text the
    database holds and goes into the line as it is, never decoded and encoded again;
    only the scalar fields are encoded. The same document as `document_of` gives."""
    table: Any = kind.model.__table__
    names = (*COMMON_FIELDS, *kind.fields)
    stored = {name for name in names if isinstance(table.c[name].type, JSON)}
    columns = [cast(table.c[n], Text).label(n) if n in stored else table.c[n] for n in names]
    query = select(*columns).order_by(table.c.id)
    if owner:
        query = query.where(table.c.owner == owner)
    head = f'{{"type":"entry","kind":{_dumps(kind.name)},"id":'
    stream = await session.stream(query.execution_options(yield_per=ROWS_PER_FETCH))
    async for row in stream:
        values = tuple(row)
        fields = ",".join(
            f'"{name}":'
            + ((value if value is not None else "null") if name in stored
               else _dumps(to_json_value(value)))
            for name, value in zip(names, values, strict=True)
        )  # fmt: skip
        yield (f'{head}"{row.id}","version":{row.version},"revision":{row.revision},'
               f'"document":{{{fields}}}}}')  # fmt: skip


async def _entries_then(session: AsyncSession, kind: KindSpec, owner: str | None, revision: int
                        ) -> AsyncIterator[tuple[dict[str, Any], int, int]]:  # fmt: skip
    after = None
    while True:
        versions = await rev.collection_as_of(
            session, kind.name, revision, owner=owner, after=after, limit=ROWS_PER_FETCH
        )
        after = versions[-1].entry_id if versions else None
        for version in versions:
            yield dict(version.document), version.version, version.revision
        # Let go of the page at once (one by one, expunging was a third of the Python time
        # of a past extract): the snapshot's session holds nothing else.
        session.expunge_all()
        if len(versions) < ROWS_PER_FETCH:
            return


def _database_lines(kind: KindSpec, request: ExtractRequest, revision: int
                    ) -> tuple[str | None, list[Any]]:  # fmt: skip
    """PostgreSQL's query for the kind's lines, and its arguments; None where Python
    writes them (private fields: what a reader sees depends on the reader)."""
    if kind.private_fields:
        return None, []
    by_owner = request.owner is not None
    owner = [request.owner] if by_owner else []
    if request.revision is None:
        return line_sql(kind, by_owner), owner
    return as_of_line_sql(kind, by_owner), [revision, *owner]


# Lines at least this long on average are chained in a worker thread: hashlib lets go of
# the GIL over a text of 2 KiB or more, so the event loop serves meanwhile. Shorter ones
# are chained on the loop in writes of FLUSH_BYTES with a turn of the loop between: in a
# thread they would hold the GIL, and the loop would wait up to the switch interval
# (5 ms) each time it woke.
THREAD_LINE_BYTES = 2048


async def _chained(lines: SignedLines, bodies: list[bytes]) -> AsyncIterator[bytes]:
    """A fetch of the database's lines chained, as writes (see THREAD_LINE_BYTES)."""
    if sum(map(len, bodies)) >= THREAD_LINE_BYTES * len(bodies):
        yield await asyncio.to_thread(lines.items_bytes, bodies)
        return
    start = size = 0
    for end, body in enumerate(bodies, 1):
        size += len(body)
        if size >= FLUSH_BYTES or end == len(bodies):
            yield lines.items_bytes(bodies[start:end])
            start, size = end, 0
            await asyncio.sleep(0)


async def stream_extract(
    sessions: async_sessionmaker[AsyncSession], keys: SigningKeys, request: ExtractRequest
) -> AsyncIterator[bytes]:
    lines = SignedLines()
    async with rev.read_snapshot(sessions) as session:
        head = await rev.head_revision(session)
        revision = head if request.revision is None else request.revision
        yield lines.header({
            "type": "snapshot",
            "revision": revision,
            "generated_at": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
            "kinds": [k.name for k in request.kinds],
            "owner": request.owner,
        })  # fmt: skip
        postgres = session.get_bind().dialect.name == "postgresql"
        for kind in sorted(request.kinds, key=lambda k: APPLY_ORDER.index(k.name)):
            sql, arguments = _database_lines(kind, request, revision) if postgres else (None, [])
            if sql is not None:
                # The database writes the lines; here a fetch of them at a time is
                # chained and counted while the database writes the next. Closed when
                # the reader leaves, so that the fetch under way ends before the
                # snapshot's rollback needs the connection.
                async with aclosing(batches_from_database(session, sql, arguments)) as batches:
                    async for bodies in batches:
                        async for chained in _chained(lines, bodies):
                            yield chained
                continue
            if request.revision is None and not kind.private_fields:
                # Nothing to leave out for anyone: lines straight from the rows.
                async for text in _lines_now(session, kind, request.owner):
                    if written := lines.item(text):
                        yield written
                if rest := lines.flush():
                    yield rest
                continue
            entries = (
                _entries_now(session, kind, request.owner)
                if request.revision is None
                else _entries_then(session, kind, request.owner, revision)
            )
            # Private fields are stored as refs (`db.personal`): resolved for a reader who
            # sees them, `[erased]` where erased; a past extract served again is so too.
            sees = request.reader is not None and request.reader.sees_named_persons
            values = await personal.values_of_kind(session, kind.name) if sees else {}
            async for document, version, last_revision in entries:
                document = (
                    policy.redact(document, kind.private_fields) if request.reader is None
                    else request.reader.visible(kind.name, kind.private_fields,
                                                personal.shown(document, values),
                                                "extract", version)
                )  # fmt: skip
                written = lines.item({
                    "type": "entry",
                    "kind": kind.name,
                    "id": document["id"],
                    "version": version,
                    "revision": last_revision,
                    "document": document,
                })  # fmt: skip
                if written:
                    yield written
            if rest := lines.flush():
                yield rest
    yield lines.trailer(keys, revision)


def kinds_from(names: Iterable[str] | None) -> list[KindSpec]:
    if not names:
        return list(KINDS.values())
    return [KINDS[n] for n in names]


@dataclass
class Verdict:
    ok: bool
    detail: str
    line: int | None = None
    revision: int | None = None
    count: int | None = None


class ExtractVerifier:
    """Checks an extract line by line, as it arrives: the one verification code path.

    Feed every line but the last to `line` (the snapshot line first), then the last
    one to `trailer` with the source's key set. `line` checks the chain at once, so
    a changed line is named by number while the extract is still being read; only
    `trailer` authenticates
    (the digest of every byte before it, the count, and the JWS against the
    source's keys), so whatever a caller did with the lines stays provisional
    until `trailer` says ok. Memory: one digest and one chain value.
    """

    def __init__(self) -> None:
        self.lines = 0
        self.revision: int | None = None
        self._digest = hashlib.sha256()
        self._chain = hash_chain.GENESIS

    def line(self, raw: bytes) -> Verdict | None:
        """A snapshot or entry line: None when its chain holds, else the failing verdict."""
        self.lines += 1
        self._digest.update(raw)
        text = raw.decode("utf-8", "replace").rstrip("\n")
        body, marker, given = text.rpartition(',"chain":"')
        if not marker:
            return Verdict(False, "has no chain value", self.lines)
        self._chain = hash_chain.link(self._chain, body + "}")
        if given.rstrip('"}') != self._chain:
            return Verdict(False, "was changed (its chain value does not match)", self.lines)
        if self.lines == 1:
            try:
                header = json.loads(raw)
                self.revision = header.get("revision") if isinstance(header, dict) else None
            except ValueError:
                return Verdict(False, "the snapshot line is not JSON", 1)
        return None

    def trailer(self, raw: bytes, key_set: Any) -> Verdict:
        """The last line: the verdict on the whole extract, against the source's JWKS.

        The keys are asked for at the end, as a client reads them once the extract is
        in: a key rotated in meanwhile is listed by then.
        """
        from joserfc.errors import JoseError

        from cdb_service.security.signing_keys import header_of, verify

        at = self.lines + 1
        if self.lines < 1:
            return Verdict(False, "too short to be an extract (no snapshot line or no trailer)")
        try:
            trailer = json.loads(raw)
        except ValueError:
            return Verdict(False, "the trailer is not JSON", at)
        if not isinstance(trailer, dict) or trailer.get("type") != "trailer":
            return Verdict(False, "the last line is not a trailer (truncated?)", at)
        if trailer.get("sha256") != self._digest.hexdigest():
            return Verdict(False, "the digest of the lines before the trailer does not match", at)
        if trailer.get("count") != self.lines - 1:
            return Verdict(False, "the trailer's count does not match the lines", at)
        kid = header_of(str(trailer.get("jws", "x.y.z"))).get("kid")
        if kid not in {k.kid for k in key_set.keys}:
            return Verdict(False, f"signed by key {kid!r}, which the JWKS does not list", at)
        try:
            payload = verify(trailer["jws"], key_set)
        except (JoseError, ValueError) as error:
            return Verdict(False, f"the signature does not verify ({error})", at)
        if payload.get("sha256") != trailer["sha256"] or payload.get("count") != trailer["count"]:
            return Verdict(False, "the signed digest or count differs from the trailer's", at)
        if payload.get("revision") != self.revision:
            return Verdict(False, "the signed revision differs from the snapshot line's", 1)
        return Verdict(True, f"signed by {kid}", None, self.revision, trailer["count"])


def verify_lines(lines: list[bytes], key_set: Any) -> Verdict:
    """Check a saved extract: every line's chain, the digest, and the signature."""
    if len(lines) < 2:
        return Verdict(False, "too short to be an extract (no snapshot line or no trailer)")
    verifier = ExtractVerifier()
    for raw in lines[:-1]:
        failed = verifier.line(raw)
        if failed is not None:
            return failed
    return verifier.trailer(lines[-1], key_set)
