"""The dev profile's conveniences: a local PKI and a local token issuer.

On first start in `dev` the service writes under `var/pki/` a CA, a server
certificate for localhost and one client certificate per dev client, plus the
dev issuer's signing key. Tokens the dev issuer mints are bound (RFC 8705) to the
client's certificate. `prod` refuses to start with any of it.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from cdb_service.security.pki import issue, make_ca
from cdb_service.security.x509 import certificate_facts


@dataclass(frozen=True)
class DevClient:
    scope: str
    owner: str | None = None


DEV_CLIENTS = {
    "reader": DevClient("cdb.read"),
    "admin-de": DevClient("cdb.read cdb.write", "DE"),
    "admin-fr": DevClient("cdb.read cdb.write", "FR"),
    "admin-ej": DevClient("cdb.read cdb.write", "EJ"),
    "operator": DevClient("cdb.read cdb.operator"),
}


@dataclass(frozen=True)
class DevPki:
    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "server-key.pem"

    @property
    def issuer_keys(self) -> Path:
        return self.root / "issuer-jwks.json"

    def client_cert(self, name: str) -> Path:
        return self.root / f"client-{name}.pem"

    def client_key(self, name: str) -> Path:
        return self.root / f"client-{name}-key.pem"

    def ensure(self) -> DevPki:
        """Create what is missing; keep what exists (tokens and trust survive restarts)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.ca.exists():
            ca = make_ca("cdb-service dev CA")
            _write(self.root / "ca-key.pem", ca.key_pem)
            _write(self.ca, ca.cert_pem)
        ca = _load_ca(self.root)
        if not self.server_cert.exists():
            server = issue(ca, "localhost", dns_names=("localhost",),
                           ip_addresses=("127.0.0.1", "::1"), server=True)  # fmt: skip
            _write(self.server_key, server.key_pem)
            _write(self.server_cert, server.cert_pem)
        for name in DEV_CLIENTS:
            if not self.client_cert(name).exists():
                client = issue(ca, name, client=True)
                _write(self.client_key(name), client.key_pem)
                _write(self.client_cert(name), client.cert_pem)
        if not self.issuer_keys.exists():
            key = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"})
            key.ensure_kid()
            _write(self.issuer_keys, json.dumps({"keys": [key.as_dict(private=True)]}))
        return self

    def signing_keys(self) -> KeySet:
        return KeySet.import_key_set(json.loads(self.issuer_keys.read_text()))


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    if "PRIVATE" in text or '"d"' in text:
        path.chmod(0o600)


def _load_ca(root: Path) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from cdb_service.security.pki import Issued

    certificate = x509.load_pem_x509_certificate((root / "ca.pem").read_bytes())
    key = load_pem_private_key((root / "ca-key.pem").read_bytes(), password=None)
    return Issued(certificate, key)  # type: ignore[arg-type]


def public_jwks(keys: KeySet) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys.keys]}


def mint_token(
    keys: KeySet,
    *,
    issuer: str,
    audience: str,
    client: str,
    scope: str,
    owner: str | None,
    thumbprint: str | None,
    lifetime_s: int = 3600,
    owner_claim: str = "cdb_owner",
) -> str:
    key = keys.keys[0]
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer, "aud": audience, "sub": client, "client_id": client, "scope": scope,
        "iat": now, "nbf": now, "exp": now + lifetime_s, "jti": uuid.uuid4().hex,
    }  # fmt: skip
    if owner:
        claims[owner_claim] = owner
    if thumbprint:
        claims["cnf"] = {"x5t#S256": thumbprint}
    header = {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, key)


def token_for(pki: DevPki, client: str, issuer: str, audience: str, owner_claim: str) -> str:
    """A token for a dev client, bound to that client's certificate."""
    spec = DEV_CLIENTS[client]
    certificate = x509.load_pem_x509_certificate(pki.client_cert(client).read_bytes())
    return mint_token(
        pki.signing_keys(), issuer=issuer, audience=audience, client=client, scope=spec.scope,
        owner=spec.owner, thumbprint=certificate_facts(certificate).x5t_s256,
        owner_claim=owner_claim,
    )  # fmt: skip
