"""Configuration packages: what an access point imports, as the CMT's download today.

A package is a ZIP for one routing party (its Domibus party name), as of a moment:

    pmode.xml                 the Domibus PMode whose own party is the party
    truststore.jks / .p12     the gateway's (Domibus's) truststore: every accepted AS4
                              certificate (signing and encryption) of the parties in it
    connectorstore.jks / .p12 the connector's store: every accepted signing certificate
                              (an empty store comes as JKS only: PKCS#12 wants one entry)
    manifest.json             party, owner, revision, effective_from, the files' SHA-256,
                              the certificates with their windows and where they are
    manifest.jws              a detached JWS (RFC 7515 appendix F) over manifest.json,
                              made with the registry's signing keys (the JWKS has x5c)

Which certificate is where follows the rollover windows (`routing_parties/rollover.py`):
a certificate is in the stores from `accept_from` until `accept_until`; the one *used*
(the latest `use_from` passed, encryption before signing) has the party's name as its
alias, which is the alias Domibus looks a party's certificate up by; the others are
`<name>_<first 8 hex of its SHA-256>`.

The content (PMode, aliases, windows) is deterministic; the stores' bytes are not (the
PKCS#12 salts are random), so a package is named by `package_digest`, the digest of its
content: the ETag, and what an agent acknowledges.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from cdb_service.distribution import pmode, stores
from cdb_service.distribution.routing_table import RoutingTable
from cdb_service.kernel.calendar import BRUSSELS
from cdb_service.security.signing_keys import SigningKeys

PMODE = "pmode.xml"
TRUSTSTORE = "truststore"  # the gateway's: AS4 signing and encryption certificates
CONNECTORSTORE = "connectorstore"  # the connector's: signing certificates
MANIFEST = "manifest.json"
SIGNATURE = "manifest.jws"
JWS_TYPE = "cdb-package-manifest+jws"
STORE_USES = {TRUSTSTORE: ("signing", "encryption"), CONNECTORSTORE: ("signing",)}
USE_ORDER = ("encryption", "signing")  # which used certificate takes the party's alias
FOREVER = dt.datetime.max.replace(tzinfo=dt.UTC)
EPOCH = dt.datetime(1980, 1, 1, tzinfo=dt.UTC)  # the earliest a ZIP entry can say


class NoSuchParty(LookupError):
    """The party is not a routing party valid on the package's day."""


class Inexpressible(ValueError):
    """The party itself cannot be expressed as a valid PMode (its owner must correct it)."""


