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

from cdb_service.app import create_app, shape_of
from cdb_service.security.dev import DevPki, token_for, with_dev_defaults
from cdb_service.settings import Settings
from tests.support.in_loop import app_client

IDENTITY = "x-test-identity"


class PeerCertificates:
    """The app's ASGI handler, handing it the certificate of the client a request names
    (from the dev PKI of the test that runs the app now: `pki`)."""

    def __init__(self, handler: Any, pki: DevPki) -> None:
        self.handler, self.pki = handler, pki

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers", []))
        name = headers.get(IDENTITY.encode(), b"").decode()
        if name:
            pem = self.pki.client_cert(name).read_text()
            scope.setdefault("extensions", {})["tls"] = {"client_cert_chain": [pem]}
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != IDENTITY.encode()]
        await self.handler(scope, receive, send)


def with_peer_certificates(app: Litestar, pki: DevPki) -> PeerCertificates:
    presenting = PeerCertificates(app.asgi_handler, pki)
    app.asgi_handler = presenting
    return presenting


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
    """One app (one lifespan, one services) and clients that speak to it as someone.

    The app is taken from the idle ones of its shape (`_IDLE`) and given back when it
    stops: litestar's route registration costs about a third of a second per app, and
    a run starts an app for nearly every test. Each start opens its services from this
    test's settings (`app.state["settings"]`, which `create_app`'s lifespan reads)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = with_dev_defaults(settings)
        self.pki = DevPki(self.settings.pki_dir)
        self.http: httpx.AsyncClient | None = None
        self._shape = shape_of(settings)
        idle = _IDLE.setdefault(self._shape, [])
        if idle:
            self.app, self._presenting = idle.pop()
        else:
            self.app = create_app(settings)
            self._presenting = with_peer_certificates(self.app, self.pki)
        self._given = settings
        self._handler = self.app.asgi_handler

    def token(self, name: str) -> str:
        s = self.settings
        return token_for(self.pki, name, s.oidc_issuer, s.oidc_audience, s.owner_claim)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Api]:
        idle = _IDLE[self._shape]
        if (self.app, self._presenting) in idle:  # started again: not idle meanwhile
            idle.remove((self.app, self._presenting))
        self.app.state["settings"] = self._given
        self._presenting.pki = self.pki
        try:
            async with app_client(self.app, base_url="https://cdb.test") as http:
                self.http = http
                yield self
        finally:
            # What a test wrapped around the handler goes with the test; the app is idle.
            self.app.asgi_handler = self._handler
            idle.append((self.app, self._presenting))

    @asynccontextmanager
    async def client(self, name: str | None = None, token: str | None = None
                     ) -> AsyncIterator[As]:  # fmt: skip
        assert self.http is not None, "use inside Api.running()"
        headers = {}
        if name:
            headers[IDENTITY] = name
            headers["Authorization"] = f"Bearer {token or self.token(name)}"
        yield As(self.http, headers)


# Apps not running now, by shape (`shape_of`): one test's app serves the next one's.
_IDLE: dict[tuple[object, ...], list[tuple[Litestar, PeerCertificates]]] = {}


def build(settings: Settings) -> Api:
    settings = settings.model_copy(update={"dev_issuer": True})
    DevPki(with_dev_defaults(settings).pki_dir).ensure()
    return Api(settings)
