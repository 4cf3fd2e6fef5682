"""`GET /packages/{party}` (issue 28 item 2): the ZIP an access point imports, read back by
Java's own keytool, its PMode valid against Domibus's schema, its manifest signed; the
package follows the certificates' windows (`at`, `next`); tampering is refused offline
by `cdb-service verify-package`; the routing table carries a detached signature."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc.jwk import ECKey, KeySet
from lxml import etree

from cdb_service.distribution.package_check import verify_package
from cdb_service.security.signing_keys import SigningKeys, verify_detached
from cdb_service.seeding.load import seed
from cdb_service.services import Services
from tests.distribution.test_routing_table import XSD
from tests.support import factories
from tests.support.api import Api, As

V1 = "/api/v1"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
FILES = {"pmode.xml", "truststore.jks", "truststore.p12", "connectorstore.jks",
         "connectorstore.p12", "manifest.json", "manifest.jws"}  # fmt: skip
NO_KEYTOOL = "keytool is not installed (Debian: openjdk-17-jre-headless; `make test` installs it)"


def _at(days: float) -> str:
    return (NOW + dt.timedelta(days=days)).isoformat()


def _sha(pem: str) -> str:
    return (
        x509.load_pem_x509_certificate(pem.encode())
        .fingerprint(
            __import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()
        )
        .hex()
    )


@pytest.fixture(scope="module")
def pmode_schema() -> etree.XMLSchema:
    if not XSD.is_file():
        pytest.skip(f"the Domibus PMode schema is not at {XSD} (set CDB_SHARED_DIR)")
    return etree.XMLSchema(etree.parse(str(XSD)))


def keytool(path: Path, kind: str, password: str) -> dict[str, str]:
    """alias → SHA-256 fingerprint (lower-case hex), as Java's keytool lists the store."""
    done = subprocess.run(
        ["keytool", "-list", "-keystore", str(path), "-storetype", kind, "-storepass", password],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    entry = r"^(\S+), .+, trustedCertEntry,\s*\nCertificate fingerprint \(SHA-256\): ([0-9A-F:]+)"
    found = re.findall(entry, done.stdout, re.M)
    count = re.search(r"contains (\d+) entr", done.stdout)
    assert count is not None and len(found) == int(count[1]), done.stdout
    return {alias: fp.replace(":", "").lower() for alias, fp in found}


class Rollover:
    """FR's access point in mid-rollover, and DE's and ES's with one certificate each."""

    def __init__(self) -> None:
        self.old = factories.certificate_pem(60, "fr-ap-2026")
        self.new = factories.certificate_pem(400, "fr-ap-2027")
        self.de = factories.certificate_pem(300, "de-ap")
        self.es = factories.certificate_pem(300, "es-ap")

    async def create(self, c_fr: As, c_de: As) -> None:
        fr = factories.routing_party(owner="FR", name="fr-ap", certificates=[
            {"use": "encryption", "pem": self.old, "accept_until": _at(20)},
            {"use": "encryption", "pem": self.new, "accept_from": _at(0), "use_from": _at(10)},
        ])  # fmt: skip
        de = factories.routing_party(owner="DE", name="de-ap", certificates=[
            {"use": "signing", "pem": self.de}, {"use": "encryption", "pem": self.de}])  # fmt: skip
        # ES offers another service only: outside FR's default scope.
        es = factories.routing_party(owner="DE", name="de-other", certificates=[
            {"use": "encryption", "pem": self.es}],
            services=[{"service": "urn:other", "actions": ["Other"]}])  # fmt: skip
        for client, body in ((c_fr, fr), (c_de, de), (c_de, es)):
            made = await client.post(f"{V1}/routing-parties", json=body)
            assert made.status_code == 201, made.text


def _unzip(body: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


async def _jwks(api: Api) -> KeySet:
    async with api.client() as c:
        return KeySet.import_key_set((await c.get("/.well-known/jwks.json")).json())


@pytest.mark.skipif(shutil.which("keytool") is None, reason=NO_KEYTOOL)
async def test_a_package_follows_the_windows_and_reads_back_in_keytool(
    api: Api, tmp_path: Path, pmode_schema: etree.XMLSchema
) -> None:
    setup = Rollover()
    async with api.client("admin-fr") as fr, api.client("admin-de") as de:
        await setup.create(fr, de)
    old, new, de_sha = _sha(setup.old), _sha(setup.new), _sha(setup.de)
    # Any reader takes any party's package, as the routing table (the material is public).
    async with api.client("admin-de") as c:
        now = await c.get(f"{V1}/packages/fr-ap", params={"store_password": "s3cret-pw"})
        assert now.status_code == 200, now.text
        assert now.headers["content-type"] == "application/zip"
        disposition = f'attachment; filename="fr-ap-{NOW.date().isoformat()}.zip"'
        assert now.headers["content-disposition"] == disposition
        tag = now.headers["etag"]
        again = await c.get(f"{V1}/packages/fr-ap", headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.headers["etag"] == tag
        later = await c.get(f"{V1}/packages/fr-ap", params={"at": _at(15)})
        after = await c.get(
            f"{V1}/packages/fr-ap", params={"at": (NOW + dt.timedelta(days=25)).date().isoformat()}
        )
        ahead = await c.get(f"{V1}/packages/fr-ap/next")
    files = _unzip(now.content)
    assert set(files) == FILES
    document = etree.fromstring(files["pmode.xml"])
    assert pmode_schema.validate(document), str(pmode_schema.error_log)
    assert document.get("party") == "fr-ap"
    # Default scope: the parties FR exchanges messages with, not DE's other-service one.
    assert sorted(p.get("name") for p in document.iter("party")) == ["de-ap", "fr-ap"]
    manifest = json.loads(files["manifest.json"])
    assert manifest["party"] == "fr-ap" and manifest["owner"] == "FR"
    assert (
        manifest["revision"] == 3
        and manifest["package_digest"] == now.headers["cdb-package-digest"]
    )
    for name, data in files.items():
        if name not in ("manifest.json", "manifest.jws"):
            assert manifest["files"][name]["sha256"] == hashlib.sha256(data).hexdigest()
    windows = {c["sha256"].replace(":", "").lower(): c for c in manifest["content"]["certificates"]}
    assert windows[new]["state"] == "accepted" and windows[new]["use_from"].startswith(_at(10)[:16])
    assert windows[old]["state"] == "used" and windows[old]["accept_until"].startswith(_at(20)[:16])
    assert verify_package(now.content, await _jwks(api)).ok

    # Java reads every store with the password chosen; the used certificate has the
    # party's name (Domibus's alias), the accepted successor its own.
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    gateway = {"fr-ap": old, f"fr-ap_{new[:8]}": new, "de-ap": de_sha}
    for kind, suffix in (("JKS", "jks"), ("PKCS12", "p12")):
        assert keytool(tmp_path / f"truststore.{suffix}", kind, "s3cret-pw") == gateway
        # The connector's store: signing certificates only (DE's).
        assert keytool(tmp_path / f"connectorstore.{suffix}", kind, "s3cret-pw") == {
            "de-ap": de_sha
        }

    # Day 15: the new certificate is used, the old one still accepted.
    assert later.status_code == 200, later.text
    later_files = _unzip(later.content)
    (tmp_path / "later.jks").write_bytes(later_files["truststore.jks"])
    assert keytool(tmp_path / "later.jks", "JKS", "changeit") == {
        "fr-ap": new, f"fr-ap_{old[:8]}": old, "de-ap": de_sha}  # fmt: skip
    assert json.loads(later_files["manifest.json"])["effective_from"].startswith(_at(10)[:16])
    # Day 25: the old one is no longer accepted.
    (tmp_path / "after.p12").write_bytes(_unzip(after.content)["truststore.p12"])
    assert keytool(tmp_path / "after.p12", "PKCS12", "changeit") == {"fr-ap": new, "de-ap": de_sha}
    # The next package is the switch at use_from, and it is the one of day 15.
    assert ahead.status_code == 200, ahead.text
    assert ahead.headers["etag"] == later.headers["etag"] != tag
    assert json.loads(_unzip(ahead.content)["manifest.json"])["effective_from"].startswith(
        _at(10)[:16]
    )


async def test_scope_whole_network_and_owner(api: Api) -> None:
    setup = Rollover()
    async with api.client("admin-fr") as fr, api.client("admin-de") as de:
        await setup.create(fr, de)
    async with api.client("reader") as c:
        whole = await c.get(f"{V1}/packages/fr-ap", params={"whole_network": "true"})
        owned = await c.get(f"{V1}/packages/de-ap", params={"owner": "fr"})
    names = [
        p.get("name") for p in etree.fromstring(_unzip(whole.content)["pmode.xml"]).iter("party")
    ]
    assert names == ["de-ap", "de-other", "fr-ap"]
    assert whole.headers["etag"] != owned.headers["etag"]
    owned_names = [
        p.get("name") for p in etree.fromstring(_unzip(owned.content)["pmode.xml"]).iter("party")
    ]
    assert owned_names == ["de-ap", "fr-ap"]


async def test_bad_input_is_a_problem_naming_the_field(api: Api) -> None:
    setup = Rollover()
    async with api.client("admin-fr") as fr, api.client("admin-de") as de:
        await setup.create(fr, de)
        alone = [{"service": "urn:bare", "actions": ["A"]}]
        bare = factories.routing_party(owner="DE", name="de-bare", services=alone)
        assert (await de.post(f"{V1}/routing-parties", json=bare)).status_code == 201
    async with api.client("reader") as c:
        for params, field in (
            ({"at": "2027-02-30"}, "at"),
            ({"at": "tomorrow"}, "at"),
            ({"at": "1870-01-01"}, "at"),
            ({"store_password": "x" * 10_000}, "store_password"),
            ({"store_password": "short"}, "store_password"),
            ({"owner": "XX"}, "owner"),
            ({"owner": "DE", "whole_network": "true"}, "owner"),
        ):
            answer = await c.get(f"{V1}/packages/fr-ap", params=params)
            assert answer.status_code in (400, 414, 422), (params, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
            if answer.status_code == 422:
                assert answer.json()["errors"][0]["loc"][-1] == field, answer.text
            assert "x" * 100 not in answer.text  # a password is never echoed
        missing = await c.get(f"{V1}/packages/nl-ap")
        assert missing.status_code == 404 and "nl-ap" in missing.json()["detail"]
        # FR's rollover is a change ahead for DE's access point too (it trusts FR's
        # certificates); a party with no certificate and no partner has nothing ahead,
        # and its package holds empty stores.
        assert (await c.get(f"{V1}/packages/de-ap/next")).status_code == 200
        assert (await c.get(f"{V1}/packages/de-bare")).status_code == 200
        none_ahead = await c.get(f"{V1}/packages/de-bare/next")
        assert none_ahead.status_code == 404, none_ahead.text
        assert none_ahead.headers["content-type"].startswith("application/problem+json")
    async with api.client() as anonymous:
        refused = await anonymous.get(f"{V1}/packages/fr-ap")
    assert refused.status_code == 401


async def test_verify_package_refuses_each_tampering_naming_the_file(
    api: Api, tmp_path: Path
) -> None:
    setup = Rollover()
    async with api.client("admin-fr") as fr, api.client("admin-de") as de:
        await setup.create(fr, de)
    async with api.client("reader") as c:
        body = (await c.get(f"{V1}/packages/fr-ap")).content
        jwks = (await c.get("/.well-known/jwks.json")).json()
    jwks_file, wrong_file = tmp_path / "jwks.json", tmp_path / "wrong.json"
    jwks_file.write_text(json.dumps(jwks))
    other = SigningKeys.create(tmp_path / "other-keys.json")
    wrong_file.write_text(json.dumps(other.jwks()))
    # The right key, published with a certificate of another key.
    swapped_file = tmp_path / "swapped.json"
    swapped = [k | {"x5c": other.jwks()["keys"][0]["x5c"]} for k in jwks["keys"]]
    swapped_file.write_text(json.dumps({"keys": swapped}))
    files = _unzip(body)

    def rezip(changed: dict[str, bytes], name: str) -> Path:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for member, data in (files | changed).items():
                archive.writestr(member, data)
        path = tmp_path / name
        path.write_bytes(out.getvalue())
        return path

    def one_byte(data: bytes, at: int) -> bytes:
        return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]

    good = tmp_path / "good.zip"
    good.write_bytes(body)
    cases = [
        (rezip({"pmode.xml": one_byte(files["pmode.xml"], 200)}, "p.zip"), jwks_file, "pmode.xml"),
        (rezip({"manifest.json": one_byte(files["manifest.json"], 40)}, "m.zip"), jwks_file,
         "manifest.json"),
        (rezip({"truststore.jks": one_byte(files["truststore.jks"], 30)}, "s.zip"), jwks_file,
         "truststore.jks"),
        (good, wrong_file, "manifest.json"),
        (good, swapped_file, "manifest.json"),
    ]  # fmt: skip
    exe = str(Path(sys.executable).with_name("cdb-service"))
    env = os.environ | {"CDB_LOG_LEVEL": "WARNING"}

    async def run(path: Path, keys: Path) -> subprocess.CompletedProcess[str]:
        command = [exe, "verify-package", str(path), "--jwks", str(keys)]
        return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True,
                                       env=env, timeout=120)  # fmt: skip

    ok = await run(good, jwks_file)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["party"] == "fr-ap"
    for path, keys, named in cases:
        refused = await run(path, keys)
        assert refused.returncode != 0, (path, refused.stdout)
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and f"{named}:" in lines[0], refused.stderr
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(body[: len(body) // 2])
    broken = await run(truncated, jwks_file)
    assert broken.returncode != 0 and len(broken.stderr.strip().splitlines()) == 1


async def test_the_routing_table_is_signed_and_the_keys_carry_a_certificate(api: Api) -> None:
    setup = Rollover()
    async with api.client("admin-fr") as fr, api.client("admin-de") as de:
        await setup.create(fr, de)
    key_set = await _jwks(api)
    async with api.client("reader") as c:
        table = await c.get(f"{V1}/routing-table")
        xml = await c.get(f"{V1}/routing-table", params={"format": "pmode", "party": "fr-ap"})
        unchanged = await c.get(
            f"{V1}/routing-table", headers={"If-None-Match": table.headers["etag"]}
        )
    for answer in (table, xml):
        assert answer.status_code == 200, answer.text
        token = answer.headers["cdb-signature"]
        assert token.count(".") == 2 and ".." in token  # detached: header..signature
        assert verify_detached(token, answer.content, key_set)["typ"] == "cdb-routing-table+jws"
        with pytest.raises(Exception):  # noqa: B017 - joserfc's BadSignatureError
            verify_detached(token, answer.content.replace(b"fr-ap", b"fr-aq"), key_set)
    assert unchanged.status_code == 304
    # Each listed key has its certificate (x5c), which holds that very key.
    for key in key_set.keys:
        assert isinstance(key, ECKey)
        (chain,) = [key.as_dict(private=False)["x5c"]]
        cert = x509.load_der_x509_certificate(base64.b64decode(chain[0]))
        mine = key.public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        assert (
            cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == mine
        )


def test_a_key_set_made_before_certificates_gets_one_and_keeps_its_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys = SigningKeys.create(path)
    data = json.loads(path.read_text())
    for item in data["keys"]:
        item.pop("x5c")
    path.write_text(json.dumps(data))
    reloaded = SigningKeys.load(path, create=False)
    assert reloaded.current.kid == keys.current.kid
    assert "x5c" in reloaded.jwks()["keys"][0]
    # Saved back: every worker publishes the same certificate.
    assert SigningKeys.load(path, create=False).jwks() == reloaded.jwks()


@pytest.mark.postgres_only
async def test_package_size_and_time_of_the_seed_network(
    api: Api, services: Services, pmode_schema: etree.XMLSchema
) -> None:
    """The figures of the closing note (`-s` prints them): the package of DE's access point
    with the whole network (28 parties), and with its own owner's parties only (one)."""
    await seed(services.batches, services.sessions)
    scopes = {"whole network": ({"whole_network": "true"}, 28), "one party": ({"owner": "DE"}, 1)}
    async with api.client("reader") as c:
        for label, (params, parties) in scopes.items():
            timings = []
            for _ in range(5):
                started = time.perf_counter()
                answer = await c.get(f"{V1}/packages/de-justice-ap", params=params)
                timings.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
            files = _unzip(answer.content)
            document = etree.fromstring(files["pmode.xml"])
            assert pmode_schema.validate(document), str(pmode_schema.error_log)
            assert len(list(document.iter("party"))) == parties
            timings.sort()
            print(f"package of de-justice-ap, {label} ({parties} parties): slowest "
                  f"{timings[-1] * 1000:.0f} ms, median {timings[2] * 1000:.0f} ms, "
                  f"{len(answer.content)} bytes zipped, "
                  f"{sum(len(d) for d in files.values())} bytes unzipped")  # fmt: skip
