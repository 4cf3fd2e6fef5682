"""Truststores as access points load them: JKS (connector 4.x accepts nothing else, and
Domibus's default) and PKCS#12, holding trusted certificates only (no private key ever
leaves the registry: it holds none).

A JKS password protects the file's integrity only (a keyed SHA-1 digest): the
certificates in it are public and stored in clear. The PKCS#12 form is encrypted and
MACed with it. The password is the operator's choice and is never kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jks
from cryptography import x509
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

MAX_PASSWORD = 128  # characters; Java's own tools take any length, nobody types more


@dataclass(frozen=True)
class Trusted:
    """One trusted-certificate entry: its alias (lower case, as JKS keeps it) and DER."""

    alias: str
    der: bytes


def jks_store(entries: Sequence[Trusted], password: str, timestamp_ms: int) -> bytes:
    """A JKS keystore of trusted certificates. `timestamp_ms` is every entry's creation
    date (the package's effective_from), so the same content makes the same file."""
    made = []
    for entry in entries:
        trusted = jks.TrustedCertEntry.new(entry.alias, entry.der)
        trusted.timestamp = timestamp_ms
        made.append(trusted)
    store = jks.KeyStore.new("jks", made)
    return bytes(store.saves(password))


def pkcs12_store(entries: Sequence[Trusted], password: str) -> bytes | None:
    """A PKCS#12 truststore whose entries Java's keytool lists as trustedCertEntry; None
    for no entries (PKCS#12 writers want at least one: the package leaves it out)."""
    if not entries:
        return None
    certificates = [
        pkcs12.PKCS12Certificate(x509.load_der_x509_certificate(e.der), e.alias.encode())
        for e in entries
    ]
    encryption = BestAvailableEncryption(password.encode("utf-8"))
    return pkcs12.serialize_java_truststore(certificates, encryption)
