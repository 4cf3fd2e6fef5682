"""X.509 helpers shared by routing-party certificates and client authentication."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cdb_service.kernel import codes

_PRIVATE_KEY_MARKERS = ("PRIVATE KEY-----", "ENCRYPTED PRIVATE KEY")


@dataclass(frozen=True)
class CertificateFacts:
    pem: str
    sha256: str
    x5t_s256: str
    subject: str
    issuer: str
    serial_number: str
    not_before: dt.datetime
    not_after: dt.datetime
    # The subject's countryName (C=), if it names one.
    country: str | None = None


def sha256_thumbprint(der: bytes) -> str:
    """RFC 8705 `x5t#S256`: base64url of the SHA-256 of the DER, unpadded."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def certificate_facts(certificate: x509.Certificate) -> CertificateFacts:
    der = certificate.public_bytes(Encoding.DER)
    return CertificateFacts(
        pem=certificate.public_bytes(Encoding.PEM).decode().strip(),
        sha256=hashlib.sha256(der).hexdigest(),
        x5t_s256=sha256_thumbprint(der),
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        serial_number=format(certificate.serial_number, "x"),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        country=_country(certificate),
    )


def _country(certificate: x509.Certificate) -> str | None:
    names = certificate.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    return codes.code_of(str(names[0].value)) if names else None


def parse_single_certificate(pem: str, *, now: dt.datetime | None = None) -> CertificateFacts:
    """Parse exactly one PEM certificate that is valid now; say plainly what is wrong."""
    text = pem.strip()
    if any(marker in text for marker in _PRIVATE_KEY_MARKERS):
        raise ValueError("contains a private key; upload the certificate only, never its key")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError("is not a PEM certificate (-----BEGIN CERTIFICATE----- … expected)")
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError as error:
        raise ValueError(f"is not a readable PEM certificate: {error}") from None
    if len(certificates) != 1:
        raise ValueError(f"holds {len(certificates)} certificates; give one per entry")
    facts = certificate_facts(certificates[0])
    moment = now or dt.datetime.now(dt.UTC)
    if facts.not_after <= moment:
        raise ValueError(f"expired on {facts.not_after.isoformat()}")
    return facts
