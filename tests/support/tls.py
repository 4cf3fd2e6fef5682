"""TLS client contexts for tests (httpx drops `cert=` when `verify` is a path, so contexts)."""

from __future__ import annotations

import ssl
from pathlib import Path


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context
