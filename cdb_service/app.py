"""create_app(settings): the composition root.

Builds the services, puts each part in the app state, mounts every context's routes
and registers every context's dependencies, middleware and error handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.config.compression import CompressionConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components

from cdb_service import __version__, metrics
from cdb_service.console import deps as console_deps
from cdb_service.console.auth import ConsoleAuth
from cdb_service.console.endings import ConsoleEndings
from cdb_service.console.entries import ConsoleEntries
from cdb_service.console.rollouts import ConsoleRollouts
from cdb_service.console.tools import ConsoleTools
from cdb_service.console.uploads import ConsoleUpload
from cdb_service.db import migrate, waiting
from cdb_service.distribution import deps as distribution_deps
from cdb_service.distribution import fast as distribution_fast
from cdb_service.distribution.controller import (
    ExtractController,
    GazetteerController,
    JwksController,
)
from cdb_service.distribution.packages_controller import PackagesController
from cdb_service.distribution.rollouts_controller import AccessPointController, RolloutController
from cdb_service.distribution.routing_controller import RoutingTableController
from cdb_service.kernel.problems import Problem
from cdb_service.logging import configure_logging, get_logger
from cdb_service.lookup import deps as lookup_deps
from cdb_service.lookup import fast as lookup_fast
from cdb_service.lookup.controller import ResolveController
from cdb_service.notifications import deps as notifications_deps
from cdb_service.notifications.http import SubscriptionController
from cdb_service.ops import deps as ops_deps
from cdb_service.ops.health import HealthController
from cdb_service.ops.landing import LandingController
from cdb_service.ops.metrics import MetricsController, record_server_certificate
from cdb_service.quality.controller import QualityController
from cdb_service.registry.http import deps as registry_deps
from cdb_service.registry.http.certificate_rotation import RoutingPartyActions
from cdb_service.registry.http.code_lists import CodeListController
from cdb_service.registry.http.import_export import ExportController, ImportController
from cdb_service.registry.http.kind_controller import controllers
from cdb_service.security import contract, policy
from cdb_service.security import deps as security_deps
from cdb_service.security.consultations_http import ConsultationController
from cdb_service.security.dev_issuer import DevIssuerController
from cdb_service.security.gate import ApiGate, deny
from cdb_service.security.receipts import ReceiptMiddleware
from cdb_service.services import Services
from cdb_service.settings import Settings, TlsMode
from cdb_service.web import deps as web_deps
from cdb_service.web.api_docs import OfflineApiDocs
from cdb_service.web.draining import Draining
from cdb_service.web.error_handlers import EXCEPTION_HANDLERS
from cdb_service.web.fast_path import FastPath
from cdb_service.web.loop_rounds import LoopRounds
from cdb_service.web.negotiation import XmlSchemaController
from cdb_service.web.pages import AssetController
from cdb_service.web.perimeter import SAFE_METHODS, Perimeter
from cdb_service.web.request_id import RequestIdMiddleware
from cdb_service.web.streamed_gzip import OWN_GZIP

API_PREFIX = "/api/v1"
MAX_ENTRY_BYTES = 2 * 1024 * 1024
COMPRESS_FROM = 1024  # bytes: smaller answers are not worth compressing
log = get_logger("cdb.app")


class ProdRefused(SystemExit):
    pass


DEPENDENCIES = {
    **web_deps.DEPENDENCIES,
    **security_deps.DEPENDENCIES,
    **registry_deps.DEPENDENCIES,
    **lookup_deps.DEPENDENCIES,
    **distribution_deps.DEPENDENCIES,
    **console_deps.DEPENDENCIES,
    **notifications_deps.DEPENDENCIES,
    **ops_deps.DEPENDENCIES,
}


async def prepare(services: Services) -> asyncio.Task[None] | None:
    """Start with the database, or, when it does not answer, without it: look-ups answer
    from the saved lookup index (if any) while a task waits for the database with
    backoff and then does what a start with it does (returned, to cancel at the end)."""
    services.gate.refusals.start(services.sessions)
    services.consultations.start()
    settings = services.settings
    if await waiting.answers(services.engine, settings, next_wait_s=waiting.FIRST_WAIT_S):
        await _with_database(services)
        return None
    services.lookup.load_saved()
    return asyncio.create_task(_when_the_database_answers(services), name="database-wait")


async def prepare_data(services: Services) -> None:
    """Dev conveniences on start: migrate, and seed an empty registry. Several workers
    share one database: their supervisor does this once, before it starts them."""
    settings = services.settings
    if settings.should_migrate:
        await migrate.upgrade(settings)
    if settings.should_seed and await services.reads.head() == 0:
        from cdb_service.seeding.load import seed

        report = await seed(services.batches, services.sessions)
        log.info("seeded", **report.summary())


async def _with_database(services: Services) -> None:
    """What a start with the database does: the dev conveniences, then the index and the
    notifications that follow it."""
    await prepare_data(services)
    await services.lookup.start()
    services.notifier.start()
    services.rollouts.start()


async def _when_the_database_answers(services: Services) -> None:
    while True:
        await waiting.wait_for_database(services.engine, services.settings)
        try:
            await _with_database(services)
        except Exception as error:  # it went away again: wait again
            log.warning("start with the database failed; waiting again", error=repr(error))
            continue
        log.info("following the database", revision=getattr(services.lookup.index,
                                                            "revision", None))  # fmt: skip
        return


async def role_guard(connection: ASGIConnection[Any, Any, Any, Any],
                     handler: BaseRouteHandler) -> None:  # fmt: skip
    """Every API route needs at least the reader role, and every unsafe method a writer,
    before its body is read: a reader's 10 MB body is refused, not validated. Which owner
    a write may touch is asked again once the entry is known. A route that an access
    point posts to with a reader's token (its acknowledgements: `policy.may_acknowledge`
    decides there) says so with `opt={"readers_post": True}`; its body is small.

    Async on purpose: litestar runs a sync guard in a worker thread, on every request.
    """
    policy.require_read(connection.user)
    if connection.scope.get("method") not in SAFE_METHODS and not handler.opt.get("readers_post"):
        policy.require_writer(connection.user)


async def audit_refusals(exc: Exception, scope: Any) -> None:
    """Refusals raised past the gate (a missing scope, another owner's entry) are audited too."""
    if isinstance(exc, Problem) and exc.status in (401, 403):
        await deny(scope, exc, security_deps.gate_of(scope), web_deps.sessions_of(scope))


def refuse_unsafe_prod(settings: Settings) -> None:
    problems = settings.prod_problems()
    if problems:
        raise ProdRefused("refusing to start in prod: " + "; ".join(problems))


def shape_of(settings: Settings) -> tuple[object, ...]:
    """The settings the app's routes and middleware are built from (`create_app`); every
    other setting is read by the services its lifespan opens. An app can be started again
    on other settings of the same shape (a new database, say: the test suite does)."""
    return (settings.uses_dev_issuer, settings.tls_mode, repr(settings.api_deprecations),
            settings.log_level)  # fmt: skip


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    refuse_unsafe_prod(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # The settings of this start: the app's own (`state`), as `shape_of` allows.
        started_with: Settings = app.state["settings"]
        if shape_of(started_with) != shape_of(settings):
            raise ValueError("settings of another shape than the app was built from")
        services = Services.open(started_with)
        services.loop_lag.start()
        app.state.update(services.as_state())
        record_server_certificate(services.settings)
        waiting_task = None
        try:
            waiting_task = await prepare(services)
            log.info("ready", profile=started_with.profile.value,
                     database=services.engine.dialect.name, tls_mode=settings.tls_mode.value,
                     waiting_for_database=waiting_task is not None)  # fmt: skip
            # SIGTERM begins the drain before uvicorn waits for the requests in flight:
            # otherwise it would wait out every long poll.
            with services.drain.on_stop_signals():
                yield
        finally:
            if waiting_task is not None:
                waiting_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting_task
            await services.close()
            metrics.worker_exited()

    api = Router(
        path=API_PREFIX,
        route_handlers=[
            CodeListController,
            ImportController,
            ExportController,
            QualityController,
            RoutingPartyActions,
            ResolveController,
            ExtractController,
            GazetteerController,
            RoutingTableController,
            PackagesController,
            AccessPointController,
            RolloutController,
            XmlSchemaController,
            SubscriptionController,
            ConsultationController,
            *controllers(),
        ],
        guards=[role_guard],
        security=contract.API,  # the gate's two checks, named on every /api operation
    )
    handlers: list[Any] = [LandingController, AssetController, HealthController, JwksController,
                           MetricsController, api, ConsoleAuth, ConsoleTools, ConsoleRollouts,
                           ConsoleEntries, ConsoleEndings, ConsoleUpload]  # fmt: skip
    if settings.uses_dev_issuer:
        handlers.append(DevIssuerController)
    app = Litestar(
        route_handlers=handlers,
        dependencies=DEPENDENCIES,
        lifespan=[lifespan],
        # Middleware runs before DI: each is handed the functions that find its parts.
        middleware=[
            DefineMiddleware(RequestIdMiddleware, from_proxy=security_deps.from_proxy),
            DefineMiddleware(
                Perimeter,
                hsts=settings.tls_mode is TlsMode.DIRECT,
                deprecations=settings.api_deprecations,
            ),
            # Before the gate: a stopping worker refuses without checking credentials.
            DefineMiddleware(Draining, drain_of=web_deps.drain_of),
            DefineMiddleware(
                ApiGate, gate_of=security_deps.gate_of, sessions_of=web_deps.sessions_of
            ),
            # After the gate (the receipt names the authenticated caller).
            DefineMiddleware(ReceiptMiddleware, receipts_of=security_deps.receipts_of),
            # After the gate: identity and token are checked before any fast answer.
            DefineMiddleware(
                FastPath,
                routes={
                    f"{API_PREFIX}/resolve": lookup_fast.ROUTE,
                    f"{API_PREFIX}/routing-table": distribution_fast.ROUTE,
                },
                compress_from=COMPRESS_FROM,
            ),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        after_exception=[audit_refusals],
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="cdb-service",
            version=__version__,
            description="Competent-authorities Database of JUDEX / e-CODEX",
            path="/schema",
            components=Components(security_schemes=dict(contract.SCHEMES)),
            render_plugins=[
                OfflineApiDocs(),
                JsonRenderPlugin(path="/openapi.json"),
                YamlRenderPlugin(path=["/openapi.yaml", "/openapi.yml"]),
            ],
        ),
        # Extracts compress themselves, faster (web/streamed_gzip.py).
        compression_config=CompressionConfig(
            backend="gzip",
            minimum_size=COMPRESS_FROM,
            gzip_compress_level=6,
            exclude_opt_key=OWN_GZIP,
        ),
        debug=False,
        state=State({"settings": settings}),
        # Every entry fits with room to spare; the import route allows more (documented).
        request_max_body_size=MAX_ENTRY_BYTES,
    )
    # Around everything, routing included: a request that waits for its turn costs little.
    app.asgi_handler = LoopRounds(app.asgi_handler)
    return app
