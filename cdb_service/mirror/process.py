"""The mirror process: prepare its database, follow the source, and serve if asked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import migrate
from cdb_service.db.engine import create_engine, session_factory
from cdb_service.logging import get_logger
from cdb_service.lookup import follower as lookup
from cdb_service.mirror.config import MirrorConfig
from cdb_service.mirror.follower import Follower
from cdb_service.mirror.serving import SERVE_HOST, serving_app
from cdb_service.mirror.source import SourceClient
from cdb_service.mirror.store import ReplicaStore

log = get_logger("cdb.mirror")


async def prepare(config: MirrorConfig, sessions: async_sessionmaker[AsyncSession]) -> None:
    """Migrate the mirror database; load the sample gazetteer if asked.

    The follower copies the source's gazetteer (announced by the feed); the dev
    sample (`--seed-gazetteer`) only serves until then.
    """
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


async def sync_and_exit(config: MirrorConfig) -> tuple[int, int]:
    """`--once`: catch up with the source (extracting if needed), then stop.

    Returns the mirror's head and how many extracts it took; errors propagate.
    """
    logging.getLogger("httpx").setLevel(logging.WARNING)
    engine = create_engine(config.settings())
    sessions = session_factory(engine)
    client = SourceClient(config)
    try:
        await prepare(config, sessions)
        follower = Follower(config, ReplicaStore(sessions, config.actor), client)
        head = await follower.sync()
        return head, follower.status.extracts
    finally:
        await client.aclose()
        await engine.dispose()


async def run(config: MirrorConfig) -> None:
    """The whole mirror process: prepare, follow, and (with a port) serve, until a signal."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per feed request
    settings = config.settings()
    engine = create_engine(settings)
    sessions = session_factory(engine)
    client = SourceClient(config)
    index = lookup.IndexFollower(settings) if config.serve_port is not None else None
    follower = Follower(config, ReplicaStore(sessions, config.actor), client, index)
    try:
        await prepare(config, sessions)
        head, _ = await follower.store.local_state()
        log.info("mirror starting", source=config.source, head=head, serve=config.serve_port)
        if index is not None and not await follower.store.needs_extract():
            await index.rebuild()  # serve what is there at once
        following = asyncio.create_task(follower.run(), name="mirror-follower")
        server: Any = None

        def stop() -> None:
            following.cancel()
            if server is not None:
                server.should_exit = True

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        if config.serve_port is None or index is None:
            with contextlib.suppress(asyncio.CancelledError):
                await following
            return
        import uvicorn

        server = uvicorn.Server(uvicorn.Config(
            serving_app(index, follower.status, settings.min_revision_wait_s,
                        settings.retry_after_s), host=SERVE_HOST, port=config.serve_port,
            log_config=None, access_log=False, lifespan="off", server_header=False,
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
        if index is not None:
            await index.stop()  # its thread and that thread's engine
        await client.aclose()
        await engine.dispose()
