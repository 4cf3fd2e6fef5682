"""A small local PKI: a CA and the certificates it signs (dev profile, seed data, tests)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()


LEAF_DAYS = 365


def _name(common_name: str, organisation: str, country: str | None = None) -> x509.Name:
    country_name = [x509.NameAttribute(NameOID.COUNTRY_NAME, country)] if country else []
    return x509.Name(
        [
            *country_name,
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(common_name: str, *, organisation: str = "cdb-service dev", years: int = 20,
            not_before: dt.datetime | None = None) -> Issued:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    name = _name(common_name, organisation)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def issue(
    ca: Issued,
    common_name: str,
    *,
    organisation: str = "cdb-service dev",
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    server: bool = False,
    client: bool = False,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    country: str | None = None,
) -> Issued:
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    # A year at most: what Mozilla's TLS profiles (and browsers) accept for a leaf.
    end = not_after or min(start + dt.timedelta(days=LEAF_DAYS), ca.certificate.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organisation, country))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


@dataclass(frozen=True)
class PkiFiles:
    """One folder of PEM files: a CA (and its key), a server certificate, named clients.

    The dev profile's PKI and the tests' PKI are laid out by this one class, so a
    path that works against `make run` works in a test and the other way round.
    """

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca-key.pem"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "server-key.pem"

    def client_cert(self, name: str) -> Path:
        return self.root / f"client-{name}.pem"

    def client_key(self, name: str) -> Path:
        return self.root / f"client-{name}-key.pem"

    def write_ca(self, ca: Issued) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_private(self.ca_key, ca.key_pem)
        self.ca.write_text(ca.cert_pem)

    def load_ca(self) -> Issued:
        certificate = x509.load_pem_x509_certificate(self.ca.read_bytes())
        key = load_pem_private_key(self.ca_key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self.ca_key}: not an EC private key")
        return Issued(certificate, key)

    def write_server(self, issued: Issued) -> None:
        write_private(self.server_key, issued.key_pem)
        self.server_cert.write_text(issued.cert_pem)

    def write_client(self, name: str, issued: Issued) -> None:
        write_private(self.client_key(name), issued.key_pem)
        self.client_cert(name).write_text(issued.cert_pem)


def write_private(path: Path, text: str) -> None:
    """A private key (or key set), readable by its owner only."""
    path.write_text(text)
    path.chmod(0o600)
