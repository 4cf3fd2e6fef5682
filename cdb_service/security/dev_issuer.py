"""The dev profile's local token issuer: discovery, JWKS, a client-credentials endpoint, and
an authorization endpoint for the console's sign-in.

Clients authenticate with their certificate (`tls_client_auth`); the token is
bound to it. A person signing in to the console (authorization code + PKCE) is shown
one button per dev client and becomes that client: the access token carries its
scopes and owner, unbound (a browser has no client certificate). The code is a short-
lived token signed by the issuer's key, so that any worker can redeem it. Mounted only
when the dev issuer is enabled, never in prod.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect

from cdb_service.kernel.page_headers import CONTENT_SECURITY_POLICY
from cdb_service.kernel.problems import Problem
from cdb_service.security.certificates import CertificateRejected
from cdb_service.security.dev import DEV_CLIENTS, DevPki, mint_token, public_jwks
from cdb_service.security.gate import SecurityGate
from cdb_service.settings import Settings
from cdb_service.web.pages import html_page

CODE_LIFETIME_S = 120
_AUTHORIZE_FIELDS = ("client_id", "redirect_uri", "state", "nonce", "code_challenge",
                     "code_challenge_method", "scope")  # fmt: skip


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
            "authorization_endpoint": f"{issuer}/authorize",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "subject_types_supported": ["public"],
            "grant_types_supported": ["client_credentials", "authorization_code"],
            "token_endpoint_auth_methods_supported": ["tls_client_auth", "none"],
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
        if form.get("grant_type") == "authorization_code":
            return _redeem(dict(form), settings, dev_pki)
        if form.get("grant_type") != "client_credentials":
            raise _oauth_error(400, "unsupported_grant_type",
                               "client_credentials or authorization_code")  # fmt: skip
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

    @get("/authorize")
    async def authorize(self, request: Request[Any, Any, Any]) -> Response[str]:
        """The sign-in page: one button per dev client; the person becomes that client."""
        asked = {name: request.query_params.get(name, "") for name in _AUTHORIZE_FIELDS}
        if request.query_params.get("response_type") != "code":
            raise _oauth_error(400, "unsupported_response_type", "only response_type=code")
        if asked["code_challenge_method"] != "S256" or not asked["code_challenge"]:
            raise _oauth_error(400, "invalid_request", "PKCE with S256 is required")
        if not re.fullmatch(r"https://[A-Za-z0-9.:\[\]-]+/[^\s;,']*", asked["redirect_uri"]):
            raise _oauth_error(400, "invalid_request", "redirect_uri must be an https URL")
        page = html_page("dev-sign-in.html", {"asked": asked, "clients": DEV_CLIENTS})
        # The choice is posted here and redirected to the client: both are allowed targets.
        target = urlsplit(asked["redirect_uri"])
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
            "form-action 'self'", f"form-action 'self' https://{target.netloc}"
        )
        return page

    @post("/authorize", status_code=303)
    async def choose(self, request: Request[Any, Any, Any], settings: NamedDependency[Settings],
                     dev_pki: NamedDependency[DevPki]) -> Redirect:  # fmt: skip
        form = await request.form()
        asked = {name: str(form.get(name) or "") for name in _AUTHORIZE_FIELDS}
        client = str(form.get("dev_client") or "")
        if client not in DEV_CLIENTS:
            raise _oauth_error(400, "invalid_request", f"{client[:40]!r} is not a dev client")
        if not asked["redirect_uri"].startswith("https://") or not asked["code_challenge"]:
            raise _oauth_error(400, "invalid_request", "redirect_uri and code_challenge needed")
        now = int(time.time())
        claims = {"iss": settings.oidc_issuer, "aud": f"{settings.oidc_issuer}/token",
                  "sub": client, "exp": now + CODE_LIFETIME_S, "iat": now,
                  "jti": uuid.uuid4().hex, **{k: asked[k] for k in _AUTHORIZE_FIELDS}}  # fmt: skip
        key = dev_pki.signing_keys().keys[0]
        code = jwt.encode({"alg": "ES256", "kid": key.kid, "typ": "code"}, claims, key)
        query = urlencode({"code": code, "state": asked["state"], "iss": settings.oidc_issuer})
        return Redirect(f"{asked['redirect_uri']}?{query}", status_code=303)


def _redeem(form: dict[str, Any], settings: Settings, dev_pki: DevPki) -> dict[str, Any]:
    """An authorization code for tokens: the code's signature, age, client, redirect and
    PKCE verifier must all match."""
    try:
        code = jwt.decode(str(form.get("code") or ""), dev_pki.signing_keys(), algorithms=["ES256"])
    except (JoseError, ValueError):
        raise _oauth_error(400, "invalid_grant", "the code is not one of this issuer") from None
    claims = code.claims
    verifier = str(form.get("code_verifier") or "")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    checks = [
        (code.header.get("typ") == "code", "not an authorization code"),
        (int(claims.get("exp", 0)) > time.time(), "the code has expired"),
        (claims.get("client_id") == form.get("client_id"), "the code is another client's"),
        (claims.get("redirect_uri") == form.get("redirect_uri"), "redirect_uri differs"),
        (hmac.compare_digest(challenge.rstrip(b"=").decode(), str(claims.get("code_challenge"))),
         "the code_verifier does not match the code_challenge"),
    ]  # fmt: skip
    for ok, why in checks:
        if not ok:
            raise _oauth_error(400, "invalid_grant", why)
    name = str(claims["sub"])
    client = DEV_CLIENTS[name]
    keys = dev_pki.signing_keys()
    access = mint_token(
        keys, issuer=settings.oidc_issuer, audience=settings.oidc_audience, client=name,
        scope=client.scope, owner=client.owner, thumbprint=None,
        lifetime_s=settings.dev_token_lifetime_s, owner_claim=settings.owner_claim,
    )  # fmt: skip
    now = int(time.time())
    identity = {"iss": settings.oidc_issuer, "aud": claims["client_id"], "sub": name,
                "name": name, "iat": now, "exp": now + settings.dev_token_lifetime_s}  # fmt: skip
    if claims.get("nonce"):
        identity["nonce"] = claims["nonce"]
    key = keys.keys[0]
    id_token = jwt.encode({"alg": "ES256", "kid": key.kid, "typ": "JWT"}, identity, key)
    return {"access_token": access, "id_token": id_token, "token_type": "Bearer",
            "expires_in": settings.dev_token_lifetime_s, "scope": client.scope}  # fmt: skip
