"""create_app(settings): wires the runtime, routes, middleware and error handling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin

from cdb_service import __version__
from cdb_service.db import migrate
from cdb_service.logging import configure_logging, get_logger
from cdb_service.registry.code_list_controller import CodeListController
from cdb_service.runtime import Runtime
from cdb_service.settings import Settings
from cdb_service.web.health import HealthController
from cdb_service.web.problems import EXCEPTION_HANDLERS
from cdb_service.web.request_id import RequestIdMiddleware

API_PREFIX = "/api/v1"
log = get_logger("cdb.app")


async def prepare(runtime: Runtime) -> None:
    """Dev conveniences on start: migrate, and seed an empty registry."""
    settings = runtime.settings
    if settings.should_migrate:
        await migrate.upgrade(settings)
    if settings.should_seed and await runtime.registry.head() == 0:
        from cdb_service.seeding.load import seed

        report = await seed(runtime.registry, runtime.sessions)
        log.info("seeded", **report.summary())


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    holder: dict[str, Runtime] = {}

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        runtime = Runtime.open(settings)
        holder["runtime"] = runtime
        try:
            await prepare(runtime)
            log.info("ready", profile=settings.profile.value, database=runtime.engine.dialect.name)
            yield
        finally:
            await runtime.close()

    def provide_runtime() -> Runtime:
        return holder["runtime"]

    api = Router(path=API_PREFIX, route_handlers=[CodeListController])
    return Litestar(
        route_handlers=[HealthController, api],
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False)},
        lifespan=[lifespan],
        middleware=[RequestIdMiddleware],
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="cdb-service",
            version=__version__,
            description="Competent-authorities Database of JUDEX / e-CODEX",
            path="/api/v1/schema",
            render_plugins=[ScalarRenderPlugin()],
        ),
        debug=False,
    )