@dataclass(frozen=True)
class Scope:
    """Whose package, and which other parties it carries.

    By default the parties the party exchanges messages with (those offering a service
    it offers, and itself); `owner` narrows them to one owner's parties; `whole_network`
    takes every party, as the CMT's download does.
    """

    party: str
    owner: str | None = None
    whole_network: bool = False

    def select(self, parties: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        own = next((p for p in parties if p["name"] == self.party), None)
        if own is None:
            raise NoSuchParty(self.party)
        if self.whole_network:
            return list(parties)
        if self.owner is not None:
            return [p for p in parties if p is own or p["owner"] == self.owner]
        return [p for p in parties if p is own or exchanges_with(own, p)]


def _services(party: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {(s["service"], s.get("service_type")) for s in party["services"]}


def exchanges_with(party: dict[str, Any], other: dict[str, Any]) -> bool:
    """Does `party`'s default package carry `other`: itself, or a party offering a
    service it offers (what `Scope.select` takes, and what rollouts ask of a change)."""
    return party["name"] == other["name"] or bool(_services(party) & _services(other))


@dataclass(frozen=True)
class Held:
    """A certificate of a party, with its window made whole (defaults: its validity)."""

    party: str
    use: str
    sha256: str
    subject: str
    der: bytes
    accept_from: dt.datetime
    use_from: dt.datetime
    accept_until: dt.datetime

    def accepted(self, at: dt.datetime) -> bool:
        return self.accept_from <= at < self.accept_until

    def boundaries(self) -> tuple[dt.datetime, ...]:
        return (self.accept_from, self.use_from, self.accept_until)


def _instant(value: Any, default: dt.datetime) -> dt.datetime:
    if not value:
        return default
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def held(party: dict[str, Any]) -> list[Held]:
    """The party's certificates with whole windows (a PEM that does not parse is left out:
    the registry refuses one when it is written)."""
    out = []
    for c in party["certificates"]:
        try:
            certificate = x509.load_pem_x509_certificate(str(c.get("pem")).encode())
        except ValueError:
            continue
        accept_from = _instant(c.get("accept_from"), certificate.not_valid_before_utc)
        out.append(Held(
            party["name"], str(c.get("use")), str(c.get("sha256")), str(c.get("subject")),
            _der(certificate), accept_from, _instant(c.get("use_from"), accept_from),
            _instant(c.get("accept_until"), certificate.not_valid_after_utc),
        ))  # fmt: skip
    return out


def _der(certificate: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return certificate.public_bytes(Encoding.DER)


def used(certificates: Iterable[Held], at: dt.datetime) -> dict[str, Held]:
    """Per use, the certificate in use at `at`: accepted, with the latest use_from passed."""
    chosen: dict[str, Held] = {}
    for c in certificates:
        later = c.use not in chosen or (c.use_from, c.sha256) > (
            chosen[c.use].use_from,
            chosen[c.use].sha256,
        )
        if c.accepted(at) and c.use_from <= at and later:
            chosen[c.use] = c
    return chosen


def day_start(day: dt.date) -> dt.datetime:
    """The first instant of a (Brussels) day, in UTC: when a validity date begins."""
    return dt.datetime.combine(day, dt.time(), BRUSSELS).astimezone(dt.UTC)


def boundaries(parties: Iterable[dict[str, Any]]) -> set[dt.datetime]:
    """Every instant at which these parties' package may change: the certificates'
    window edges, and the first and last days of the parties' validity."""
    edges: set[dt.datetime] = set()
    for party in parties:
        for c in held(party):
            edges.update(e for e in c.boundaries() if e != FOREVER)
        for key, after in (("valid_from", 0), ("valid_to", 1)):
            if party.get(key):
                day = dt.date.fromisoformat(str(party[key])[:10]) + dt.timedelta(days=after)
                edges.add(day_start(day))
    return edges


@dataclass
class Content:
    """What a package holds, deterministic: built once, then written with a password."""

    scope: Scope
    owner: str
    revision: int
    effective_from: dt.datetime | None
    pmode: bytes
    certificates: list[dict[str, Any]]
    entries: dict[str, list[stores.Trusted]]
    omitted: list[tuple[str, str]] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return package_digest(self.described())

    def described(self) -> dict[str, Any]:
        """The part of the manifest that names the content (not the revision or when)."""
        return {
            "party": self.scope.party,
            "owner": self.owner,
            "scope": {"owner": self.scope.owner, "whole_network": self.scope.whole_network},
            "pmode_sha256": hashlib.sha256(self.pmode).hexdigest(),
            "certificates": self.certificates,
            "omitted": [{"party": name, "why": why} for name, why in self.omitted],
        }


def package_digest(described: dict[str, Any]) -> str:
    """The digest that names a package: of its content (`Content.described`, the same as
    a manifest's `content`), not of its bytes. Two packages with the same digest carry
    the same PMode and the same certificates under the same aliases; an agent that has
    applied one need not apply the other. Its ETag, and what an access point
    acknowledges."""
    canonical = json.dumps(described, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def content(table: RoutingTable, scope: Scope, at: dt.datetime) -> Content:
    """The package of `scope` as of `at`, from the routing table of `at`'s day."""
    chosen = scope.select(table.parties)
    own = next(p for p in chosen if p["name"] == scope.party)
    why = pmode.inexpressible(own)
    if why is not None:
        raise Inexpressible(why)
    built = pmode.build(chosen, scope.party)
    left_out = {name for name, _ in built.omitted}
    kept = [p for p in chosen if p["name"] not in left_out]
    edges = [e for e in boundaries(kept) if e <= at]
    certificates: list[dict[str, Any]] = []
    entries: dict[str, list[stores.Trusted]] = {TRUSTSTORE: [], CONNECTORSTORE: []}
    for party in kept:
        mine = held(party)
        in_use = used(mine, at)
        named = next((in_use[u] for u in USE_ORDER if u in in_use), None)
        for c in mine:
            alias = party["name"].lower() if named and c.sha256 == named.sha256 else (
                f"{party['name'].lower()}_{c.sha256.replace(':', '').lower()[:8]}")  # fmt: skip
            inside = [s for s, uses in STORE_USES.items() if c.use in uses and c.accepted(at)]
            for store in inside:
                if all(e.der != c.der for e in entries[store]):
                    entries[store].append(stores.Trusted(alias, c.der))
            state = "used" if in_use.get(c.use) == c else (
                "accepted" if c.accepted(at) else "not-accepted")  # fmt: skip
            certificates.append({
                "party": party["name"], "use": c.use, "sha256": c.sha256,
                "subject": c.subject, "state": state,
                "alias": alias if inside else None, "stores": inside,
                "accept_from": c.accept_from.isoformat(), "use_from": c.use_from.isoformat(),
                "accept_until": c.accept_until.isoformat(),
            })  # fmt: skip
    return Content(scope, own["owner"], table.revision, max(edges, default=None), built.xml,
                   certificates, entries, built.omitted)  # fmt: skip


@dataclass(frozen=True)
class Package:
    body: bytes  # the ZIP
    manifest: dict[str, Any]
    digest: str


def write(made: Content, keys: SigningKeys, password: str, generated_at: dt.datetime) -> Package:
    """The ZIP: the PMode, the stores in both forms, the manifest and its signature."""
    stamp = made.effective_from or EPOCH
    millis = int(max(stamp, EPOCH).timestamp() * 1000)
    files: dict[str, bytes] = {PMODE: made.pmode}
    for store in (TRUSTSTORE, CONNECTORSTORE):
        entries = made.entries[store]
        files[f"{store}.jks"] = stores.jks_store(entries, password, millis)
        p12 = stores.pkcs12_store(entries, password)
        if p12 is not None:  # an empty store is a JKS only
            files[f"{store}.p12"] = p12
    described = made.described()
    digest = package_digest(described)
    manifest = {
        "party": made.scope.party,
        "owner": made.owner,
        "revision": made.revision,
        "effective_from": made.effective_from.isoformat() if made.effective_from else None,
        "generated_at": generated_at.isoformat(),
        "package_digest": digest,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in files.items()
        },
        "stores": {
            store: {"type": ["JKS", "PKCS12"], "aliases": [e.alias for e in entries]}
            for store, entries in made.entries.items()
        },
        "content": described,
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    files[MANIFEST] = manifest_bytes
    files[SIGNATURE] = keys.sign_detached(manifest_bytes, JWS_TYPE).encode("ascii") + b"\n"
    return Package(_zip(files, max(stamp, EPOCH)), manifest, digest)


def _zip(files: dict[str, bytes], stamp: dt.datetime) -> bytes:
    out = io.BytesIO()
    when = stamp.astimezone(dt.UTC).timetuple()[:6]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=when)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return out.getvalue()
