"""The mirror client: a local copy of the registry that follows the central service.

  cdb-service mirror --from https://cdb.example:8443 --into sqlite:///var/mirror.sqlite3 \\
      --ca ca.pem --cert client.pem --key client-key.pem --token-file token [--serve]

The mirror's store is an ordinary cdb database, migrated with the service's own
migrations, so that the service's lookup index and resolver serve from it as
they are. What it holds is what the source holds: the same entry ids, versions
and revisions, and `registry_head.revision` is the source revision it reflects.

Taking an extract: `GET /api/v1/extract` is downloaded whole, its chain, digest
and signature are checked against the source's `/.well-known/jwks.json`
(`verify_lines`; a bad extract is refused, nothing is applied), and it is loaded
in ONE transaction: the registry tables are emptied, every entry is written as
its current row (Core statements on each kind's table, values taken from the
document and turned back into dates, instants and UUIDs), its projection rows
and its entry version, and the head is set to the snapshot's revision.

Following: `GET /api/v1/changes?since=HEAD&wait=…` (long polling). Each revision
of a page is applied in its own transaction together with moving the head to it
— create/update writes the current row and its projections, delete removes them,
every change appends its entry version — so a crash (kill -9) leaves the mirror
at a whole revision and a restart resumes from `registry_head`. A change that
does not fit the mirror (an update of a row it lacks, a version that does not
follow) means the copy diverged: it re-extracts. So does a 410 (the feed no
longer reaches back to the mirror's revision) and a 422 for a `since` after the
source's head (the source was restored from an older backup).

The mirror writes its revisions with the actor `mirror:<source URL>`. It refuses
to touch a database whose revisions were written by anyone else (a registry of
its own); a mirror of another source is re-extracted.

Reference data: the gazetteer (postal code → LAU → NUTS3) is not part of the
registry's extract; a mirror that answers look-ups by postal code needs the same
gazetteer as its source, loaded with `cdb-service gazetteer-load` pointed at the
mirror database (`CDB_DATABASE_URL`), or `--seed-gazetteer` for the sample one the
dev profile seeds.

Serving (`--serve`): a documented read-only local mode. The process also answers
`GET /api/v1/resolve` (and `/resolve/recipient/…`, `/resolve/national-member`)
plus `/health/live` and `/health/ready` over plain HTTP on 127.0.0.1 only, without
certificates or tokens: it is the reference implementation's local fallback (the
connector on the same host keeps resolving while the central service is down),
not a second service. Only the resolve routes exist — nothing can be written and
no entry, extract or feed is served; resolve answers carry no named persons. The
answers come from the service's own `LookupIndex` and resolver; the follower
updates the index itself after each applied page (rebuilds it after an extract),
so a request never sees half a revision and the index says which revision it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import signal
import ssl
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
from litestar import Litestar, Request, Response, Router, get
from litestar.datastructures import State
from sqlalchemy import Date, DateTime, Table, Uuid, delete, insert, select, text, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import documents, migrate
from cdb_service.db import revisions as rev
from cdb_service.db.base import DateTimeUTC, utcnow
from cdb_service.db.engine import create_engine, session_factory
from cdb_service.db.revisions import EntryVersion, RegistryHead, Revision
from cdb_service.distribution.extracts import verify_lines
from cdb_service.logging import get_logger
from cdb_service.lookup import deps as lookup_deps
from cdb_service.lookup import index as lookup
from cdb_service.lookup.controller import ResolveController
from cdb_service.registry.kinds import APPLY_ORDER, KINDS
from cdb_service.registry.spec import KindSpec
from cdb_service.settings import Settings
from cdb_service.web.error_handlers import EXCEPTION_HANDLERS

log = get_logger("cdb.mirror")
ACTOR_PREFIX = "mirror:"
FEED_PAGE = 1000
INSERT_CHUNK = 2000
LOCK_ROW = rev.RevisionWriter.LOCK_ROW
SERVE_HOST = "127.0.0.1"


class MirrorError(Exception):
    pass


class ExtractRefused(MirrorError):
    """The extract does not verify (or is not a whole-registry extract): nothing applied."""


class FeedGone(MirrorError):
    """The feed cannot continue from the mirror's revision: take a fresh extract."""


