"""In-process API clients that present a client certificate and a bound token.

The certificate reaches the app the way the TLS server hands it over: in the ASGI
`tls` extension (as `PeerCertificateProtocol` does over real TLS, which other
tests exercise). Tokens come from the dev issuer's key, bound to that certificate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from litestar import Litestar

from cdb_service.app import create_app
from cdb_service.security.dev import DevPki, token_for, with_dev_defaults
from cdb_service.settings import Settings
from tests.support.in_loop import app_client

IDENTITY = "x-test-identity"


def with_peer_certificates(app: Litestar, pki: DevPki) -> None:
    handler = app.asgi_handler

    async def presenting(scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers", []))
        name = headers.get(IDENTITY.encode(), b"").decode()
        if name:
            pem = pki.client_cert(name).read_text()
            scope.setdefault("extensions", {})["tls"] = {"client_cert_chain": [pem]}
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != IDENTITY.encode()]
        await handler(scope, receive, send)

    app.asgi_handler = presenting


class As:
    """Requests made as one dev client: its certificate and a token bound to it."""

    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.http, self.headers = http, headers

    async def request(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = self.headers | dict(kwargs.pop("headers", None) or {})
        return await self.http.request(method, url, headers=headers, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> Any:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Any:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> Any:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> Any:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> Any:
        return await self.request("DELETE", url, **kwargs)


class Api:
    """One app (one lifespan, one services) and clients that speak to it as someone."""

    def __init__(self, app: Litestar, settings: Settings) -> None:
        self.app, self.settings = app, with_dev_defaults(settings)
        self.pki = DevPki(self.settings.pki_dir)
        self.http: httpx.AsyncClient | None = None

    def token(self, name: str) -> str:
        s = self.settings
        return token_for(self.pki, name, s.oidc_issuer, s.oidc_audience, s.owner_claim)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Api]:
        async with app_client(self.app, base_url="https://cdb.test") as http:
            self.http = http
            yield self

    @asynccontextmanager
    async def client(self, name: str | None = None, token: str | None = None
                     ) -> AsyncIterator[As]:  # fmt: skip
        assert self.http is not None, "use inside Api.running()"
        headers = {}
        if name:
            headers[IDENTITY] = name
            headers["Authorization"] = f"Bearer {token or self.token(name)}"
        yield As(self.http, headers)


def build(settings: Settings) -> Api:
    settings = settings.model_copy(update={"dev_issuer": True})
    app = create_app(settings)
    DevPki(with_dev_defaults(settings).pki_dir).ensure()
    with_peer_certificates(app, DevPki(with_dev_defaults(settings).pki_dir))
    return Api(app, settings)
