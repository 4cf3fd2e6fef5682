"""Extracts and the change feed, as a connector that must never miss a change uses them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from joserfc.jwk import KeySet
from sqlalchemy import func, select, update

from cdb_service.db.revisions import EntryVersion, Revision
from cdb_service.distribution.extracts import (
    ExtractRequest,
    kinds_from,
    stream_extract,
    verify_lines,
)
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.batch_items import BatchItem
from cdb_service.registry.store.validation import validate
from cdb_service.security.signing_keys import SigningKeys
from cdb_service.services import Services
from cdb_service.settings import Settings
from tests.support import factories
from tests.support.api import Api

AUTH = KINDS["authorities"]


async def _extract(api: Api, **params: Any) -> list[bytes]:
    async with api.client("reader") as c:
        response = await c.get("/api/v1/extract", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return response.content.splitlines(keepends=True)


def _state(lines: list[bytes]) -> dict[str, dict[str, Any]]:
    entries = [json.loads(line) for line in lines[1:-1]]
    return {e["id"]: e["document"] for e in entries}


async def test_feed_consumer_during_8_writers_ends_equal_to_a_fresh_extract(
    api: Api, services: Services, settings: Settings
) -> None:
    async def writer(own: Services, w: int) -> None:
        for n in range(40):
            if n % 5 == 0:  # every fifth write is a batch of twelve: one revision, 12 versions
                docs = [factories.authority(code=f"DE:W{w}-{n}-{k}") for k in range(12)]
                items = [BatchItem.of(AUTH, validate(AUTH, d), k) for k, d in enumerate(docs)]
                await own.batches.apply(items, f"w{w}")
            else:
                doc = validate(AUTH, factories.authority(code=f"DE:W{w}-{n}"))
                created = (await own.writes.create(AUTH, doc, f"w{w}")).document
                if n % 3 == 0:
                    body = factories.authority(code=f"DE:W{w}-{n}", names={"en": "Renamed"})
                    await own.writes.update(
                        AUTH, _uuid(created["id"]), validate(AUTH, body), f"w{w}"
                    )

    async def writers() -> None:
        # Their own services and event loop: the in-process test client holds the test's
        # loop for the length of each (long-polling) request, as no real server would.
        own = Services.open(settings)
        try:
            await asyncio.gather(*(writer(own, w) for w in range(8)))
        finally:
            await own.close()

    consumed: dict[str, dict[str, Any]] = {}
    revisions: list[int] = []
    seen: set[tuple[str, int]] = set()
    held: list[dict[str, Any]] = []  # the part of a revision larger than a page
    writing = asyncio.create_task(asyncio.to_thread(asyncio.run, writers()))
    since, cursor = 0, None
    async with api.client("reader") as c:
        while True:
            params: dict[str, Any] = {"since": since, "limit": 7, "wait": 1}
            if cursor:
                params["cursor"] = cursor
            page = (await c.get("/api/v1/changes", params=params)).json()
            assert len(page["changes"]) <= 7, "limit is honoured inside a large revision"
            for change in page["changes"]:
                assert (change["id"], change["version"]) not in seen, "a version came twice"
                seen.add((change["id"], change["version"]))
            # a follower applies only whole revisions: those up to `next`
            arrived = [*held, *page["changes"]]
            whole = [ch for ch in arrived if ch["revision"] <= page["next"]]
            held = [ch for ch in arrived if ch["revision"] > page["next"]]
            assert not held or page["cursor"], "changes after `next` only on a split page"
            by_revision: dict[int, int] = {}
            for change in whole:
                by_revision[change["revision"]] = by_revision.get(change["revision"], 0) + 1
                if change["operation"] == "delete":
                    consumed.pop(change["id"], None)
                else:
                    consumed[change["id"]] = change["document"]
            revisions.extend(sorted(by_revision))
            since, cursor = page["next"], page["cursor"]
            if writing.done() and not page["more"] and since == await services.reads.head():
                break
            await asyncio.sleep(0)
    await writing
    head = await services.reads.head()
    assert revisions == list(range(1, head + 1)), "a revision was missed, split or repeated"
    assert held == []
    lines = await _extract(api)
    assert json.loads(lines[0])["revision"] == head
    assert consumed == _state(lines)
    assert len(consumed) == 8 * (8 * 12 + 32)
    assert head == 8 * (40 + 11)  # 40 writes and 11 updates per writer, one revision each
    async with services.sessions() as session:
        versions = await session.scalar(select(func.count()).select_from(EntryVersion))
    assert versions >= 1000, "the feed was exercised with at least 1,000 changes"


async def test_an_extract_sees_one_snapshot_while_a_batch_commits(services: Services) -> None:
    await services.writes.create(AUTH, validate(AUTH, factories.authority(code="DE:BEFORE")), "a")
    request = ExtractRequest(kinds_from(None))
    stream = stream_extract(services.sessions, services.signing, request)
    first = await anext(stream)  # the snapshot is taken
    batch = [
        BatchItem.of(AUTH, validate(AUTH, factories.authority(code=f"DE:B{n}")), n)
        for n in range(20)
    ]
    assert (await services.batches.apply(batch, "importer")).revision == 2
    lines = [first] + [line async for chunk in stream for line in chunk.splitlines(keepends=True)]
    codes = [json.loads(line)["document"]["code"] for line in lines[1:-1]]
    assert codes == ["DE:BEFORE"]
    assert json.loads(lines[0])["revision"] == 1
    after = [
        line
        async for chunk in stream_extract(services.sessions, services.signing, request)
        for line in chunk.splitlines(keepends=True)
    ]
    assert len(after) == 2 + 21


async def test_past_snapshots_owner_and_kinds(api: Api, services: Services) -> None:
    created = (
        await services.writes.create(AUTH, validate(AUTH, factories.authority()), "a")
    ).document
    french = factories.authority(owner="FR", code="FR:C")
    await services.writes.create(AUTH, validate(AUTH, french), "a")
    await services.writes.delete(AUTH, _uuid(created["id"]), "a")
    past = _state(await _extract(api, revision=1))
    assert [d["code"] for d in past.values()] == ["DE:COURT-1"]
    now = _state(await _extract(api, kinds=["authorities"], owner="FR"))
    assert [d["code"] for d in now.values()] == ["FR:C"]
    async with api.client("reader") as c:
        bad = await c.get("/api/v1/extract", params={"kinds": "planets"})
        zipped = await c.get("/api/v1/extract", headers={"Accept-Encoding": "gzip"})
    assert bad.status_code == 422
    assert zipped.headers.get("content-encoding") == "gzip"


async def test_tampering_is_found_by_line_and_retired_keys_verify_while_listed(
    api: Api, services: Services, tmp_path: Path
) -> None:
    for n in range(5):
        await services.writes.create(
            AUTH, validate(AUTH, factories.authority(code=f"DE:T{n}")), "a"
        )
    lines = await _extract(api)
    async with api.client() as c:
        jwks = (await c.get("/.well-known/jwks.json")).json()
    assert verify_lines(lines, KeySet.import_key_set(jwks)).ok
    for number in range(1, len(lines) + 1):
        tampered = list(lines)
        line = tampered[number - 1]
        if number < len(lines):  # any edit to a data line, even a harmless-looking one
            tampered[number - 1] = line.replace(b"{", b"{ ", 1)
        else:  # the trailer: claim one entry fewer
            tampered[number - 1] = line.replace(b'"count":5', b'"count":4')
        assert tampered[number - 1] != line
        verdict = verify_lines(tampered, KeySet.import_key_set(jwks))
        assert not verdict.ok
        assert verdict.line == number, (number, verdict)
    # Rotation: the old key stays listed, and the old extract still verifies with it.
    keys = SigningKeys.load(api.settings.signing_keys_path, create=False)
    keys.rotate(dt.timedelta(days=1))
    listed = keys.jwks()
    assert len(listed["keys"]) == 2
    assert verify_lines(lines, KeySet.import_key_set(listed)).ok
    after_listing = keys.jwks(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    verdict = verify_lines(lines, KeySet.import_key_set(after_listing))
    assert not verdict.ok and "does not list" in verdict.detail
    # The command line says the same, naming the line.
    saved, jwks_file = tmp_path / "extract.ndjson", tmp_path / "jwks.json"
    broken = list(lines)
    broken[2] = broken[2].replace(b"DE:T", b"DE:X")
    saved.write_bytes(b"".join(broken))
    jwks_file.write_text(json.dumps(listed))
    exe = str(Path(sys.executable).with_name("cdb-service"))
    env = os.environ | {"CDB_LOG_LEVEL": "WARNING"}
    command = [exe, "verify-extract", str(saved), "--jwks", str(jwks_file)]
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, env=env
    )
    assert result.returncode == 1
    assert "line 3" in result.stderr
    saved.write_bytes(b"".join(lines))
    ok = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr


async def test_a_since_older_than_the_feed_keeps_is_410(api: Api, services: Services) -> None:
    for n in range(3):
        await services.writes.create(
            AUTH, validate(AUTH, factories.authority(code=f"DE:O{n}")), "a"
        )
    async with services.sessions() as session, session.begin():
        old = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
        await session.execute(
            update(Revision).where(Revision.revision <= 2).values(committed_at=old)
        )
    async with api.client("reader") as c:
        gone = await c.get("/api/v1/changes", params={"since": 0})
        fine = await c.get("/api/v1/changes", params={"since": 2})
        current = await c.get("/api/v1/changes", params={"since": 3})
        waited = await c.get("/api/v1/changes", params={"since": 3, "wait": 1})
    assert gone.status_code == 410
    assert "extract" in gone.json()["detail"]
    assert [ch["revision"] for ch in fine.json()["changes"]] == [3]
    assert current.json()["changes"] == [] and current.json()["next"] == 3
    assert waited.status_code == 200 and waited.json()["changes"] == []


def _uuid(value: str):  # type: ignore[no-untyped-def]
    import uuid

    return uuid.UUID(value)


async def test_changes_filter_by_kind_and_owner_and_refuse_unknown_parameters(
    api: Api, services: Services
) -> None:
    party = KINDS["routing-parties"]
    await services.writes.create(AUTH, validate(AUTH, factories.authority(code="DE:K1")), "a")
    await services.writes.create(party, validate(party, factories.routing_party()), "a")
    fr = factories.routing_party(owner="FR", name="fr-ap")
    await services.writes.create(party, validate(party, fr), "a")
    docs = [factories.authority(code=f"DE:K{k}") for k in range(2, 12)]
    await services.batches.apply([BatchItem.of(AUTH, validate(AUTH, d), k) for k, d in
                                  enumerate(docs)], "b")  # fmt: skip
    async with api.client("reader") as c:
        parties = await c.get("/api/v1/changes", params={"since": 0, "kind": "routing-parties"})
        french = await c.get(
            "/api/v1/changes", params={"since": 0, "kind": "routing-parties", "owner": "fr"}
        )
        both = await c.get(
            "/api/v1/changes",
            params=[("since", 0), ("kind", "routing-parties"), ("kind", "authorities")],
        )
        misspelt = await c.get("/api/v1/changes", params={"since": 0, "kinds": "authorities"})
        unknown_kind = await c.get("/api/v1/changes", params={"since": 0, "kind": "parties"})
        bad_owner = await c.get("/api/v1/changes", params={"since": 0, "owner": "XX"})
        # the batch (revision 4, ten versions) split over pages of four
        first = (await c.get("/api/v1/changes", params={"since": 3, "limit": 4})).json()
        wrong_since = await c.get(
            "/api/v1/changes", params={"since": 2, "limit": 4, "cursor": first["cursor"]}
        )
        forged = await c.get("/api/v1/changes", params={"since": 3, "cursor": "bm90IG1pbmU"})
        pages = [first]
        while pages[-1]["cursor"]:
            params = {"since": pages[-1]["next"], "limit": 4, "cursor": pages[-1]["cursor"]}
            pages.append((await c.get("/api/v1/changes", params=params)).json())
    assert parties.status_code == 200, parties.text
    assert [ch["kind"] for ch in parties.json()["changes"]] == ["routing-parties"] * 2
    assert parties.json()["next"] == 4 and not parties.json()["more"]  # looked through the head
    assert [ch["document"]["name"] for ch in french.json()["changes"]] == ["fr-ap"]
    assert len(both.json()["changes"]) == 13
    assert misspelt.status_code == 400
    assert [e["loc"] for e in misspelt.json()["errors"]] == [["query", "kinds"]]
    assert unknown_kind.status_code == 422
    assert [e["loc"] for e in unknown_kind.json()["errors"]] == [["query", "kind"]]
    assert bad_owner.status_code == 422
    assert [e["loc"] for e in bad_owner.json()["errors"]] == [["query", "owner"]]
    assert wrong_since.status_code == 422
    assert [e["loc"] for e in wrong_since.json()["errors"]] == [["query", "cursor"]]
    assert forged.status_code == 400
    assert [len(p["changes"]) for p in pages] == [4, 4, 2]
    assert [p["next"] for p in pages] == [3, 3, 4] and pages[-1]["cursor"] is None
    codes = [ch["document"]["code"] for p in pages for ch in p["changes"]]
    assert sorted(codes) == sorted(d["code"] for d in docs)  # all ten, none twice
