"""Run the app under uvicorn: direct TLS with client certificates, or plain HTTP behind a proxy."""

from __future__ import annotations

import asyncio
import grp
import os
import socket
from typing import Any

import uvicorn
from sqlalchemy import text

from cdb_service import metrics
from cdb_service.app import create_app, prepare_data
from cdb_service.db.engine import create_engine
from cdb_service.db.faults import classify
from cdb_service.mistakes import UserMistake
from cdb_service.ops import running
from cdb_service.ops.supervisor import STARTUP_FAILURE, Supervisor
from cdb_service.security.connection import CONFIG_ATTRIBUTE, ConnectionLimits
from cdb_service.security.dev import with_dev_defaults
from cdb_service.security.tls import PeerCertificateProtocol, server_context
from cdb_service.services import Services
from cdb_service.settings import Settings, TlsMode

# After the drain budget: what the workers need to close down before they are killed.
STOP_MARGIN_S = 5.0


def connection_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's own connection options, from the settings (docs/operations.md's table)."""
    return {
        "timeout_keep_alive": settings.keepalive_timeout_s,
        "backlog": settings.listen_backlog,
    }


def limit_connections(config: uvicorn.Config, settings: Settings) -> None:
    """The limits `GuardedProtocol` enforces, carried on the Config to every worker."""
    limits = ConnectionLimits(
        max_header_bytes=settings.max_header_bytes,
        max_header_fields=settings.max_header_fields,
        max_header_field_bytes=settings.max_header_field_bytes,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_connections=settings.max_connections,
        retry_after_s=settings.retry_after_s,
    )
    setattr(config, CONFIG_ATTRIBUTE, limits)


def _config(settings: Settings, app: Any) -> uvicorn.Config:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=PeerCertificateProtocol,
        loop="auto",
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=False,  # the client address must be the proxy's own, for the allow-list
        server_header=False,
        # After SIGTERM, work in flight gets this long, then is cancelled (web/draining.py).
        timeout_graceful_shutdown=settings.drain_budget_s,
        **connection_options(settings),
    )
    limit_connections(config, settings)
    config.load()
    return config


def build_server(settings: Settings) -> uvicorn.Server:
    settings = with_dev_defaults(settings)
    config = _config(settings, create_app(settings))
    if settings.tls_mode is TlsMode.DIRECT:
        if not (settings.tls_cert_file and settings.tls_key_file):
            raise SystemExit("direct TLS needs CDB_TLS_CERT_FILE and CDB_TLS_KEY_FILE")
        config.ssl = server_context(
            settings.tls_cert_file, settings.tls_key_file, list(settings.client_ca_files)
        )
    return uvicorn.Server(config)


def proxy_socket(settings: Settings) -> socket.socket:
    """The Unix socket nginx reaches the service on in proxy mode: mode 0660, in the
    configured group, so that no other local user can connect (and forge a certificate
    header). A socket file left by a crash is replaced; one in use is not."""
    path = settings.proxy_socket_path
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_socket():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
            if other.connect_ex(str(path)) == 0:
                raise UserMistake(f"{path} is in use: is the service already running? Set "
                                  "CDB_PROXY_SOCKET to use another socket")  # fmt: skip
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o117)
    try:
        sock.bind(str(path))
    finally:
        os.umask(previous)
    if settings.proxy_socket_group:
        os.chown(path, -1, grp.getgrnam(settings.proxy_socket_group).gr_gid)
    sock.set_inheritable(True)
    return sock


def _sockets(settings: Settings, config: uvicorn.Config) -> list[socket.socket] | None:
    """Proxy mode listens twice: the Unix socket for nginx, and TCP for what needs no
    client identity (health, /metrics), where certificate headers are not believed."""
    if settings.tls_mode is not TlsMode.PROXY:
        return None
    return [config.bind_socket(), proxy_socket(settings)]


def preflight(settings: Settings) -> None:
    """What would otherwise fail inside uvicorn as a traceback, checked first and said in
    one line: prod's refusals of unsafe settings, the port is free, the TLS files load,
    the database takes our login."""
    settings = with_dev_defaults(settings)
    if problems := settings.prod_problems():
        raise UserMistake("refusing to start in prod: " + "; ".join(problems))
    with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError as error:
            raise UserMistake(
                f"cannot listen on {settings.host}:{settings.port} ({error.strerror}); is the "
                "service already running? Set CDB_PORT to use another port"
            ) from None
    if settings.tls_mode is TlsMode.PROXY:
        path = settings.proxy_socket_path
        if len(str(path).encode()) > 100:
            raise UserMistake(f"the proxy socket path is too long for a Unix socket: {path} "
                              "(CDB_PROXY_SOCKET, at most 100 bytes)")  # fmt: skip
        if settings.proxy_socket_group:
            try:
                grp.getgrnam(settings.proxy_socket_group)
            except KeyError:
                raise UserMistake(f"no such group: {settings.proxy_socket_group} "
                                  "(CDB_PROXY_SOCKET_GROUP)") from None  # fmt: skip
    if settings.tls_mode is TlsMode.DIRECT and settings.tls_cert_file and settings.tls_key_file:
        for path in (settings.tls_cert_file, settings.tls_key_file, *settings.client_ca_files):
            if not path.is_file():
                raise UserMistake(f"no such file: {path} (CDB_TLS_CERT_FILE, CDB_TLS_KEY_FILE, "
                                  "CDB_CLIENT_CA_FILES)")  # fmt: skip
        server_context(settings.tls_cert_file, settings.tls_key_file,
                       list(settings.client_ca_files))  # fmt: skip
    asyncio.run(_database_answers(settings))


async def _database_answers(settings: Settings) -> None:
    """A database that refuses (a login, a database name) is a mistake said in one line; one
    that does not answer (down, unreachable, hung) is waited for by the service (`app.prepare`)."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:
        if classify(error) is None:
            raise
    finally:
        await engine.dispose()


