"""Checking a configuration package offline (`cdb-service verify-package`, and the agent
beside an access point before it applies one): the manifest's detached JWS with the
registry's JWKS, then every file against the manifest's SHA-256, then the content digest.
A refusal names the file at fault."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

from cdb_service.distribution.packages import MANIFEST, SIGNATURE, package_digest

MAX_MEMBER = 64 * 1024 * 1024  # a package of the whole network is well under 1 MiB


@dataclass(frozen=True)
class Verdict:
    ok: bool
    file: str | None  # the file at fault
    detail: str
    manifest: dict[str, Any] | None = None
    kid: str | None = None


def verify_package(data: bytes, key_set: Any) -> Verdict:
    from joserfc.errors import JoseError

    from cdb_service.security.signing_keys import header_of, verify_detached

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = {i.filename: i for i in archive.infolist()}
    except (zipfile.BadZipFile, ValueError) as error:
        return Verdict(False, None, f"not a ZIP archive ({error})")
    for name in (MANIFEST, SIGNATURE):
        if name not in members:
            return Verdict(False, name, "missing from the package")
    if any(i.file_size > MAX_MEMBER for i in members.values()):
        big = next(n for n, i in members.items() if i.file_size > MAX_MEMBER)
        return Verdict(False, big, "too large to be part of a package")
    try:
        files = {name: archive.read(name) for name in members}
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        return Verdict(False, None, f"the archive is damaged ({error})")
    manifest_bytes, token = files[MANIFEST], files[SIGNATURE].decode("ascii", "replace").strip()
    try:
        kid = header_of(token).get("kid")
    except (ValueError, IndexError):
        return Verdict(False, SIGNATURE, "not a JWS")
    if kid not in {k.kid for k in key_set.keys}:
        return Verdict(False, MANIFEST, f"signed by key {kid!r}, which the JWKS does not list")
    mismatch = _certificate_mismatch(next(k for k in key_set.keys if k.kid == kid))
    if mismatch:
        return Verdict(False, MANIFEST, mismatch)
    try:
        verify_detached(token, manifest_bytes, key_set)
    except (JoseError, ValueError) as error:
        return Verdict(False, MANIFEST, f"the signature does not verify ({error or 'bad'})")
    try:
        manifest = json.loads(manifest_bytes)
        listed: dict[str, Any] = manifest["files"]
    except (ValueError, KeyError, TypeError):
        return Verdict(False, MANIFEST, "not a package manifest")
    for name, data_ in files.items():
        if name in (MANIFEST, SIGNATURE):
            continue
        if name not in listed:
            return Verdict(False, name, "not listed in the manifest")
        if hashlib.sha256(data_).hexdigest() != listed[name].get("sha256"):
            return Verdict(False, name, "its SHA-256 differs from the manifest's")
    for name in listed:
        if name not in files:
            return Verdict(False, name, "listed in the manifest but missing from the package")
    content = manifest.get("content")
    if not isinstance(content, dict) or package_digest(content) != manifest.get("package_digest"):
        return Verdict(False, MANIFEST, "its package_digest does not match its content")
    if content.get("pmode_sha256") != listed.get("pmode.xml", {}).get("sha256"):
        return Verdict(False, "pmode.xml", "not the PMode the manifest's content names")
    return Verdict(True, None, f"signed by {kid}", manifest, kid)


def _certificate_mismatch(key: Any) -> str | None:
    """Why the key's published certificate (`x5c`) is not a certificate of that key; None
    when it is, or when the JWKS gives none (a JWKS saved before keys had one)."""
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    chain = key.as_dict(private=False).get("x5c")
    if not chain:
        return None
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(chain[0]))
        matches = certificate.public_key().public_bytes(*spki) == key.public_key.public_bytes(*spki)
    except (ValueError, TypeError):
        return f"the JWKS's certificate (x5c) of key {key.kid!r} cannot be read"
    return None if matches else f"the JWKS's certificate (x5c) is not of key {key.kid!r}"
