"""Run the app under uvicorn: direct TLS with client certificates, or plain HTTP behind a proxy."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import uvicorn
from sqlalchemy import text

from cdb_service import metrics
from cdb_service.app import create_app
from cdb_service.db.engine import create_engine
from cdb_service.mistakes import UserMistake
from cdb_service.ops import running
from cdb_service.security.dev import with_dev_defaults
from cdb_service.security.tls import PeerCertificateProtocol, server_context
from cdb_service.settings import Settings, TlsMode


def build_server(settings: Settings) -> uvicorn.Server:
    settings = with_dev_defaults(settings)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        http=PeerCertificateProtocol,
        loop="auto",
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=False,  # the client address must be the proxy's own, for the allow-list
        server_header=False,
    )
    config.load()
    if settings.tls_mode is TlsMode.DIRECT:
        if not (settings.tls_cert_file and settings.tls_key_file):
            raise SystemExit("direct TLS needs CDB_TLS_CERT_FILE and CDB_TLS_KEY_FILE")
        config.ssl = server_context(
            settings.tls_cert_file, settings.tls_key_file, list(settings.client_ca_files)
        )
    return uvicorn.Server(config)


def preflight(settings: Settings) -> None:
    """What would otherwise fail inside uvicorn as a traceback, checked first and said in
    one line: the port is free, the TLS files load, the database answers."""
    settings = with_dev_defaults(settings)
    with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError as error:
            raise UserMistake(
                f"cannot listen on {settings.host}:{settings.port} ({error.strerror}); is the "
                "service already running? Set CDB_PORT to use another port"
            ) from None
    if settings.tls_mode is TlsMode.DIRECT and settings.tls_cert_file and settings.tls_key_file:
        for path in (settings.tls_cert_file, settings.tls_key_file, *settings.client_ca_files):
            if not path.is_file():
                raise UserMistake(f"no such file: {path} (CDB_TLS_CERT_FILE, CDB_TLS_KEY_FILE, "
                                  "CDB_CLIENT_CA_FILES)")  # fmt: skip
        server_context(settings.tls_cert_file, settings.tls_key_file,
                       list(settings.client_ca_files))  # fmt: skip
    asyncio.run(_database_answers(settings))


async def _database_answers(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


def app_from_environment() -> Any:
    """The app of one worker process: every worker reads the same CDB_* environment."""
    return create_app(with_dev_defaults(Settings()))


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
    if workers <= 1:
        build_server(settings).run()
        return
    if settings.tls_mode is TlsMode.DIRECT:
        # uvicorn's workers build their own SSL context from its options, which cannot
        # express our TLS policy; several workers therefore sit behind the proxy.
        raise SystemExit("several workers need CDB_TLS_MODE=proxy (TLS ends at the proxy)")
    os.environ |= {"CDB_HOST": settings.host, "CDB_PORT": str(settings.port)}
    # The workers' metrics meet in files; any worker's /metrics then reports them all.
    metrics.prepare_multiprocess(settings.data_dir / "metrics")
    uvicorn.run(
        "cdb_service.server:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        http="httptools",
        loop="auto",
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=False,
        server_header=False,
    )
