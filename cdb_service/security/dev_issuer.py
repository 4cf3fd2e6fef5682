"""The dev profile's local token issuer: discovery, JWKS and a client-credentials endpoint.

Clients authenticate with their certificate (`tls_client_auth`); the token is
bound to it. Mounted only when the dev issuer is enabled, never in prod.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency

from cdb_service.kernel.problems import Problem
from cdb_service.security.certificates import CertificateRejected
from cdb_service.security.dev import DEV_CLIENTS, DevPki, mint_token, public_jwks
from cdb_service.security.gate import SecurityGate
from cdb_service.settings import Settings


def _oauth_error(status: int, error: str, detail: str) -> Problem:
    return Problem(status, error, detail, extra={"error": error, "error_description": detail})


class DevIssuerController(Controller):
    path = "/dev-issuer"
    tags = ["dev issuer"]  # noqa: RUF012
    include_in_schema = False

    @get("/.well-known/openid-configuration")
    async def discovery(self, settings: NamedDependency[Settings]) -> dict[str, Any]:
        issuer = settings.oidc_issuer
        return {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/jwks.json",
            "token_endpoint": f"{issuer}/token",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["tls_client_auth"],
            "tls_client_certificate_bound_access_tokens": True,
            "scopes_supported": ["cdb.read", "cdb.write", "cdb.operator"],
        }

    @get("/jwks.json")
    async def jwks(self, dev_pki: NamedDependency[DevPki]) -> dict[str, Any]:
        return public_jwks(dev_pki.signing_keys())

    @post("/token", status_code=200)
    async def token(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        gate: NamedDependency[SecurityGate],
        dev_pki: NamedDependency[DevPki],
    ) -> dict[str, Any]:
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            raise _oauth_error(400, "unsupported_grant_type", "only client_credentials is offered")
        try:
            certificate = gate.certificate(request.scope)
            if certificate is None:
                raise CertificateRejected("present your dev client certificate (tls_client_auth)")
            gate.verifier.verify(certificate)
        except CertificateRejected as error:
            raise _oauth_error(401, "invalid_client", str(error)) from None
        name = certificate.facts.subject.split("CN=")[-1].split(",")[0]
        client = DEV_CLIENTS.get(name)
        if client is None:
            raise _oauth_error(401, "invalid_client", f"{name!r} is not a dev client")
        named = form.get("client_id")
        if named is not None and named != name:
            # tls_client_auth: the certificate is the client; a request naming another is wrong
            detail = f"client_id {named!r} does not match the certificate ({name!r})"
            raise _oauth_error(401, "invalid_client", detail)
        lifetime = settings.dev_token_lifetime_s
        token = mint_token(
            dev_pki.signing_keys(), issuer=settings.oidc_issuer,
            audience=settings.oidc_audience, client=name, scope=client.scope, owner=client.owner,
            thumbprint=certificate.facts.x5t_s256, lifetime_s=lifetime,
            owner_claim=settings.owner_claim,
        )  # fmt: skip
        return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime,
                "scope": client.scope}  # fmt: skip