def serve(settings: Settings, workers: int = 1) -> None:
    settings = with_dev_defaults(settings)
    if not settings.uses_dev_issuer:
        _serve(settings, workers)
        return
    # The dev commands (dev-token, dev-url) find this service through the record.
    running.record(settings)
    try:
        _serve(settings, workers)
    finally:
        running.forget(settings)


def _serve(settings: Settings, workers: int) -> None:
    try:
        _run(settings, workers)
    finally:
        if settings.tls_mode is TlsMode.PROXY and settings.proxy_socket_path.is_socket():
            settings.proxy_socket_path.unlink()


def _run(settings: Settings, workers: int) -> None:
    if workers <= 1:
        server = build_server(settings)
        server.run(sockets=_sockets(settings, server.config))
        return
    if settings.tls_mode is TlsMode.DIRECT:
        # uvicorn's workers build their own SSL context from its options, which cannot
        # express our TLS policy; several workers therefore sit behind the proxy.
        raise SystemExit("several workers need CDB_TLS_MODE=proxy (TLS ends at the proxy)")
    if not metrics.MULTIPROCESS:
        raise RuntimeError("serve --workers: supervisor.share_metrics must run before "
                           "prometheus-client is imported")  # fmt: skip
    os.environ |= {"CDB_HOST": settings.host, "CDB_PORT": str(settings.port)}
    # Once, before the workers: two migrating or seeding one database would collide.
    asyncio.run(_prepare_data(settings))
    settings = settings.model_copy(update={"auto_migrate": False, "auto_seed": False})
    # The app is built here, once: each worker is a fork of this process, and only
    # opens its pool and builds its index (ops/supervisor.py).
    config = _config(settings, create_app(settings))
    sockets = _sockets(settings, config) or [config.bind_socket()]
    metrics.worker_exited()  # this process serves nothing: no live gauges of its own

    def work() -> int:
        server = uvicorn.Server(config)
        server.run(sockets=sockets)
        return 0 if server.started else STARTUP_FAILURE

    status = Supervisor(workers, work, gone=metrics.process_gone,
                        stop_timeout_s=settings.drain_budget_s + STOP_MARGIN_S).run()  # fmt: skip
    if status:
        raise SystemExit(status)


async def _prepare_data(settings: Settings) -> None:
    services = Services.open(settings)
    try:
        await prepare_data(services)
    finally:
        await services.close()
