"""A tiny OpenID issuer for token tests: discovery and a JWKS over HTTPS on loopback.

A `ThreadingHTTPServer` wrapped in TLS (a server certificate of the test PKI) in a
daemon thread. It serves `/.well-known/openid-configuration` and `/jwks` and
counts how often each was fetched, so tests can assert exactly when the service
went back for the keys. The test decides which keys are published and signs its
own tokens, good ones and deliberately broken ones (`alg: none`, HS256 keyed with
the public key's PEM, a `kid` that is not published, wrong claims).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

AUDIENCE = "cdb-api"
_DROP = object()  # a claim value meaning "leave this claim out"


def new_key() -> ECKey:
    key = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"})
    key.ensure_kid()
    return key


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


class Issuer:
    """The identity provider the service is configured with (CDB_OIDC_ISSUER)."""

    def __init__(self, cert: Path, key: Path, host: str = "127.0.0.1") -> None:
        self.signing_key = new_key()
        self.published: list[ECKey] = [self.signing_key]
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.last_jwks_fetch = 0.0  # time.monotonic() of the latest JWKS answer
        self._lock = threading.Lock()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(
            self._server.socket, server_side=True, do_handshake_on_connect=False
        )
        self.port = int(self._server.server_address[1])
        self.url = f"https://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- the HTTPS side -----------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body: dict[str, Any]
                if self.path == "/.well-known/openid-configuration":
                    with issuer._lock:
                        issuer.discovery_fetches += 1
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks",
                            "id_token_signing_alg_values_supported": ["ES256"]}  # fmt: skip
                elif self.path == "/jwks":
                    with issuer._lock:
                        body = {"keys": [k.as_dict(private=False) for k in issuer.published]}
                        issuer.jwks_fetches += 1
                        issuer.last_jwks_fetch = time.monotonic()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> Issuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @contextmanager
    def running(self) -> Iterator[Issuer]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def counts(self) -> tuple[int, int]:
        """(discovery fetches, JWKS fetches) so far."""
        with self._lock:
            return self.discovery_fetches, self.jwks_fetches

    # --- tokens -------------------------------------------------------------------------

    def claims(self, client: str, scope: str, owner: str | None = None,
               thumbprint: str | None = None, lifetime_s: int = 600,
               **overrides: Any) -> dict[str, Any]:  # fmt: skip
        """Good access-token claims; `overrides` replace claims (`DROP` removes one)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url, "aud": AUDIENCE, "sub": client, "client_id": client,
            "scope": scope, "iat": now, "nbf": now, "exp": now + lifetime_s,
            "jti": uuid.uuid4().hex,
        }  # fmt: skip
        if owner:
            claims["cdb_owner"] = owner
        if thumbprint:
            claims["cnf"] = {"x5t#S256": thumbprint}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not _DROP}

    def sign(self, claims: dict[str, Any], key: ECKey | None = None,
             kid: str | None = None) -> str:  # fmt: skip
        """An ES256 JWT signed with `key` (default: the published signing key)."""
        key = key or self.signing_key
        header = {"alg": "ES256", "typ": "at+jwt", "kid": kid or key.kid}
        return jwt.encode(header, claims, key)

    def token(self, client: str, scope: str, owner: str | None = None,
              thumbprint: str | None = None, **overrides: Any) -> str:  # fmt: skip
        return self.sign(self.claims(client, scope, owner, thumbprint, **overrides))

    def unsigned_token(self, claims: dict[str, Any]) -> str:
        """`alg: none`: no signature at all (RFC 7519 "unsecured JWT")."""
        header = {"alg": "none", "typ": "at+jwt", "kid": self.signing_key.kid}
        return f"{_segment(header)}.{_segment(claims)}."

    def public_key_pem(self) -> bytes:
        return self.signing_key.as_pem(private=False)

    def hs256_with_public_key_token(self, claims: dict[str, Any]) -> str:
        """The algorithm-confusion attack: HMAC-SHA256 keyed with the issuer's public PEM.

        Anyone can compute it (the key is public); a verifier that lets the token's
        `alg` pick how the "key" is used would accept it. Signed by hand, because
        joserfc (rightly) refuses a PEM as an HMAC secret.
        """
        header = {"alg": "HS256", "typ": "at+jwt", "kid": self.signing_key.kid}
        signing_input = f"{_segment(header)}.{_segment(claims)}"
        mac = hmac.new(self.public_key_pem(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"


DROP = _DROP
