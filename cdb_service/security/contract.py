"""What the gate (`security/gate.py`) asks of a client, said in the OpenAPI document.

Every operation under `/api` passes the gate: a client certificate (mutual TLS) and a
bearer token, both on the same request, the token bound to that certificate. A client
generated from `openapi.yaml` learns this from the security schemes alone; the public
routes (health, JWKS, the landing page, `/schema`, `/metrics` with its own address list)
declare none.
"""

from __future__ import annotations

from litestar.openapi.spec import SecurityRequirement, SecurityScheme

MUTUAL_TLS = "mutualTLS"
BEARER = "bearerToken"

SCHEMES: dict[str, SecurityScheme] = {
    MUTUAL_TLS: SecurityScheme(
        type="mutualTLS",
        description=(
            "A client certificate issued under one of the service's client CAs, presented in "
            "the TLS handshake (Implementing Regulation (EU) 2025/2447, Annex I 4.6(a)). "
            "Behind the reverse proxy, the proxy forwards it (`ssl-client-cert` or RFC 9440 "
            "`Client-Cert`); the header is believed only from a configured proxy address. "
            "Without it: 401 with `WWW-Authenticate`."
        ),
    ),
    BEARER: SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="JWT",
        description=(
            "An OpenID Connect access token (a JWT from the configured issuer, asymmetric "
            "signature, `iss`, `aud`, `exp` and `nbf` checked), sent as "
            "`Authorization: Bearer <token>` (Annex I 4.6(b)). Roles come from its scopes "
            "(`cdb.read`, `cdb.write`, `cdb.operator`) and its owner claim. "
            "Certificate binding (RFC 8705 §3): a token whose `cnf` claim carries `x5t#S256` "
            "is accepted only on a request that presents the client certificate with that "
            "SHA-256 thumbprint (base64url), so a token copied elsewhere is useless without "
            "the certificate's private key; production refuses unbound tokens. Both schemes "
            "are required together on every request."
        ),
    ),
}

# One requirement naming both: an OpenAPI security requirement's entries are all needed.
API: list[SecurityRequirement] = [{MUTUAL_TLS: [], BEARER: []}]
