"""The gate in front of `/api`: certificate, token, binding, then a principal.

Order of checks: a client certificate (direct TLS or trusted proxy header),
verified against the client CA bundles; a bearer token, validated; the token's
`cnf.x5t#S256` equal to that certificate's thumbprint (RFC 8705). Every refusal
is a problem response with `WWW-Authenticate` and an audit event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.kernel.problems import UNAUTHORIZED, Problem
from cdb_service.logging import get_logger
from cdb_service.security.audit import Who
from cdb_service.security.certificates import (
    CERT_HEADERS,
    CertificateRejected,
    ChainVerifier,
    ClientCertificate,
    ProxyAllowList,
    from_header,
    from_pem,
)
from cdb_service.security.policy import Principal, principal_from_claims
from cdb_service.security.rate_limits import RateLimits, source_key
from cdb_service.security.refusals import RefusalTrail
from cdb_service.security.tls import PROXY_SOCKET
from cdb_service.security.tokens import TokenRejected, TokenValidator
from cdb_service.settings import Settings, TlsMode
from cdb_service.web.perimeter import send_problem

REALM = 'Bearer realm="cdb"'
_CERT_HEADER_BYTES = frozenset(name.encode() for name in CERT_HEADERS)
_FORWARDED_HEADERS = frozenset((b"x-forwarded-for", b"forwarded"))
log = get_logger("cdb.security")


def unauthorized(detail: str, error: str | None = None) -> Problem:
    challenge = f'{REALM}, error="{error}"' if error else REALM
    return UNAUTHORIZED(detail, headers={"WWW-Authenticate": challenge})


@dataclass
class SecurityGate:
    settings: Settings
    validator: TokenValidator
    verifier: ChainVerifier
    proxies: ProxyAllowList
    limits: RateLimits | None = None
    refusals: RefusalTrail = field(default_factory=RefusalTrail)

    def certificate(self, scope: Scope) -> ClientCertificate | None:
        """The client certificate of this request, from whichever way it came in."""
        forwarded = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in scope["headers"]
            if value and name.lower() in _CERT_HEADER_BYTES
        ]
        if forwarded:
            if not self.from_proxy(scope):
                raise CertificateRejected(
                    "a client certificate header was sent by an address that is not a trusted proxy"
                )
            return from_header(*forwarded[0])
        extensions: Any = scope.get("extensions") or {}
        chain = (extensions.get("tls") or {}).get("client_cert_chain") or []
        return from_pem(chain[0], "tls") if chain else None

    def from_proxy(self, scope: Scope) -> bool:
        """Did this request come from the reverse proxy? Only then are its headers about
        the client (certificate, address, request id) believed: in proxy mode, over the
        Unix socket that only nginx may open, or from an address configured as a proxy."""
        if self.settings.tls_mode is not TlsMode.PROXY:
            return False
        if PROXY_SOCKET in (scope.get("extensions") or {}):
            return True
        peer = (scope.get("client") or ("", 0))[0]
        return bool(peer) and peer in self.proxies

    def source_address(self, scope: Scope) -> str | None:
        """The client's address: the peer's, or the one the proxy forwards (nginx sets
        `X-Forwarded-For` to the address it saw, see deploy/nginx)."""
        peer = (scope.get("client") or ("", 0))[0] or None
        if self.from_proxy(scope):
            headers = {
                lowered: value
                for name, value in scope["headers"]
                if (lowered := name.lower()) in _FORWARDED_HEADERS
            }
            # The proxy's own addition is the last element: earlier ones the client wrote.
            if b"x-forwarded-for" in headers:
                forwarded = headers[b"x-forwarded-for"].decode("latin-1").split(",")[-1].strip()
                return forwarded[:64] or peer or "proxy"
            if b"forwarded" in headers:  # RFC 7239
                last = headers[b"forwarded"].decode("latin-1").split(",")[-1]
                for pair in last.split(";"):
                    key, _, value = pair.strip().partition("=")
                    if key.lower() == "for" and value:
                        return value.strip('"')[:64]
            return peer or "proxy"
        return peer

    async def authenticate(self, scope: Scope) -> Principal:
        # Read (and parsed) once: the rate limit and the checks below both look at it.
        rejected: CertificateRejected | None = None
        try:
            presented = self.certificate(scope)
        except CertificateRejected as error:
            presented, rejected = None, error
        if self.limits is None:
            return await self._authenticate(scope, presented, rejected)
        # Counted against the source, never against what the client chooses (certificate,
        # token, path): see `rate_limits.source_key`.
        source = source_key(scope["state"].get("source_ip"))
        thumbprint = presented.facts.x5t_s256 if presented else None
        self.limits.before_authentication(source, thumbprint)
        try:
            principal = await self._authenticate(scope, presented, rejected)
        except Problem:
            self.limits.after_refusal(source, thumbprint)
            raise
        self.limits.for_client(principal.client_key)
        return principal

    async def _authenticate(self, scope: Scope, certificate: ClientCertificate | None,
                            rejected: CertificateRejected | None) -> Principal:  # fmt: skip
        try:
            if rejected is not None:
                raise rejected
            if certificate is None:
                raise unauthorized(
                    "a client certificate is required (mutual TLS): present the certificate "
                    "your token was issued for (curl: --cert CERT.pem --key KEY.pem)"
                )
            # Known before it is judged, so that the audit event of a refusal names it.
            scope["state"]["client_certificate"] = certificate
            self.verifier.verify(certificate)
        except CertificateRejected as error:
            raise unauthorized(str(error)) from None
        token = _bearer(scope)
        if token is None:
            raise unauthorized(
                "a bearer access token is required: send the header 'Authorization: Bearer <token>'"
            )
        try:
            claims = await self.validator.validate(token)
        except TokenRejected as error:
            raise unauthorized(str(error), "invalid_token") from None
        bound = (
            (claims.get("cnf") or {}).get("x5t#S256")
            if isinstance(claims.get("cnf"), dict)
            else None
        )
        if bound is not None and bound != certificate.facts.x5t_s256:
            raise unauthorized(
                f"the token is bound to another client certificate (x5t#S256 {_short(bound)}), "
                f"not to the one presented ({certificate.facts.subject}, x5t#S256 "
                f"{_short(certificate.facts.x5t_s256)}); present the certificate the token "
                "was issued for, or get a token for this certificate",
                "invalid_token",
            )
        if bound is None and self.settings.bound_tokens_required:
            raise unauthorized("the token is not bound to a client certificate (RFC 8705)",
                               "invalid_token")  # fmt: skip
        return principal_from_claims(
            claims, certificate, self.settings.owner_claim, self.settings.scope_claim
        )


def _short(thumbprint: object) -> str:
    text = str(thumbprint)
    return text if len(text) <= 16 else text[:12] + "…"


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def who_of(scope: Scope) -> Who:
    """The best description of the caller available, authenticated or not."""
    state = scope.get("state", {})
    client = state.get("source_ip") or (scope.get("client") or ("", 0))[0] or None
    principal = scope.get("user")
    if isinstance(principal, Principal):
        return principal.who(state.get("request_id"), client, state.get("client_request_id"))
    certificate = state.get("client_certificate")
    return Who(
        subject="anonymous",
        cert_subject=certificate.facts.subject if certificate else None,
        cert_thumbprint=certificate.facts.x5t_s256 if certificate else None,
        request_id=state.get("request_id"),
        source_ip=client,
        client_request_id=state.get("client_request_id"),
    )


class ApiGate:
    """ASGI middleware: everything under /api passes the gate or gets a problem.

    It runs before dependency injection: the composition root hands it the functions
    that find the gate and the database sessions (`security.deps.gate_of`,
    `web.deps.sessions_of`).
    """

    def __init__(
        self,
        app: ASGIApp,
        gate_of: Callable[[Scope], SecurityGate],
        sessions_of: Callable[[Scope], async_sessionmaker[AsyncSession]],
        prefix: str = "/api/",
    ) -> None:
        self.app = app
        self.gate_of, self.sessions_of = gate_of, sessions_of
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        gate = self.gate_of(scope)
        scope.setdefault("state", {})["source_ip"] = gate.source_address(scope)
        try:
            scope["user"] = await gate.authenticate(scope)
        except Problem as problem:
            await deny(scope, problem, gate, self.sessions_of(scope))
            await send_problem(send, problem, scope=scope)
            return
        await self.app(scope, receive, send)


async def deny(scope: Scope, problem: Problem, gate: SecurityGate,
               sessions: async_sessionmaker[AsyncSession]) -> None:  # fmt: skip
    """Record a refusal in the audit trail (repeats of one source and reason are counted)."""
    target = f"{scope.get('method', '')} {scope.get('path', '')}"
    await gate.refusals.record(sessions, who_of(scope), target, problem.status, problem.detail)
