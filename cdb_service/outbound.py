"""The one outbound client: how the mirror and the probe call a cdb service.

Both present a client certificate (mutual TLS, trusting the CA they are given)
and an OIDC bearer token bound to that certificate. The token comes from the
command line or from a file that is read again for every request, so that a
token renewed on disk (rotation) is used from the next request on without a
restart. The TLS identity and the token are separate values: the probe sends
two tokens (its sample token and its incident token) over one identity.

This module depends on nothing else in `cdb_service`: the mirror and the probe
stand beside the service and talk HTTP to it.
"""

from __future__ import annotations

import argparse
import errno
import ssl
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _options(
    base_url: str,
    auth: BearerToken,
    timeout: httpx.Timeout,
    headers: Mapping[str, str] | None,
) -> dict[str, Any]:
    return {"base_url": base_url.rstrip("/"), "auth": auth, "timeout": timeout, "headers": headers}


def async_client(
    base_url: str,
    tls: TlsIdentity,
    auth: BearerToken = NO_TOKEN,
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
    auth: BearerToken = NO_TOKEN,
    *,
    timeout: httpx.Timeout,
    headers: Mapping[str, str] | None = None,
) -> httpx.Client:
    """For a synchronous caller (the probe: a fresh client, so TLS is checked every sample)."""
    return httpx.Client(verify=tls.ssl_context(), **_options(base_url, auth, timeout, headers))


# --- the command-line options every outbound caller takes -------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--ca, --cert, --key, --token, --token-file (the mirror's and the probe's)."""
    parser.add_argument("--ca", type=Path, help="CA certificate(s) to trust for the service")
    parser.add_argument("--cert", type=Path, help="client certificate (PEM)")
    parser.add_argument("--key", type=Path, help="client certificate's key (PEM)")
    parser.add_argument("--token", help="bearer token bound to the client certificate")
    parser.add_argument("--token-file", type=Path, help="file holding the token (re-read)")


def argument_mistake(args: argparse.Namespace) -> str | None:
    """A user's mistake in those options, as one line; None when there is none."""
    if args.token and args.token_file:
        return "give --token or --token-file, not both"
    if bool(args.cert) != bool(args.key):
        return "--cert and --key go together"
    return None
