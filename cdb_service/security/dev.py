"""The dev profile's conveniences: a local PKI and a local token issuer.

On first start in `dev` the service writes under `var/pki/` a CA, a server
certificate for localhost and one client certificate per dev client, plus the
dev issuer's signing key. Tokens the dev issuer mints are bound (RFC 8705) to the
client's certificate. `prod` refuses to start with any of it.
"""

from __future__ import annotations

import fcntl
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from cdb_service.security.pki import PkiFiles, issue, make_ca, write_private
from cdb_service.security.x509 import certificate_facts
from cdb_service.settings import Settings


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
class DevPki(PkiFiles):
    """The dev profile's PKI under `$CDB_DATA_DIR/pki`, and the dev issuer's signing keys."""

    @property
    def issuer_keys(self) -> Path:
        return self.root / "issuer-jwks.json"

    def ensure(self) -> DevPki:
        """Create what is missing; keep what exists (tokens and trust survive restarts).

        One process at a time: `make run` and a `dev-token` in a second terminal on a
        fresh data folder must not each write half of a certificate and key pair."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._create_missing()
        return self

    def _create_missing(self) -> None:
        if not self.ca.exists():
            self.write_ca(make_ca("cdb-service dev CA"))
        ca = self.load_ca()
        if not self.server_cert.exists():
            self.write_server(issue(ca, "localhost", dns_names=("localhost",),
                                    ip_addresses=("127.0.0.1", "::1"), server=True))  # fmt: skip
        for name in DEV_CLIENTS:
            if not self.client_cert(name).exists():
                self.write_client(name, issue(ca, name, client=True))
        if not self.issuer_keys.exists():
            key = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"})
            key.ensure_kid()
            write_private(self.issuer_keys, json.dumps({"keys": [key.as_dict(private=True)]}))

    def signing_keys(self) -> KeySet:
        return KeySet.import_key_set(json.loads(self.issuer_keys.read_text()))


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


def with_dev_defaults(settings: Settings) -> Settings:
    """Dev profile: fill what is not configured with the generated local PKI and issuer."""
    if not settings.uses_dev_issuer:
        return settings
    pki = DevPki(settings.pki_dir).ensure()
    updates: dict[str, object] = {}
    if not settings.client_ca_files:
        updates["client_ca_files"] = [pki.ca]
    if settings.tls_cert_file is None:
        updates |= {"tls_cert_file": pki.server_cert, "tls_key_file": pki.server_key}
    if not settings.oidc_issuer:
        updates["oidc_issuer"] = settings.dev_issuer_url()
    if settings.oidc_ca_file is None and updates.get("oidc_issuer", settings.oidc_issuer) == (
        settings.dev_issuer_url()
    ):
        updates["oidc_ca_file"] = pki.ca  # the console redeems its codes over HTTPS
    return settings.model_copy(update=updates)
