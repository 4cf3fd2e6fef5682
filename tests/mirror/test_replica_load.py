"""An extract streamed into the replica writer: whole, in chunks, in one transaction.

The source is this test's own registry (`stream_extract` over it, signed with its
keys); the lines are loaded back into the same database through the mirror's
store, which replaces everything. A changed, truncated, wrongly signed or
over-long extract is refused and leaves the database exactly as it was; a parent
listed after its child (the extract goes by id) is written all the same, on both
databases, also when the load is cut into many small chunks.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import httpx
import pytest
from joserfc.jwk import KeySet
from sqlalchemy import func, select

from cdb_service.db import replica
from cdb_service.db import revisions as rev
from cdb_service.db.documents import document_of
from cdb_service.distribution.extracts import ExtractRequest, kinds_from, stream_extract
from cdb_service.mirror.config import MirrorConfig
from cdb_service.mirror.errors import ExtractRefused
from cdb_service.mirror.source import SourceClient, bounded_lines
from cdb_service.mirror.store import ReplicaStore
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.security.signing_keys import SigningKeys
from cdb_service.services import Services
from tests.support import factories

ACTOR = "mirror:https://source.example"
AUTH = KINDS["authorities"]
CHILD = uuid.UUID("00000000-0000-4000-8000-000000000001")
PARENT = uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffffff")

State = tuple[int, dict[str, Any], list[tuple[int, str, int]]]


async def _registry(services: Services) -> None:
    """A parent that the extract lists after its child, and a few more entries."""
    writes = services.writes
    party = KINDS["routing-parties"]
    await writes.create(party, validate(party, factories.routing_party()), "admin")
    parent = factories.authority(code="DE:PARENT", routing_party_name="de-ap")
    await writes.create(AUTH, validate(AUTH, parent), "admin", entry_id=PARENT)
    child = factories.authority(code="DE:CHILD", parent_id=str(PARENT))
    await writes.create(AUTH, validate(AUTH, child), "admin", entry_id=CHILD)
    renamed = factories.authority(code="DE:CHILD", parent_id=str(PARENT), names={"en": "Two"})
    await writes.update(AUTH, CHILD, validate(AUTH, renamed), "admin")
    criteria = KINDS["jurisdiction-criteria"]
    for n in range(5):
        geo = [{"scheme": "postal-code", "code": f"{10115 + k}"} for k in range(n * 3, n * 3 + 3)]
        body = factories.criterion(authority_code="DE:CHILD", ref=f"c-{n}", geo=geo)
        await writes.create(criteria, validate(criteria, body), "admin")


async def _extract(services: Services) -> list[bytes]:
    request = ExtractRequest(kinds_from(None))
    chunks = [c async for c in stream_extract(services.sessions, services.signing, request)]
    return b"".join(chunks).splitlines(keepends=True)


async def _state(services: Services) -> State:
    """Head, every entry's document and projections, and the revisions (number, actor, count)."""
    entries: dict[str, Any] = {}
    async with rev.read_snapshot(services.sessions) as session:
        head = await rev.head_revision(session)
        for kind in KINDS.values():
            for row in (await session.scalars(select(kind.model))).all():
                projected = []
                for projection in kind.projections:
                    table: Any = projection.model.__table__
                    found = await session.execute(select(table).where(table.c.entry_id == row.id))
                    projected.append(sorted(tuple(map(str, r)) for r in found))
                entries[str(row.id)] = (document_of(kind, row), projected)
        revisions = [
            (r.revision, r.actor, r.change_count)
            for r in await session.scalars(select(rev.Revision).order_by(rev.Revision.revision))
        ]
    return head, entries, revisions


async def _lines(lines: Iterable[bytes]) -> AsyncIterator[bytes]:
    for line in lines:
        yield line


def _keys(services: Services) -> Callable[[], Awaitable[KeySet]]:
    async def keys() -> KeySet:
        return KeySet.import_key_set(services.signing.jwks())

    return keys


