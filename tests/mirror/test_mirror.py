"""The mirror client against a real source service (dev profile, seeded), loopback only.

One source process for the module. In-process mirrors (on SQLite and PostgreSQL)
show a tampered extract refused, 410 and 422 answered by a fresh extract, a
diverged copy repaired and a foreign database left alone. Then a real
`cdb-service mirror --serve` process is killed with SIGKILL in the middle of the
feed while the source takes writes over its API; it must stop at a whole
revision, resume from it (no new extract), converge to the source entry for
entry, and answer 1,000 resolve queries exactly as the source does — and go on
answering when the source is down.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from sqlalchemy import select, text, update

from cdb_service.db import revisions as rev
from cdb_service.db.documents import document_of
from cdb_service.db.engine import create_engine, session_factory
from cdb_service.distribution import feed
from cdb_service.kernel import codes
from cdb_service.mirror.config import MirrorConfig
from cdb_service.mirror.errors import Diverged, ExtractRefused, ForeignDatabase
from cdb_service.mirror.follower import Follower
from cdb_service.mirror.source import SourceClient
from cdb_service.mirror.store import ReplicaStore
from cdb_service.registry.kinds import KINDS
from cdb_service.security.dev import DevPki, token_for
from cdb_service.seeding import dataset
from cdb_service.services import Services
from cdb_service.settings import Settings
from tests.support import tercet
from tests.support.nginx import free_port
from tests.support.service_process import executable, service_env, stop
from tests.support.tls import client_context

pytestmark = pytest.mark.slow

Entries = dict[str, tuple[str, int, int, dict[str, Any]]]


# --- the source ---------------------------------------------------------------------------


@dataclass
class Source:
    process: subprocess.Popen[bytes]
    port: int
    root: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pki(self) -> DevPki:
        return DevPki(self.root / "var" / "pki")

    def token(self, client: str) -> str:
        issuer = Settings(port=self.port).dev_issuer_url()
        return token_for(self.pki, client, issuer, "cdb-api", "cdb_owner")

    def context(self, client: str) -> Any:
        pki = self.pki
        return client_context(pki.ca, pki.client_cert(client), pki.client_key(client))

    def client(self, name: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.context(name), timeout=30,
                            headers={"Authorization": f"Bearer {self.token(name)}"})  # fmt: skip

    def config(self, into: str, **changes: Any) -> MirrorConfig:
        pki = self.pki
        return MirrorConfig(source=self.url, into=into, ca=pki.ca, cert=pki.client_cert("reader"),
                            key=pki.client_key("reader"), token=self.token("reader"),
                            poll_s=1, **changes)  # fmt: skip


def _wait(
    condition: Callable[[], bool], timeout: float, what: str, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def _source_ready(port: int, ca: Path) -> bool:
    if not ca.exists():
        return False
    try:
        url = f"https://127.0.0.1:{port}/health/ready"
        return httpx.get(url, timeout=2, verify=client_context(ca)).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    with serving_source(tmp_path_factory.mktemp("source")) as served:
        yield served


@contextmanager
def serving_source(root: Path) -> Iterator[Source]:
    """A source service (dev profile, seeded) in `root`, stopped on leaving."""
    port, log = free_port(), root / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([executable(), "serve"], env=service_env(root / "var", port),
                                   stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    served = Source(process, port, root)
    try:
        _wait(lambda: _source_ready(port, served.pki.ca), 90, "the source", log)
        yield served
    finally:
        stop(process)


# --- writes at the source, through its API ---------------------------------------------------


@dataclass
class Writer:
    """Creates, updates and deletes DE entries as admin-de; every call is one revision."""

    http: httpx.Client
    authorities: list[dict[str, Any]] = field(default_factory=list)
    postal_codes: list[str] = field(default_factory=list)
    created: list[tuple[str, int]] = field(default_factory=list)
    count: int = 0

    @classmethod
    def of(cls, source: Source) -> Writer:
        http = source.client("admin-de")
        items = http.get("/api/v1/authorities", params={"owner": "DE", "limit": 1000}).json()
        regions = next(c for c in dataset.countries() if c["country"] == "DE")["regions"]
        codes_de = [p for r in regions for p in r["postal_codes"]]
        return cls(http, sorted(items["items"], key=lambda a: a["code"]), codes_de)

    def _check(self, response: httpx.Response, status: int) -> httpx.Response:
        assert response.status_code == status, response.text
        self.count += 1
        return response

    def create(self) -> None:
        n = self.count
        authority = self.authorities[n % len(self.authorities)]
        code = self.postal_codes[n % len(self.postal_codes)]
        body = {
            "owner": "DE",
            "ref": f"MIRROR-{n}",
            "authority_id": authority["id"],
            "instrument": "eio",
            "competence": "execute",
            "priority": 5 + n % 40,
            "geo": [{"scheme": "postal-code", "code": code}],
        }
        made = self._check(self.http.post("/api/v1/jurisdiction-criteria", json=body), 201).json()
        self.created.append((made["id"], made["version"]))

    def rename(self) -> None:
        authority = self.authorities[self.count % len(self.authorities)]
        url = f"/api/v1/authorities/{authority['id']}"
        current = self.http.get(url)
        document = current.json()
        document["names"] = document["names"] | {"en": f"{document['names']['en']} ·{self.count}"}
        tag = current.headers["etag"]
        self._check(self.http.put(url, json=document, headers={"If-Match": tag}), 200)

    def delete(self) -> None:
        if not self.created:
            return self.create()
        entry_id, version = self.created.pop(0)
        url = f"/api/v1/jurisdiction-criteria/{entry_id}"
        self._check(self.http.delete(url, headers={"If-Match": f'"{version}"'}), 204)

    def batch(self) -> None:
        """One revision of many versions: an import creating or re-prioritising 15 criteria."""
        lines = []
        for j in range(15):
            authority = self.authorities[(j * 7) % len(self.authorities)]
            document = {
                "owner": "DE",
                "ref": f"MIRROR-BATCH-{j}",
                "authority_code": authority["code"],
                "instrument": "eio",
                "competence": "execute",
                "priority": (self.count + j) % 50,
                "geo": [{"scheme": "postal-code", "code": self.postal_codes[j % 7]}],
            }
            lines.append(json.dumps({"kind": "jurisdiction-criteria", "document": document}))
        body = "\n".join(lines) + "\n"
        ndjson = {"Content-Type": "application/x-ndjson"}
        self._check(self.http.post("/api/v1/import", content=body, headers=ndjson), 200)

    def head(self) -> int:
        page = self._check(self.http.get("/api/v1/changes", params={"since": 0, "limit": 1}), 200)
        return int(page.json()["head"])

    def changing_batch(self) -> None:
        """A batch that is a revision: one that changes nothing (the same priorities as
        an earlier test's) would be none."""
        before = self.head()
        while self.head() == before:
            self.batch()

    def burst(self, n: int) -> None:
        steps = (self.create, self.rename, self.delete, self.create, self.batch, self.rename,
                 self.create, self.delete)  # fmt: skip
        for i in range(n):
            steps[i % len(steps)]()


# --- the two sides' registries, entry by entry ----------------------------------------------


def source_entries(source: Source, revision: int | None = None) -> tuple[int, Entries]:
    params = {"revision": revision} if revision is not None else {}
    with source.client("reader") as http:
        response = http.get("/api/v1/extract", params=params)
    assert response.status_code == 200, response.text
    lines = response.content.splitlines()
    header = json.loads(lines[0])
    out: Entries = {}
    for line in lines[1:-1]:
        entry = json.loads(line)
        out[entry["id"]] = (entry["kind"], entry["version"], entry["revision"], entry["document"])
    return int(header["revision"]), out


async def mirror_entries(sessions: Any) -> tuple[int, Entries]:
    out: Entries = {}
    async with rev.read_snapshot(sessions) as session:
        head = await rev.head_revision(session)
        for kind in KINDS.values():
            for row in (await session.scalars(select(kind.model))).all():
                document = {k: v for k, v in document_of(kind, row).items() if k != "person"}
                out[document["id"]] = (kind.name, row.version, row.revision, document)
    return head, out


def mirror_entries_in(database: Path) -> tuple[int, Entries]:
    async def read() -> tuple[int, Entries]:
        engine = create_engine(Settings(database_url=f"sqlite:///{database}"))
        try:
            return await mirror_entries(session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(read())


def assert_same(mine: tuple[int, Entries], theirs: tuple[int, Entries]) -> None:
    assert mine[0] == theirs[0], "registry heads differ"
    assert mine[1].keys() == theirs[1].keys(), (
        f"only in the mirror: {sorted(mine[1].keys() - theirs[1].keys())[:5]}, "
        f"only at the source: {sorted(theirs[1].keys() - mine[1].keys())[:5]}"
    )
    different = [k for k in theirs[1] if mine[1][k] != theirs[1][k]]
    assert not different, (different[:3], [(mine[1][k], theirs[1][k]) for k in different[:1]])


# --- in-process mirrors: refusal, 410, 422, divergence, a foreign database -------------------


class Shim(httpx.AsyncBaseTransport):
    """The real source behind a transport that can tamper an extract or say 410."""

    def __init__(self, source: Source) -> None:
        self.inner = httpx.AsyncHTTPTransport(verify=source.config("").tls.ssl_context())
        self.tamper = False
        self.gone_up_to: int | None = None
        self.extracts = 0
        self.pages: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/v1/changes" and self.gone_up_to is not None:
            since = int(parse_qs(request.url.query.decode())["since"][0])
            if since <= self.gone_up_to:
                return httpx.Response(410, json=feed.gone(since).as_dict())
        response = await self.inner.handle_async_request(request)
        if path == "/api/v1/changes" and response.status_code == 200:
            body = await response.aread()
            self.pages.append(json.loads(body))
            return httpx.Response(200, headers={"content-type": "application/json"}, content=body)
        if path != "/api/v1/extract":
            return response
        self.extracts += 1
        body = await response.aread()
        if self.tamper:
            lines = body.splitlines(keepends=True)
            lines[5] = lines[5].replace(b'"owner":"', b'"owner":"X', 1)
            body = b"".join(lines)
        ndjson = {"content-type": "application/x-ndjson"}
        return httpx.Response(response.status_code, headers=ndjson, content=body)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_refused_extract_410_422_divergence_and_a_foreign_database(
    source: Source, settings: Settings, services: Services
) -> None:
    shim = Shim(source)
    # Pages of 4 versions: the writer's batches (15 versions in one revision) are split.
    config = source.config(settings.database_url, feed_page=4)
    client = SourceClient(config, transport=shim)
    mirror = Follower(config, ReplicaStore(services.sessions, config.actor), client)
    writer = Writer.of(source)
    try:
        # A changed line: the chain gives it away, nothing is applied.
        shim.tamper = True
        with pytest.raises(ExtractRefused, match="line 6"):
            await mirror.sync_once()
        assert await mirror_entries(services.sessions) == (0, {})

        shim.tamper = False
        await mirror.sync()
        assert_same(await mirror_entries(services.sessions), source_entries(source))

        # Followed by the feed: no new extract. The batch comes over several pages and
        # is applied once whole: no page is longer than asked, no revision is applied twice
        # or in part (the replica writer refuses a revision at or before its head).
        await asyncio.to_thread(writer.burst, 5)
        await asyncio.to_thread(writer.changing_batch)
        shim.pages.clear()
        await mirror.sync()
        assert shim.extracts == 2
        assert_same(await mirror_entries(services.sessions), source_entries(source))
        assert all(len(page["changes"]) <= 4 for page in shim.pages)
        split = [page for page in shim.pages if page["cursor"]]
        assert len(split) >= 3, "the 15-version batch was not split over pages"
        versions = [(c["id"], c["version"]) for page in shim.pages for c in page["changes"]]
        assert len(versions) == len(set(versions)), "a version came twice"

        # 410: the feed no longer reaches the mirror's revision -> a fresh extract.
        head, _ = await mirror.store.local_state()
        await asyncio.to_thread(writer.burst, 3)
        shim.gone_up_to = head
        await mirror.sync()
        shim.gone_up_to = None
        assert shim.extracts == 3
        assert_same(await mirror_entries(services.sessions), source_entries(source))

        # The mirror's own head past the source's: the source says 422 -> a fresh extract.
        async with services.sessions() as session, session.begin():
            await session.execute(update(rev.RegistryHead).values(revision=10_000))
        await mirror.sync()
        assert shim.extracts == 4
        assert_same(await mirror_entries(services.sessions), source_entries(source))

        # A row that is not the source's version: its next change shows the divergence.
        entry_id, _ = writer.created[0]  # the one `delete` removes next
        criteria = KINDS["jurisdiction-criteria"].model
        async with services.sessions() as session, session.begin():
            await session.execute(
                update(criteria).where(criteria.id == uuid.UUID(entry_id)).values(version=99)
            )
        await asyncio.to_thread(writer.delete)
        head, _ = await mirror.store.local_state()
        page = await client.changes(head, 0)
        with pytest.raises(Diverged, match="the mirror has version 99"):
            await mirror.store.apply_revision(head, head + 1, page["changes"])
        await mirror.sync()
        assert shim.extracts == 5
        assert_same(await mirror_entries(services.sessions), source_entries(source))

        # Revisions someone else wrote: a registry of its own, never touched.
        async with services.sessions() as session, session.begin():
            await session.execute(text("UPDATE revisions SET actor = 'cli:someone'"))
        with pytest.raises(ForeignDatabase):
            await mirror.sync_once()
    finally:
        writer.http.close()
        await client.aclose()


# --- the mirror process: kill -9 mid-feed, resume, converge, resolve alike -------------------


def _mirror(source: Source, root: Path, port: int, delay: float) -> subprocess.Popen[bytes]:
    pki = source.pki
    (root / "token").write_text(source.token("reader"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDB_")}
    with (root / "mirror.log").open("ab") as out:
        return subprocess.Popen(
            [executable(), "mirror", "--from", source.url,
             "--into", f"sqlite:///{root / 'mirror.sqlite3'}",
             "--ca", str(pki.ca), "--cert", str(pki.client_cert("reader")),
             "--key", str(pki.client_key("reader")), "--token-file", str(root / "token"),
             "--poll", "1", "--serve", "--serve-port", str(port),
             "--apply-delay", str(delay)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _mirror_head(root: Path) -> int:
    database = root / "mirror.sqlite3"
    if not database.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT revision FROM registry_head").fetchone()[0])
    except sqlite3.Error:
        return 0


def _mirror_status(port: int) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2)
    except httpx.TransportError:
        return None
    body: dict[str, Any] = response.json()
    return body["mirror"] if response.status_code == 200 else None


def _serving(port: int, revision: int) -> Callable[[], bool]:
    def check() -> bool:
        status = _mirror_status(port)
        return status is not None and status["revision"] == revision

    return check


def resolve_queries(n: int = 1000, seed: int = 6) -> list[dict[str, str]]:
    """Countries, instruments, competences and places of the seed data (DE's written ones too)."""
    rnd = random.Random(seed)
    combos = sorted({(d.get("geo", [{}])[0].get("country") or d["owner"], d["instrument"],
                      d["competence"]) for k, d in dataset.build().entries
                     if k == "jurisdiction-criteria"})  # fmt: skip
    combos = [c for c in combos if c[0] in codes.COUNTRIES]
    regions = {c["country"]: c["regions"] for c in dataset.countries()}
    queries = []
    for _ in range(n):
        cc, instrument, competence = (
            ("DE", "eio", "execute") if rnd.random() < 0.3 else rnd.choice(combos)
        )
        query = {"country": cc, "instrument": instrument, "competence": competence}
        region = rnd.choice(regions[cc])
        where = rnd.random()
        if where < 0.6:
            query["postal_code"] = rnd.choice(region["postal_codes"])
        elif where < 0.7 and region.get("lau"):
            query["lau"] = region["lau"]
        elif where < 0.85:
            query["nuts"] = region["nuts3"][: rnd.choice((3, 4, 5))]
        if rnd.random() < 0.1:
            query |= {"subject_matter": "terrorism", "stage": "investigation"}
        if rnd.random() < 0.1:
            query["date"] = "2021-06-30"
        queries.append(query)
    return queries


def test_killed_mid_feed_the_mirror_resumes_converges_and_resolves_like_the_source(
    source: Source, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "mirror.log"
    writer = Writer.of(source)
    mirror = _mirror(source, tmp_path, port, delay=0.5)
    try:
        start, _ = source_entries(source)
        _wait(_serving(port, start), 60, "the mirror's first extract", log)
        status = _mirror_status(port)
        assert status is not None and status["extracts"] == 1

        # Writes at the source; the mirror follows slowly (0.5 s a revision) and is killed.
        writer.burst(40)
        with source.client("reader") as http:
            written = http.get("/api/v1/changes", params={"since": start}).json()["head"]
        assert written >= start + 35  # an import that changes nothing makes no revision
        _wait(lambda: _mirror_head(tmp_path) >= start + 5, 30, "the mirror to follow", log)
        os.kill(mirror.pid, signal.SIGKILL)
        mirror.wait(timeout=10)
        killed_at = _mirror_head(tmp_path)
        assert start + 5 <= killed_at < written, (start, killed_at, written)
        # A whole revision: the mirror's registry is exactly the source's at that revision.
        with closing(sqlite3.connect(tmp_path / "mirror.sqlite3")) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert_same(mirror_entries_in(tmp_path / "mirror.sqlite3"),
                    source_entries(source, killed_at))  # fmt: skip

        # More writes while it is down; restarted, it resumes from its head (no new extract).
        writer.burst(16)
        mirror = _mirror(source, tmp_path, port, delay=0)
        with source.client("reader") as http:
            head = http.get("/api/v1/changes", params={"since": start}).json()["head"]
        _wait(_serving(port, head), 60, "the mirror to converge", log)
        status = _mirror_status(port)
        assert status is not None and status["extracts"] == 0 and status["source"] == head
        assert_same(mirror_entries_in(tmp_path / "mirror.sqlite3"), source_entries(source))

        # A gazetteer loaded at the source, no registry write: the feed announces it, the
        # mirror copies the signed extract, and answers by those postal codes agree.
        latvia = next(f for f in tercet.fixtures() if f.country == "LV")
        (tmp_path / "pc2024_LV.csv").write_text(latvia.text)
        loaded = subprocess.run(
            [executable(), "gazetteer-load", str(tmp_path / "pc2024_LV.csv"), "--country", "LV"],
            env=service_env(source.root / "var", source.port), capture_output=True, text=True,
        )  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr
        with source.client("reader") as central:
            identity = central.get("/api/v1/gazetteer").json()["identity"]
        _wait(lambda: (_mirror_status(port) or {}).get("gazetteer") == identity, 30,
              "the mirror to copy the source's gazetteer", log)  # fmt: skip
        with (
            source.client("reader") as central,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as local,
        ):
            for typed in (latvia.typed, "LV-1050", "LV-9999"):
                query = {"country": "LV", "instrument": "eio", "competence": "execute",
                         "postal_code": typed}  # fmt: skip
                _wait(lambda q=query: identity in central.get("/api/v1/resolve", params=q
                                                              ).headers["etag"], 10,
                      "the source's index to follow its own load")  # fmt: skip
                theirs, mine = central.get("/api/v1/resolve", params=query), local.get(
                    "/api/v1/resolve", params=query)  # fmt: skip
                assert mine.json() == theirs.json(), query
                assert mine.headers["etag"] == theirs.headers["etag"]  # the gazetteer's in it

        # 1,000 look-ups: the same answers from both, at the same revision.
        queries = resolve_queries()
        answers = []
        with (
            source.client("reader") as central,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as local,
        ):
            for query in queries:
                theirs = central.get("/api/v1/resolve", params=query)
                mine = local.get("/api/v1/resolve", params=query)
                assert theirs.status_code == mine.status_code == 200, (query, theirs.text)
                assert theirs.json()["revision"] == head  # the source's index is current
                assert mine.json() == theirs.json(), query
                answers.append(mine.json())
        assert sum(1 for a in answers if a["matches"]) > 600
        written_here = {m["criterion"]["ref"] for a in answers for m in a["matches"]}
        assert any(ref and ref.startswith("MIRROR-") for ref in written_here)

        # The central service goes down hard: the mirror keeps answering, the same.
        source.process.kill()
        source.process.wait(timeout=10)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as local:
            for query, answer in list(zip(queries, answers, strict=True))[:100]:
                response = local.get("/api/v1/resolve", params=query)
                assert response.status_code == 200 and response.json() == answer
        _wait(lambda: (_mirror_status(port) or {}).get("last_error") is not None, 20,
              "the mirror to notice the outage", log)  # fmt: skip
    finally:
        writer.http.close()
        stop(mirror)
