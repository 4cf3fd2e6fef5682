"""The registry's signing keys: ES256, rotated, published as a JWKS. They sign extracts,
the receipts of writes (`security/receipts.py`), routing tables (a detached JWS in
`CDB-Signature`) and configuration packages' manifests.

Each key is published with a certificate (`x5c`, RFC 7517 4.7): self-signed, made with
the key, so that a verifier that keeps certificates rather than JWKs (a Java or .NET
access point) can pin it. A key set written before keys had one gets it at load time,
saved back when the file is writable.

Dev: a key pair is generated on first start under `$CDB_DATA_DIR/keys/`. Prod: the
key set file is provisioned (CDB_SIGNING_KEYS_FILE). Rotation makes a new current
key and keeps the old ones listed until their `listed_until`, so signatures made
before a rotation still verify while consumers may hold them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from joserfc import jws
from joserfc.jwk import ECKey, KeySet
from joserfc.util import urlsafe_b64encode

from cdb_service import metrics

ALG = "ES256"
CERTIFICATE_YEARS = 10  # a key is rotated long before; its listing decides, not this


@dataclass
class SigningKeys:
    path: Path
    current: ECKey
    keys: list[tuple[ECKey, dt.datetime | None]]  # (key, listed until; None = current)

    @classmethod
    def load(cls, path: Path, create: bool) -> SigningKeys:
        if not path.exists():
            if not create:
                raise SystemExit(f"no signing keys at {path} (CDB_SIGNING_KEYS_FILE)")
            path.parent.mkdir(parents=True, exist_ok=True)
            _save(path, _new_key(), [])
        keys = []
        current = None
        created: dict[str, str] = {}
        try:
            data = json.loads(path.read_text())
            for item in data["keys"]:
                until = item.pop("listed_until", None)
                made = item.pop("created_at", None)
                if made:
                    created[item.get("kid", "")] = made
                key = ECKey.import_key(item)
                keys.append((key, dt.datetime.fromisoformat(until) if until else None))
                if key.kid == data["current"]:
                    current = key
        except (ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"{path} is not a signing key set ({error!r:.80})") from None
        if current is None:
            raise SystemExit(f"{path}: the current key {data['current']!r} is not in the file")
        made = created.get(current.kid or "")
        if made:
            metrics.SIGNING_KEY_CREATED.set(dt.datetime.fromisoformat(made).timestamp())
        if any("x5c" not in key.as_dict(private=False) for key, _ in keys):
            keys = [(_with_certificate(key), until) for key, until in keys]
            current = next(key for key, _ in keys if key.kid == current.kid)
            # Kept, so every worker publishes the same certificate; a read-only provisioned
            # file cannot keep it, and this process's certificate serves.
            with contextlib.suppress(OSError):
                _save(path, current, [(k, u) for k, u in keys if k is not current],
                      created.get(current.kid or ""))  # fmt: skip
        return cls(path, current, keys)

    @classmethod
    def create(cls, path: Path, make_folder: bool = False) -> SigningKeys:
        """A new key set with one current key, at `path` (which must not exist).

        Its folder must exist unless `make_folder` (the default place, inside the data
        directory the service owns): a mistyped path is refused rather than silently
        grown into a tree of folders somewhere the service will never look.
        """
        if make_folder:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.parent.is_dir():
            raise SystemExit(f"cannot create signing keys at {path}: no folder {path.parent}")
        _save(path, _new_key(), [])
        return cls.load(path, create=False)

    def jwks(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """Current and retired public keys, retired ones while still listed."""
        moment = now or dt.datetime.now(dt.UTC)
        listed = [k for k, until in self.keys if until is None or until > moment]
        return {"keys": [k.as_dict(private=False) | {"alg": ALG, "use": "sig"} for k in listed]}

    def sign_detached(self, content: bytes, typ: str) -> str:
        """A compact JWS over `content` with its payload left out (RFC 7515 appendix F):
        `header..signature`; the verifier puts the content back (`verify_detached`)."""
        header = {"alg": ALG, "kid": self.current.kid, "typ": typ}
        token = jws.serialize_compact(header, content, self.current, algorithms=[ALG])
        protected, _, signature = token.split(".")
        return f"{protected}..{signature}"

    def sign(self, payload: dict[str, Any], typ: str = "cdb-extract+jws") -> str:
        header = {"alg": ALG, "kid": self.current.kid, "typ": typ}
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return jws.serialize_compact(header, body, self.current, algorithms=[ALG])

    def rotate(self, keep_listed: dt.timedelta) -> ECKey:
        until = dt.datetime.now(dt.UTC) + keep_listed
        old = [(k, u if u is not None else until) for k, u in self.keys]
        new = _new_key()
        _save(self.path, new, old)
        self.current, self.keys = new, [(new, None), *old]
        metrics.SIGNING_KEY_CREATED.set_to_current_time()
        return new


def _new_key() -> ECKey:
    key = ECKey.generate_key("P-256", parameters={"alg": ALG, "use": "sig"})
    key.ensure_kid()
    return _with_certificate(key)


def _with_certificate(key: ECKey) -> ECKey:
    """The key with a self-signed certificate of itself in `x5c` (kept if it has one)."""
    published = dict(key.as_dict(private=True))
    if published.get("x5c"):
        return key
    private = key.private_key
    assert isinstance(private, ec.EllipticCurvePrivateKey), "a signing key has its private half"
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CDB registry"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"CDB signing key {key.kid}"),
    ])  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * CERTIFICATE_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(private, hashes.SHA256())
    )
    import base64

    published["x5c"] = [base64.b64encode(certificate.public_bytes(Encoding.DER)).decode()]
    return ECKey.import_key(published)


def _save(
    path: Path,
    current: ECKey,
    retired: Sequence[tuple[ECKey, dt.datetime | None]],
    created_at: str | None = None,
) -> None:
    # The current key's birth is kept with it: its age is a metric and an alert.
    made = created_at or dt.datetime.now(dt.UTC).isoformat()
    items: list[dict[str, Any]] = [dict(current.as_dict(private=True)) | {"created_at": made}]
    for key, until in retired:
        item: dict[str, Any] = dict(key.as_dict(private=True))
        item["listed_until"] = until.isoformat() if until else None
        items.append(item)
    path.write_text(json.dumps({"current": current.kid, "keys": items}, indent=2))
    path.chmod(0o600)


def verify(token: str, key_set: KeySet) -> dict[str, Any]:
    """The payload of a compact JWS made by `sign`, if a listed key verifies it."""
    obj = jws.deserialize_compact(token, key_set, algorithms=[ALG])
    payload: dict[str, Any] = json.loads(obj.payload)
    return payload


def verify_detached(token: str, content: bytes, key_set: KeySet) -> dict[str, Any]:
    """The protected header of a detached JWS made by `sign_detached`, if a listed key
    verifies it over `content`; joserfc's errors (or ValueError) otherwise."""
    protected, empty, signature = ([*token.split("."), "", ""])[:3]
    if empty or not protected or not signature:
        raise ValueError("not a detached JWS (header..signature)")
    whole = f"{protected}.{urlsafe_b64encode(content).decode()}.{signature}"
    jws.deserialize_compact(whole, key_set, algorithms=[ALG])
    return header_of(token)


def header_of(token: str) -> dict[str, Any]:
    import base64

    segment = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded
