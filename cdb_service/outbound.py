"""The one outbound client: how the mirror and the probe call a cdb service.

Both present a client certificate (mutual TLS, trusting the CA they are given)
and an OIDC bearer token bound to that certificate. The token comes either from
the issuer itself (`ClientCredentials`: OAuth 2.0 client credentials with mutual-TLS
client authentication, RFC 8705 `tls_client_auth`, renewed before it expires, so
an unattended client stays authorised for as long as its certificate does), or
from the command line or a file that is read again for every request (a token
renewed on disk is used from the next request on without a restart). The TLS
identity and the token are separate values: the probe sends two tokens (its
sample token and its incident token).

`send_mail` is the one e-mail sender (the service's notifications and the probe's
notices): a plain-text message through an SMTP relay.

This module depends on nothing else in `cdb_service`: the mirror and the probe
stand beside the service and talk HTTP to it.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import smtplib
import ssl
import threading
import time
import warnings
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx


@dataclass(frozen=True)
class TlsIdentity:
    """What to trust (a CA bundle; None: the system's) and what to present (cert + key)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def ssl_context(self) -> ssl.SSLContext:
        # The ssl module names no file in its errors; a wrong path should say which.
        for path in (self.ca, self.cert, self.key):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
        # A fresh context each time: certificate files replaced on disk are read anew.
        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        if self.cert is not None:
            context.load_cert_chain(str(self.cert), str(self.key) if self.key else None)
        return context


@dataclass(frozen=True)
class BearerToken(httpx.Auth):
    """`Authorization: Bearer …` from a token, or from a file re-read on every request."""

    token: str | None = None
    token_file: Path | None = None

    def value(self) -> str | None:
        if self.token_file is not None:
            return self.token_file.read_text().strip() or None
        return self.token or None

    def headers(self) -> dict[str, str]:
        token = self.value()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # Called per request by both httpx.Client and httpx.AsyncClient.
        request.headers.update(self.headers())
        yield request


NO_TOKEN = BearerToken()

# Renew when less than this share of a token's lifetime is left (and at least
# RENEW_MIN_S before it ends): a request never leaves with a token about to expire,
# and one issuer outage shorter than the margin costs nothing.
RENEW_SHARE = 0.25
RENEW_MIN_S = 2.0
RENEW_MAX_S = 300.0


class TokenRefused(Exception):
    """The issuer did not give a token (unreachable, or it refused the client)."""


def _tls_client_auth(client: Any, method: str, uri: str, headers: Any, body: str) -> Any:
    """RFC 8705 2.1: the client is authenticated by its TLS certificate; the request
    names it (`client_id`) and carries no secret."""
    from authlib.common.urls import add_params_to_qs

    body = add_params_to_qs(body or "", [("client_id", client.client_id)])
    if "Content-Length" in headers:
        headers["Content-Length"] = str(len(body))
    return uri, headers, body


@dataclass(eq=False)
class ClientCredentials(httpx.Auth):
    """Tokens from the issuer's token endpoint, renewed before they expire.

    OAuth 2.0 client credentials (RFC 6749 4.4) with mutual-TLS client authentication
    (RFC 8705 `tls_client_auth`): the client presents `tls` (the same certificate it
    shows the service, so the issuer can bind the token to it) and names `client_id`.
    The token endpoint is discovered from the issuer's metadata. A 401 from the service
    (a token revoked or a clock apart) gets one fresh token and one retry.
    """

    issuer: str
    client_id: str
    tls: TlsIdentity
    scope: str | None = None
    timeout_s: float = 10.0
    _token: str | None = field(default=None, init=False, repr=False)
    _renew_at: float = field(default=0.0, init=False, repr=False)
    _endpoint: str | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    fetched: int = field(default=0, init=False)

    def value(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def renew_ahead(self, seconds: float) -> None:
        """Renew now if the token would be renewed within `seconds` anyway: a caller on a
        schedule (the probe) does it between its requests instead of inside one."""
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at - seconds:
                self._fetch()

    def invalidate(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.value()}"}

    def _token_endpoint(self, oauth: Any) -> str:
        if self._endpoint is None:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            response = oauth.request("GET", url, withhold_token=True)
            if response.status_code != 200:
                raise TokenRefused(f"the issuer's metadata {url} answered {response.status_code}")
            endpoint = response.json().get("token_endpoint")
            if not isinstance(endpoint, str) or not endpoint.startswith("https://"):
                raise TokenRefused(f"the issuer's metadata {url} names no https token endpoint")
            self._endpoint = endpoint
        return self._endpoint

    def _fetch(self) -> None:
        import authlib.deprecate  # installs its own "always" filter, overridden just below

        with warnings.catch_warnings():
            # authlib announces its move to httpx2; the httpx client it wraps is the same.
            warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
            from authlib.integrations.httpx_client import OAuth2Client
        from authlib.integrations.base_client import OAuthError

        context = self.tls.ssl_context()
        with OAuth2Client(
            client_id=self.client_id, token_endpoint_auth_method="tls_client_auth",
            scope=self.scope, verify=context, timeout=self.timeout_s,
        ) as oauth:  # fmt: skip
            oauth.register_client_auth_method(("tls_client_auth", _tls_client_auth))
            try:
                endpoint = self._token_endpoint(oauth)
                started = time.monotonic()
                token = oauth.fetch_token(endpoint, grant_type="client_credentials")
            except OAuthError as error:
                raise TokenRefused(
                    f"the issuer refused client {self.client_id!r}: {error.error} "
                    f"{error.description or ''}".strip()
                ) from error
            except (httpx.HTTPError, OSError, ValueError) as error:
                raise TokenRefused(f"no token from {self.issuer}: {error}") from error
        access = token.get("access_token")
        if not isinstance(access, str) or not access:
            raise TokenRefused(f"the issuer's answer for {self.client_id!r} holds no access_token")
        lifetime = float(token.get("expires_in") or 300)
        margin = min(RENEW_MAX_S, max(RENEW_MIN_S, lifetime * RENEW_SHARE))
        self._token, self._renew_at = access, started + max(0.0, lifetime - margin)
        self.fetched += 1

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.value()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self.invalidate(token)
            request.headers["Authorization"] = f"Bearer {self.value()}"
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        # The issuer is called in a thread: a slow issuer must not hold the event loop
        # (the mirror answers look-ups on it).
        token = await asyncio.to_thread(self.value)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self.invalidate(token)
            request.headers["Authorization"] = f"Bearer {await asyncio.to_thread(self.value)}"
            yield request


Credentials = BearerToken | ClientCredentials


def _options(
    base_url: str,
    auth: Credentials,
    timeout: httpx.Timeout,
    headers: Mapping[str, str] | None,
) -> dict[str, Any]:
    return {"base_url": base_url.rstrip("/"), "auth": auth, "timeout": timeout, "headers": headers}


def async_client(
    base_url: str,
    tls: TlsIdentity,
    auth: Credentials = NO_TOKEN,
    *,
    timeout: httpx.Timeout,
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """For a long-lived asynchronous caller (the mirror). `transport` replaces the network."""
    verify = tls.ssl_context() if transport is None else True
    options = _options(base_url, auth, timeout, headers)
    return httpx.AsyncClient(verify=verify, transport=transport, **options)


def client(
    base_url: str,
    tls: TlsIdentity,
    auth: Credentials = NO_TOKEN,
    *,
    timeout: httpx.Timeout,
    headers: Mapping[str, str] | None = None,
) -> httpx.Client:
    """For a synchronous caller (the probe: a fresh client, so TLS is checked every sample)."""
    return httpx.Client(verify=tls.ssl_context(), **_options(base_url, auth, timeout, headers))


# --- the command-line options every outbound caller takes -------------------------------

CREDENTIALS_HELP = """\
credentials: --ca is the CA that signed the service's (and the issuer's) server
certificate; --cert/--key is this client's certificate, presented to the service
(mutual TLS) and to the issuer. The bearer token comes either from the issuer
(--issuer and --client-id: OAuth 2.0 client credentials authenticated by that
certificate, RFC 8705 tls_client_auth; the token is bound to the certificate and
renewed before it expires), or from --token / --token-file (a file is re-read at
every request, for a token renewed by something else)."""


def add_arguments(
    parser: argparse.ArgumentParser, prefix: str = "", what: str = "", *, ca: bool = True
) -> None:
    """--ca, --cert, --key, --token, --token-file, --issuer, --client-id, --scope.

    With `prefix` (the probe's `incident-`), the same for a second set of credentials;
    `what` says what that set is for.
    """
    p = f"--{prefix}"
    for_ = f", {what}" if what else ""
    if ca and not prefix:
        parser.add_argument("--ca", type=Path, help="CA certificate(s) to trust for the service "
                            "and the issuer")  # fmt: skip
    parser.add_argument(f"{p}cert", type=Path, help=f"client certificate (PEM){for_}")
    parser.add_argument(f"{p}key", type=Path, help=f"client certificate's key (PEM){for_}")
    parser.add_argument(f"{p}token", help=f"bearer token bound to the client certificate{for_}")
    parser.add_argument(f"{p}token-file", type=Path, help=f"file holding that token (re-read "
                        f"at every request){for_}")  # fmt: skip
    parser.add_argument(f"{p}issuer", help=f"OAuth 2.0 issuer URL: fetch and renew tokens "
                        f"with client credentials and tls_client_auth{for_}")  # fmt: skip
    parser.add_argument(f"{p}client-id", help=f"this client's id at the issuer{for_}")
    parser.add_argument(f"{p}scope", help=f"scopes to ask the issuer for{for_}")


def _arg(args: argparse.Namespace, prefix: str, name: str) -> Any:
    return getattr(args, (prefix + name).replace("-", "_"), None)


def credentials_of(
    args: argparse.Namespace, tls: TlsIdentity, prefix: str = "", scope: str | None = None
) -> Credentials:
    """The bearer credentials the options name (`argument_mistake` has passed)."""
    issuer = _arg(args, prefix, "issuer")
    if issuer:
        return ClientCredentials(issuer, _arg(args, prefix, "client_id"), tls,
                                 _arg(args, prefix, "scope") or scope)  # fmt: skip
    return BearerToken(_arg(args, prefix, "token"), _arg(args, prefix, "token_file"))


def argument_mistake(args: argparse.Namespace, prefix: str = "") -> str | None:
    """A user's mistake in those options, as one line; None when there is none."""
    p = f"--{prefix}"
    token, token_file = _arg(args, prefix, "token"), _arg(args, prefix, "token_file")
    issuer, client_id = _arg(args, prefix, "issuer"), _arg(args, prefix, "client_id")
    if token and token_file:
        return f"give {p}token or {p}token-file, not both"
    if bool(_arg(args, prefix, "cert")) != bool(_arg(args, prefix, "key")):
        return f"{p}cert and {p}key go together"
    if issuer and (token or token_file):
        return f"give {p}issuer (tokens fetched and renewed) or {p}token/{p}token-file, not both"
    if issuer and not client_id:
        return f"{p}issuer needs {p}client-id (this client's id at the issuer)"
    if client_id and not issuer:
        return f"{p}client-id needs {p}issuer"
    if issuer and not str(issuer).startswith("https://"):
        return f"{p}issuer must be an https:// URL"
    if issuer and not (_arg(args, prefix, "cert") or (prefix and _arg(args, "", "cert"))):
        return f"{p}issuer authenticates with the client certificate: give {p}cert and {p}key"
    return None


@dataclass(frozen=True)
class SmtpRelay:
    """Where e-mail goes: `smtp://[user:password@]host[:port]` (STARTTLS when asked) or
    `smtps://…` (TLS from the start), the sender, a CA bundle for the relay's certificate."""

    url: str
    sender: str
    starttls: bool = False
    ca: Path | None = None
    timeout_s: float = 10.0

    def send(self, to: str, subject: str, text: str, headers: Mapping[str, str] | None = None
             ) -> None:  # fmt: skip
        """Send one plain-text message; raises what smtplib raises when the relay refuses."""
        parts = urlsplit(self.url)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(text)
        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        host = parts.hostname or "localhost"
        smtp: smtplib.SMTP
        if parts.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(host, parts.port or 465, timeout=self.timeout_s,
                                    context=context)  # fmt: skip
        else:
            smtp = smtplib.SMTP(host, parts.port or 25, timeout=self.timeout_s)
        with smtp:
            if self.starttls:
                smtp.starttls(context=context)
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(message)