async def test_an_extract_loads_in_small_chunks_parents_after_children_included(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _registry(services)
    before = await _state(services)
    lines = await _extract(services)
    ids = [line.split(b'"id":"')[1][:36].decode() for line in lines[1:-1]]
    assert ids.index(str(CHILD)) < ids.index(str(PARENT))  # the extract goes by id
    monkeypatch.setattr(replica, "CHUNK_ROWS", 2)  # many chunks, a parent in a later one
    store = ReplicaStore(services.sessions, ACTOR)
    loaded = await store.load_extract(_lines(lines), _keys(services))
    assert (loaded.revision, loaded.entries) == (before[0], len(lines) - 2)
    after = await _state(services)
    assert after[0] == before[0]
    assert after[1] == before[1], "every row, document and projection as the source has it"
    # One revision row per revision an entry was last written in, counted, by the mirror.
    last_written = sorted({int(doc["revision"]) for doc, _ in before[1].values()})
    assert [r[0] for r in after[2]] == last_written
    assert {r[1] for r in after[2]} == {ACTOR}
    assert sum(r[2] for r in after[2]) == loaded.entries
    async with services.sessions() as session:
        versions = await session.scalar(select(func.count()).select_from(rev.EntryVersion))
    assert versions == loaded.entries


def _changed(lines: list[bytes]) -> list[bytes]:
    out = list(lines)
    out[3] = out[3].replace(b'"owner":"DE"', b'"owner":"XX"', 1)
    return out


def _resigned(lines: list[bytes], services: Services) -> list[bytes]:
    """The same lines under a trailer signed by a key the source does not list."""
    import hashlib
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        stranger = SigningKeys.load(Path(tmp) / "k.json", create=True)
    sha = hashlib.sha256(b"".join(lines[:-1])).hexdigest()
    header = json.loads(lines[0])
    signed = {"sha256": sha, "revision": header["revision"], "count": len(lines) - 2}
    trailer = {"type": "trailer", "count": len(lines) - 2, "sha256": sha,
               "jws": stranger.sign(signed)}  # fmt: skip
    return [*lines[:-1], (json.dumps(trailer) + "\n").encode()]


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (_changed, "line 4"),
        (lambda lines: lines[:-1], "not a trailer"),  # cut after an entry
        (lambda lines: [*lines[:-2], lines[-2][:40]], "trailer is not JSON"),  # cut mid-line
        (lambda lines: lines[:1], "no trailer"),
        (lambda lines: [], "empty"),
        ("resigned", "does not list"),
    ],
    ids=["changed", "truncated", "cut-mid-line", "header-only", "empty", "foreign-key"],
)
async def test_a_bad_extract_is_refused_and_changes_nothing(
    services: Services, monkeypatch: pytest.MonkeyPatch, spoil: Any, reason: str
) -> None:
    await _registry(services)
    lines = await _extract(services)
    before = await _state(services)
    monkeypatch.setattr(replica, "CHUNK_ROWS", 2)  # chunks were written before the refusal
    bad = _resigned(lines, services) if spoil == "resigned" else spoil(lines)
    with pytest.raises(ExtractRefused, match=reason):
        await ReplicaStore(services.sessions, ACTOR).load_extract(_lines(bad), _keys(services))
    assert await _state(services) == before


async def test_an_over_long_line_is_refused_before_it_is_buffered(services: Services) -> None:
    await _registry(services)
    before = await _state(services)
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"type":"snapshot","revision":1,"chain":"0"}\n'
        while True:  # one line that never ends
            sent += 65536
            yield b"x" * 65536

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    config = MirrorConfig(source="https://source.example", into="", max_line_bytes=1024 * 1024)
    client = SourceClient(config, transport=httpx.MockTransport(handler))
    store = ReplicaStore(services.sessions, ACTOR)
    try:
        with pytest.raises(ExtractRefused, match="line 2 is longer than 1048576 bytes"):
            async with client.extract() as lines:
                first = await anext(lines)
                assert first.startswith(b'{"type":"snapshot"')
                async for _ in lines:
                    pass
    finally:
        await client.aclose()
    assert sent <= 1024 * 1024 + 2 * 65536  # refused as the bound was passed

    # Through the store: the load is refused and nothing changes.
    lines = await _extract(services)
    huge = [*lines[:2], b"y" * 5000 + b"\n", *lines[2:]]
    with pytest.raises(ExtractRefused, match="line 3 is longer than 4096 bytes"):
        await store.load_extract(bounded_lines(_lines(huge), 4096), _keys(services))
    assert await _state(services) == before
