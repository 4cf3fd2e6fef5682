"""Signed receipts: every accepted write's answer carries proof a member state can keep of
what the registry accepted, verifiable offline with the registry's key set."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from joserfc.jwk import KeySet

from cdb_service.registry.formats.ndjson import export_lines
from cdb_service.security.receipts import ReceiptInvalid, verify_receipt
from cdb_service.services import Services
from tests.support import factories
from tests.support.api import Api

V1 = "/api/v1"
NDJSON = {"content-type": "application/x-ndjson"}


def _keys(services: Services) -> KeySet:
    return KeySet.import_key_set(services.signing.jwks())  # type: ignore[arg-type]


def _receipt(response: Any, services: Services) -> dict[str, Any]:
    assert response.status_code < 300, response.text
    payload = verify_receipt(response.headers["CDB-Receipt"], _keys(services))
    assert payload["revision"] == int(response.headers["CDB-Revision"])
    return payload


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def test_each_single_write_has_a_receipt_naming_what_it_wrote(
    api: Api, services: Services
) -> None:
    async with api.client("admin-de") as c:
        await c.post(f"{V1}/routing-parties", json=factories.routing_party())
        created = await c.post(f"{V1}/authorities", json=factories.authority())
        entry = created.json()
        made = _receipt(created, services)
        assert made["entries"] == [["authorities", entry["id"], 1, "create"]]
        assert made["entries_count"] == 1
        assert made["request_sha256"] == _sha256(created.request.content)
        assert made["actor"] == "admin-de"
        url, tag = f"{V1}/authorities/{entry['id']}", {"If-Match": created.headers["ETag"]}
        merge = tag | {"content-type": "application/merge-patch+json"}
        changed = await c.patch(url, json={"names": {"de": "Amtsgericht"}}, headers=merge)
        updated = _receipt(changed, services)["entries"]
        assert updated == [["authorities", entry["id"], 2, "update"]]
        gone = await c.delete(url, headers={"If-Match": changed.headers["ETag"]})
        deleted = _receipt(gone, services)
        assert deleted["entries"] == [["authorities", entry["id"], 3, "delete"]]
        assert deleted["request_sha256"] == _sha256(b"")
        # A refused write made no revision: no receipt.
        refused = await c.post(f"{V1}/authorities", json=factories.authority(kind="tribunal"))
        assert refused.status_code == 422 and "CDB-Receipt" not in refused.headers


async def test_an_import_receipt_verifies_offline_and_a_tampered_one_does_not(
    api: Api, services: Services, tmp_path: Path
) -> None:
    lines = [("authorities", factories.authority(code=f"DE:R{n:02d}")) for n in range(25)]
    batch = "".join(line + "\n" for line in export_lines(lines)).encode()
    async with api.client("admin-de") as c:
        dry = await c.post(f"{V1}/import", content=batch, params={"dry_run": "true"},
                           headers=NDJSON)  # fmt: skip
        assert dry.status_code == 200 and "CDB-Receipt" not in dry.headers
        applied = await c.post(f"{V1}/import", content=batch, headers=NDJSON)
    receipt = _receipt(applied, services)
    # Too many to list in a header: counted and digested, recomputable from the feed.
    assert receipt["entries_count"] == 25 and "entries" not in receipt
    assert receipt["request_sha256"] == _sha256(batch)

    (tmp_path / "jwks.json").write_text(json.dumps(services.signing.jwks()))
    (tmp_path / "batch.ndjson").write_bytes(batch)
    token = applied.headers["CDB-Receipt"]
    (tmp_path / "receipt.jws").write_text(token)

    def verify(receipt: str, request: str = "batch.ndjson") -> subprocess.CompletedProcess[str]:
        exe = str(Path(sys.executable).with_name("cdb-service"))
        return subprocess.run(
            [exe, "verify-receipt", receipt, "--jwks", str(tmp_path / "jwks.json"),
             "--request", str(tmp_path / request)],
            capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip

    ok = verify(str(tmp_path / "receipt.jws"))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["revision"] == receipt["revision"]
    header, payload, signature = token.split(".")
    forged = json.loads(_b64(payload)) | {"entries_count": 24}
    tampered = f"{header}.{_unb64(json.dumps(forged))}.{signature}"
    refused = verify(tampered)
    assert refused.returncode == 1
    assert refused.stderr.startswith("receipt does not verify: the signature does not verify")
    assert len(refused.stderr.strip().splitlines()) == 1
    (tmp_path / "other.ndjson").write_bytes(batch + b"\n")
    wrong_file = verify(str(tmp_path / "receipt.jws"), "other.ndjson")
    assert wrong_file.returncode == 1 and "request_sha256 differs" in wrong_file.stderr


def test_a_receipt_from_another_key_set_is_refused(tmp_path: Path) -> None:
    from cdb_service.security.signing_keys import SigningKeys

    ours = SigningKeys.create(tmp_path / "ours.json")
    theirs = SigningKeys.create(tmp_path / "theirs.json")
    token = theirs.sign({"revision": 1, "entries_count": 0}, typ="cdb-receipt+jws")
    try:
        verify_receipt(token, KeySet.import_key_set(ours.jwks()))  # type: ignore[arg-type]
    except ReceiptInvalid as refused:
        assert "does not verify" in str(refused)
    else:
        raise AssertionError("a receipt signed by another key set verified")
    extract = ours.sign({"revision": 1})  # an extract's signature is not a receipt
    try:
        verify_receipt(extract, KeySet.import_key_set(ours.jwks()))  # type: ignore[arg-type]
    except ReceiptInvalid as refused:
        assert "not a CDB receipt" in str(refused)
    else:
        raise AssertionError("an extract signature passed as a receipt")


def _b64(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _unb64(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


async def test_a_write_whose_receipt_cannot_be_made_still_answers_that_it_was_done(
    api: Api, services: Services, monkeypatch: Any
) -> None:
    from cdb_service.security.receipts import Receipts

    async def broken(*_: Any) -> str:
        raise ConnectionResetError("the database went away after the commit")

    monkeypatch.setattr(Receipts, "issue", broken)
    async with api.client("admin-de") as c:
        await c.post(f"{V1}/routing-parties", json=factories.routing_party())
        created = await c.post(f"{V1}/authorities", json=factories.authority())
    assert created.status_code == 201, created.text
    assert "CDB-Receipt" not in created.headers and created.headers["CDB-Revision"] == "2"
    assert await services.reads.head() == 2