class Diverged(MirrorError):
    """A change does not fit the mirror's rows: the copy is not the source's any more."""


class ForeignDatabase(MirrorError):
    """The database holds revisions the mirror did not write: it is not a mirror."""


@dataclass
class MirrorConfig:
    source: str
    into: str
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    token: str | None = None
    token_file: Path | None = None
    poll_s: float = 10.0
    serve_port: int | None = None
    seed_gazetteer: bool = False
    # Test aid: a pause after each applied revision, so that a test can kill the mirror mid-feed.
    apply_delay_s: float = 0.0

    @property
    def actor(self) -> str:
        return (ACTOR_PREFIX + self.source.rstrip("/"))[:200]

    def settings(self) -> Settings:
        return Settings(database_url=self.into, auto_migrate=True, auto_seed=False)


# --- talking to the source ------------------------------------------------------------------


def tls_context(config: MirrorConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(config.ca) if config.ca else None)
    if config.cert is not None:
        context.load_cert_chain(str(config.cert), str(config.key) if config.key else None)
    return context


class SourceClient:
    """The source's extract, feed and JWKS, over mutual TLS with a bearer token."""

    def __init__(self, config: MirrorConfig, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        wait = min(config.poll_s, 60)
        self.http = httpx.AsyncClient(
            base_url=config.source.rstrip("/"),
            verify=tls_context(config) if transport is None else True,
            transport=transport,
            timeout=httpx.Timeout(wait + 30, connect=10),
        )

    def _headers(self) -> dict[str, str]:
        # The file is read at every request: a token renewed on disk is picked up.
        token = self.config.token
        if self.config.token_file is not None:
            token = self.config.token_file.read_text().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def jwks(self) -> Any:
        response = await self.http.get("/.well-known/jwks.json")
        response.raise_for_status()
        return response.json()

    async def extract(self) -> list[bytes]:
        timeout = httpx.Timeout(600, connect=10)
        headers = self._headers()
        async with self.http.stream("GET", "/api/v1/extract", headers=headers,
                                    timeout=timeout) as response:  # fmt: skip
            if response.status_code != 200:
                await response.aread()
                response.raise_for_status()
            body = await response.aread()
        return body.splitlines(keepends=True)

    async def changes(self, since: int, wait: float) -> dict[str, Any]:
        params = {"since": since, "limit": FEED_PAGE, "wait": int(wait)}
        response = await self.http.get("/api/v1/changes", params=params, headers=self._headers())
        if response.status_code == 410:
            raise FeedGone(f"the feed no longer reaches back to revision {since}")
        if response.status_code == 422:
            raise FeedGone(f"the source says revision {since} is after its head (restored?)")
        response.raise_for_status()
        page: dict[str, Any] = response.json()
        return page

    async def aclose(self) -> None:
        await self.http.aclose()


# --- writing rows as the source has them ----------------------------------------------------


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


def _python(column: Any, value: Any) -> Any:
    """A document's JSON-ready value as the column's Python value."""
    if value is None:
        return None
    kind = column.type
    if isinstance(kind, DateTimeUTC | DateTime):
        return dt.datetime.fromisoformat(value)
    if isinstance(kind, Date):
        return dt.date.fromisoformat(value)
    if isinstance(kind, Uuid):
        return uuid.UUID(str(value))
    return value


def row_values(kind: KindSpec, document: Mapping[str, Any]) -> dict[str, Any]:
    """The current row of an entry from its document (`document_of` read backwards)."""
    return {c.name: _python(c, document.get(c.name)) for c in _table(kind.model).columns}


def _projection_rows(kind: KindSpec, entry_id: uuid.UUID, document: Mapping[str, Any]
                     ) -> list[tuple[Table, list[dict[str, Any]]]]:  # fmt: skip
    return [(_table(p.model), p.rows(entry_id, document)) for p in kind.projections]


def _version_row(kind: str, entry_id: uuid.UUID, version: int, revision: int, operation: str,
                 document: Mapping[str, Any], recorded_at: dt.datetime,
                 actor: str) -> dict[str, Any]:  # fmt: skip
    return {
        "revision": revision,
        "kind": kind,
        "entry_id": entry_id,
        "version": version,
        "operation": operation,
        "owner": document["owner"],
        "valid_from": _date(document.get("valid_from")),
        "valid_to": _date(document.get("valid_to")),
        "recorded_at": recorded_at,
        "actor": actor,
        "document": dict(document),
    }


def _date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _instant(value: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(value) if value else utcnow()


def _parents_first(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ordered so that a row referring to another row of its own table comes after it."""
    own = [c.name for c in table.columns for fk in c.foreign_keys if fk.column.table is table]
    if not own:
        return rows
    by_id = {row["id"]: row for row in rows}
    placed: set[Any] = set()
    out: list[dict[str, Any]] = []
    for row in rows:
        trail: list[dict[str, Any]] = []
        current: dict[str, Any] | None = row
        while current is not None and current["id"] not in placed:
            if any(current is seen for seen in trail):
                break  # a cycle: the source could not hold one; leave the rest as it comes
            trail.append(current)
            parents = [by_id.get(current[name]) for name in own]
            current = next((p for p in parents if p is not None and p["id"] not in placed), None)
        for item in reversed(trail):
            if item["id"] not in placed:
                placed.add(item["id"])
                out.append(item)
    return out


async def _insert(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), INSERT_CHUNK):
        await session.execute(insert(table), list(rows[start : start + INSERT_CHUNK]))


async def _begin_write(session: AsyncSession) -> None:
    """The head row first (the registry-wide write lock), then SQLite's FK checks to commit."""
    await session.execute(
        update(RegistryHead)
        .where(RegistryHead.id == LOCK_ROW)
        .values(revision=RegistryHead.revision)
    )
    if session.get_bind().dialect.name == "sqlite":
        # Within one revision rows may refer to each other in any order; checked at commit.
        await session.execute(text("PRAGMA defer_foreign_keys = ON"))


async def _clear(session: AsyncSession) -> None:
    """Every registry table, referrers before their targets; the gazetteer stays."""
    for name in reversed(APPLY_ORDER):
        kind = KINDS[name]
        for projection in kind.projections:
            await session.execute(delete(_table(projection.model)))
        await session.execute(delete(_table(kind.model)))
    await session.execute(delete(EntryVersion))
    await session.execute(delete(Revision))


# --- the mirror -----------------------------------------------------------------------------


@dataclass
class Status:
    """What `/health/ready` reports."""

    source_head: int | None = None
    last_contact: dt.datetime | None = None
    last_error: str | None = None
    extracts: int = 0


@dataclass
class Mirror:
    config: MirrorConfig
    sessions: async_sessionmaker[AsyncSession]
    client: SourceClient
    follower: lookup.IndexFollower | None = None
    status: Status = field(default_factory=Status)

    # -- state --

    async def local_state(self) -> tuple[int, str | None]:
        """The mirror's head revision and the actor of its newest revision."""
        async with rev.read_snapshot(self.sessions) as session:
            head = await rev.head_revision(session)
            actor = await session.scalar(
                select(Revision.actor).order_by(Revision.revision.desc()).limit(1)
            )
        return head, actor

    async def needs_extract(self) -> bool:
        head, actor = await self.local_state()
        if actor is not None and not actor.startswith(ACTOR_PREFIX):
            raise ForeignDatabase(
                f"the database holds revisions written by {actor!r}: it is a registry of its "
                "own, not a mirror; refusing to change it"
            )
        if actor is not None and actor != self.config.actor:
            log.warning("mirror of another source; re-extracting", was=actor,
                        source=self.config.source)  # fmt: skip
            return True
        return head == 0 and actor is None

    # -- one step --

    async def sync_once(self, wait: float = 0) -> int:
        """Extract if needed, then one page of the feed; returns the mirror's head."""
        if await self.needs_extract():
            return await self.reextract()
        head, _ = await self.local_state()
        try:
            page = await self.client.changes(head, wait)
        except FeedGone as gone:
            log.warning("re-extracting", reason=str(gone), head=head)
            return await self.reextract()
        self._contact(int(page["head"]))
        for revision, group in itertools.groupby(page["changes"], key=lambda c: c["revision"]):
            changes = list(group)
            try:
                await self.apply_revision(head, int(revision), changes)
            except Diverged as error:
                log.warning("the mirror diverged; re-extracting", reason=str(error),
                            revision=revision)  # fmt: skip
                return await self.reextract()
            head = int(revision)
            if self.config.apply_delay_s:
                await asyncio.sleep(self.config.apply_delay_s)
        await self._refresh_index()
        return head

    async def sync(self) -> int:
        """Apply pages until nothing more is waiting (the source's head as last seen)."""
        while True:
            head = await self.sync_once()
            source = self.status.source_head
            if source is not None and head >= source:
                return head

    # -- extracts --

    async def reextract(self) -> int:
        lines = await self.client.extract()
        jwks = await self.client.jwks()
        from joserfc.jwk import KeySet

        verdict = verify_lines(lines, KeySet.import_key_set(jwks))
        if not verdict.ok:
            where = f" (line {verdict.line})" if verdict.line else ""
            raise ExtractRefused(f"the extract does not verify{where}: {verdict.detail}")
        header = json.loads(lines[0])
        kinds = set(header.get("kinds") or ())
        if header.get("owner") or kinds != set(KINDS):
            raise ExtractRefused(
                "the extract is not of the whole registry as this version knows it (owner "
                f"{header.get('owner')!r}, missing {sorted(set(KINDS) - kinds)}, "
                f"unknown {sorted(kinds - set(KINDS))})"
            )
        revision = int(header["revision"])
        entries = [json.loads(line) for line in lines[1:-1]]
        await self.load(revision, entries)
        self.status.extracts += 1
        self._contact(revision)
        log.info("extract applied", revision=revision, entries=len(entries), detail=verdict.detail)
        if self.follower is not None:
            # A fresh index from the fresh snapshot; until it is built the old one answers.
            self.follower.index = await lookup.build(self.sessions)
        return revision

    async def load(self, revision: int, entries: Iterable[dict[str, Any]]) -> None:
        """Replace the whole registry by an extract's entries, in one transaction."""
        actor = self.config.actor
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in APPLY_ORDER}
        projected: dict[Table, list[dict[str, Any]]] = {}
        versions: list[dict[str, Any]] = []
        revisions: dict[int, tuple[dt.datetime, int]] = {}
        for entry in entries:
            kind = KINDS[entry["kind"]]
            document = entry["document"]
            values = row_values(kind, document)
            if values["version"] != entry["version"] or values["revision"] != entry["revision"]:
                raise ExtractRefused(f"entry {entry['id']}: line and document disagree")
            rows[kind.name].append(values)
            for table, items in _projection_rows(kind, values["id"], document):
                projected.setdefault(table, []).extend(items)
            stamp = values["updated_at"]
            versions.append(_version_row(kind.name, values["id"], entry["version"],
                                         entry["revision"], rev.Operation.UPDATE.value
                                         if entry["version"] > 1 else rev.Operation.CREATE.value,
                                         document, stamp, actor))  # fmt: skip
            at, count = revisions.get(entry["revision"], (stamp, 0))
            revisions[entry["revision"]] = (max(at, stamp), count + 1)
        async with self.sessions() as session, session.begin():
            await _begin_write(session)
            await _clear(session)
            await _insert(session, _table(Revision), [
                {"revision": r, "committed_at": at, "actor": actor, "change_count": count,
                 "summary": "mirrored from an extract"}
                for r, (at, count) in sorted(revisions.items())
            ])  # fmt: skip
            for name in APPLY_ORDER:
                table = _table(KINDS[name].model)
                await _insert(session, table, _parents_first(table, rows[name]))
            for table, items in projected.items():
                await _insert(session, table, items)
            await _insert(session, _table(EntryVersion), versions)
            await session.execute(
                update(RegistryHead).where(RegistryHead.id == LOCK_ROW).values(revision=revision)
            )

    # -- the feed --

    async def apply_revision(self, head: int, revision: int, changes: list[dict[str, Any]]) -> None:
        """One source revision in one transaction, the head moved to it in the same one."""
        if revision <= head:
            raise Diverged(f"revision {revision} is not after the mirror's head {head}")
        actor = self.config.actor
        async with self.sessions() as session, session.begin():
            await _begin_write(session)
            moved = await session.execute(
                update(RegistryHead)
                .where(RegistryHead.id == LOCK_ROW, RegistryHead.revision == head)
                .values(revision=revision)
            )
            if cast(CursorResult[Any], moved).rowcount != 1:
                raise Diverged(f"the mirror's head is no longer {head} (another writer?)")
            committed = max(_instant(c.get("recorded_at")) for c in changes)
            await session.execute(insert(_table(Revision)), [{
                "revision": revision, "committed_at": committed, "actor": actor,
                "change_count": len(changes), "summary": "mirrored from the change feed",
            }])  # fmt: skip
            versions = []
            for change in changes:
                await self._apply_change(session, change)
                versions.append(_version_row(
                    change["kind"], uuid.UUID(change["id"]), int(change["version"]), revision,
                    change["operation"], change["document"], _instant(change.get("recorded_at")),
                    actor,
                ))  # fmt: skip
            await _insert(session, _table(EntryVersion), versions)

    async def _apply_change(self, session: AsyncSession, change: dict[str, Any]) -> None:
        kind = KINDS.get(change["kind"])
        if kind is None:
            raise Diverged(f"unknown kind {change['kind']!r}")
        table = _table(kind.model)
        entry_id = uuid.UUID(change["id"])
        version = int(change["version"])
        current = await session.scalar(select(table.c.version).where(table.c.id == entry_id))
        expected = None if change["operation"] == rev.Operation.CREATE else version - 1
        if current != expected:
            raise Diverged(
                f"{kind.name} {entry_id}: {change['operation']} to version {version}, "
                f"but the mirror has version {current}"
            )
        for projection in kind.projections:
            model = _table(projection.model)
            await session.execute(delete(model).where(model.c.entry_id == entry_id))
        if change["operation"] == rev.Operation.DELETE:
            await session.execute(delete(table).where(table.c.id == entry_id))
            return
        values = row_values(kind, change["document"])
        if current is None:
            await session.execute(insert(table), [values])
        else:
            await session.execute(update(table).where(table.c.id == entry_id).values(values))
        for model, items in _projection_rows(kind, entry_id, change["document"]):
            if items:
                await session.execute(insert(model), items)

    # -- bookkeeping --

    def _contact(self, source_head: int) -> None:
        self.status.source_head = source_head
        self.status.last_contact = utcnow()
        self.status.last_error = None

    async def _refresh_index(self) -> None:
        if self.follower is None:
            return
        if self.follower.index is None:
            self.follower.index = await lookup.build(self.sessions)
        else:
            await lookup.catch_up(self.follower.index, self.sessions)

    # -- running --

    async def run(self) -> None:
        """Follow the source until cancelled; an unreachable source is retried, never fatal."""
        delay = min(self.config.poll_s, 5.0)
        while True:
            try:
                await self.sync_once(wait=self.config.poll_s)
                continue
            except (ForeignDatabase, asyncio.CancelledError):
                raise
            except ExtractRefused as error:
                log.error("extract refused; nothing applied", reason=str(error))
                self.status.last_error = f"extract refused: {error}"
            except httpx.HTTPStatusError as error:
                log.warning("the source refused", status=error.response.status_code,
                            url=str(error.request.url))  # fmt: skip
                self.status.last_error = f"HTTP {error.response.status_code}"
            except (httpx.HTTPError, OSError) as error:
                log.warning("the source is unreachable", error=repr(error))
                self.status.last_error = repr(error)
            with contextlib.suppress(Exception):
                await self._refresh_index()  # e.g. a gazetteer loaded meanwhile
            await asyncio.sleep(delay)


async def prepare(config: MirrorConfig, sessions: async_sessionmaker[AsyncSession]) -> None:
    """Migrate the mirror database; load the sample gazetteer if asked."""
    await migrate.upgrade(config.settings())
    if config.seed_gazetteer:
        from cdb_service.lookup import gazetteer
        from cdb_service.seeding.dataset import build

        for country, wanted in build().gazetteer.items():
            async with sessions() as session:
                present = {
                    (p.postal_code, p.lau) for p in await gazetteer.places_of(session, country)
                }
            if not {(p.postal_code, p.lau) for p in wanted} <= present:
                await gazetteer.replace_country(sessions, country, wanted, "seed sample gazetteer")


# --- serving --------------------------------------------------------------------------------


@dataclass
class MirrorRuntime:
    """The part of `Runtime` the resolve routes use: the lookup index (and the status)."""

    lookup: lookup.IndexFollower
    status: Status
    sessions: async_sessionmaker[AsyncSession]


@get("/health/live", media_type="application/health+json")
async def live() -> dict[str, Any]:
    return {"status": "pass"}


@get("/health/ready", media_type="application/health+json")
async def ready(request: Request[Any, Any, Any]) -> Response[Any]:
    """Ready once an index is loaded; says which revision it serves and what the source had."""
    state: MirrorRuntime = request.app.state.runtime
    index = state.lookup.index
    status = state.status
    body = {
        "status": "pass" if index is not None else "fail",
        "mirror": {
            "revision": index.revision if index is not None else None,
            "source": status.source_head,
            "last_contact": documents.to_json_value(status.last_contact),
            "last_error": status.last_error,
            "extracts": status.extracts,
        },
    }
    return Response(body, status_code=200 if index is not None else 503,
                    media_type="application/health+json")  # fmt: skip


def serving_app(state: MirrorRuntime) -> Litestar:
    """Read-only, credential-free resolve routes for loopback clients (see the docstring)."""

    return Litestar(
        route_handlers=[Router(path="/api/v1", route_handlers=[ResolveController]), live, ready],
        state=State({"runtime": state, lookup_deps.STATE_KEY: state.lookup}),
        dependencies=lookup_deps.DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,
        openapi_config=None,
        debug=False,
    )


async def run(config: MirrorConfig) -> None:
    """The whole mirror process: prepare, follow, and (with a port) serve."""
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per feed request
    settings = config.settings()
    engine = create_engine(settings)
    sessions = session_factory(engine)
    client = SourceClient(config)
    follower = lookup.IndexFollower(sessions) if config.serve_port is not None else None
    mirror = Mirror(config, sessions, client, follower)
    try:
        await prepare(config, sessions)
        head, _ = await mirror.local_state()
        log.info("mirror starting", source=config.source, head=head, serve=config.serve_port)
        if follower is not None and not await mirror.needs_extract():
            follower.index = await lookup.build(sessions)  # serve what is there at once
        following = asyncio.create_task(mirror.run(), name="mirror-follower")
        server: Any = None

        def stop() -> None:
            following.cancel()
            if server is not None:
                server.should_exit = True

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        if config.serve_port is None or follower is None:
            with contextlib.suppress(asyncio.CancelledError):
                await following
            return
        import uvicorn

        server = uvicorn.Server(uvicorn.Config(
            serving_app(MirrorRuntime(follower, mirror.status, sessions)), host=SERVE_HOST,
            port=config.serve_port, log_config=None, access_log=False, lifespan="off",
            server_header=False,
        ))  # fmt: skip
        serving = asyncio.create_task(server.serve(), name="mirror-server")
        done, _ = await asyncio.wait({following, serving}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        following.cancel()
        for task in (following, serving):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise cast(BaseException, task.exception())
    finally:
        await client.aclose()
        await engine.dispose()
