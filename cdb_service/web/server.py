"""Run the app under uvicorn: direct TLS with client certificates, or plain HTTP behind a proxy."""

from __future__ import annotations

import uvicorn

from cdb_service.app import create_app
from cdb_service.runtime import dev_defaults
from cdb_service.security.tls import PeerCertificateProtocol, server_context
from cdb_service.settings import Settings, TlsMode


def build_server(settings: Settings) -> uvicorn.Server:
    settings = dev_defaults(settings)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        http=PeerCertificateProtocol,
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


def serve(settings: Settings) -> None:
    build_server(settings).run()
