"""Client certificates: two ways in (direct TLS, trusted reverse proxy), one shape out.

Direct TLS: the ASGI server puts the verified peer certificate in the ASGI `tls`
extension (`client_cert_chain`, PEM). Behind a reverse proxy that terminated TLS:
nginx's `$ssl_client_escaped_cert` (URL-encoded PEM) or RFC 9440 `Client-Cert`
(`:base64 DER:`), believed only when the request comes from a configured proxy
address. Either way the application verifies the chain against its CA bundles
before any other check, so both modes apply the same trust decision.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from cdb_service.security.x509 import CertificateFacts, certificate_facts

NGINX_HEADER = "x-ssl-client-cert"
RFC9440_HEADER = "client-cert"
CERT_HEADERS = (NGINX_HEADER, RFC9440_HEADER)


REVERIFY_AFTER = dt.timedelta(minutes=5)


class CertificateRejected(Exception):
    """The presented certificate is not one we trust; the message says why."""


@dataclass(frozen=True)
class ClientCertificate:
    certificate: x509.Certificate
    facts: CertificateFacts
    via: str  # "tls" or "proxy"


@functools.lru_cache(maxsize=4096)
def from_pem(pem: str, via: str) -> ClientCertificate:
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise CertificateRejected("the client certificate cannot be read") from None
    return ClientCertificate(certificate, certificate_facts(certificate), via)


@functools.lru_cache(maxsize=4096)
def from_header(name: str, value: str) -> ClientCertificate:
    if name == RFC9440_HEADER:
        body = value.strip()
        if not (body.startswith(":") and body.endswith(":")):
            raise CertificateRejected("Client-Cert must be an RFC 9440 byte sequence (:base64:)")
        try:
            certificate = x509.load_der_x509_certificate(base64.b64decode(body[1:-1]))
        except ValueError:
            raise CertificateRejected(
                "the Client-Cert header holds no readable certificate"
            ) from None
        return ClientCertificate(certificate, certificate_facts(certificate), "proxy")
    return from_pem(unquote(value), "proxy")


class ProxyAllowList:
    def __init__(self, entries: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(e, strict=False) for e in entries]

    def __contains__(self, address: object) -> bool:
        return self._allowed(str(address))

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one allow-list per process
    def _allowed(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


# Web-PKI rules, except that a client certificate need not carry a subjectAltName:
# national PKIs issue system certificates identified by their subject alone.
_EE_POLICY = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
)


class ChainVerifier:
    """Verifies client certificates against the configured CA bundle(s)."""

    def __init__(self, ca_files: Sequence[Path]) -> None:
        roots: list[x509.Certificate] = []
        for path in ca_files:
            roots += x509.load_pem_x509_certificates(path.read_bytes())
        self.roots = roots
        self._store = Store(roots) if roots else None
        # Certificates that verified, until when the verdict may be reused.
        self._verified: dict[str, dt.datetime] = {}

    def verify(self, client: ClientCertificate, now: dt.datetime | None = None) -> None:
        moment = now or dt.datetime.now(dt.UTC)
        until = self._verified.get(client.facts.sha256)
        if until is not None and moment < until:
            return
        self._verify(client, moment)
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[client.facts.sha256] = min(client.facts.not_after, moment + REVERIFY_AFTER)

    def _verify(self, client: ClientCertificate, moment: dt.datetime) -> None:
        facts = client.facts
        if facts.not_after <= moment:
            raise CertificateRejected(
                f"the client certificate expired on {facts.not_after:%Y-%m-%d}"
            )
        if facts.not_before > moment:
            raise CertificateRejected("the client certificate is not valid yet")
        if self._store is None:
            raise CertificateRejected("no client CA is configured")
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(moment)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_EE_POLICY
            )
            .build_client_verifier()
        )
        try:
            verifier.verify(client.certificate, [])
        except VerificationError:
            raise CertificateRejected(
                "the client certificate is not issued by a trusted CA"
            ) from None
