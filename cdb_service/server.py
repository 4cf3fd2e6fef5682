"""Run the app under uvicorn: direct TLS with client certificates, or plain HTTP behind a proxy."""

from __future__ import annotations

import os
from typing import Any

import uvicorn

from cdb_service.app import create_app
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


def app_from_environment() -> Any:
    """The app of one worker process: every worker reads the same CDB_* environment."""
    return create_app(with_dev_defaults(Settings()))


def serve(settings: Settings, workers: int = 1) -> None:
    if workers <= 1:
        build_server(settings).run()
        return
    if settings.tls_mode is TlsMode.DIRECT:
        # uvicorn's workers build their own SSL context from its options, which cannot
        # express our TLS policy; several workers therefore sit behind the proxy.
        raise SystemExit("several workers need CDB_TLS_MODE=proxy (TLS ends at the proxy)")
    os.environ |= {"CDB_HOST": settings.host, "CDB_PORT": str(settings.port)}
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
