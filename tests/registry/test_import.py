"""National batch import: whole or nothing, replayable, with a dry run that tells the truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cdb_service.registry.formats.ndjson import export_lines
from cdb_service.registry.kinds import KINDS
from cdb_service.seeding.load import seed
from cdb_service.services import Services
from tests.support import factories
from tests.support.api import Api

IMPORT = "/api/v1/import"


def _ndjson(lines: list[tuple[str, dict[str, Any]]]) -> bytes:
    return "".join(line + "\n" for line in export_lines(lines)).encode()


async def _post(api: Api, who: str, body: bytes, **params: Any) -> Any:
    async with api.client(who) as c:
        return await c.post(
            IMPORT, content=body, params=params, headers={"content-type": "application/x-ndjson"}
        )


async def test_exported_state_reimports_as_a_no_op(api: Api, services: Services) -> None:
    await seed(services.batches, services.sessions)
    exported = await services.reads.documents(KINDS.values(), "DE")
    assert {kind for kind, _ in exported} >= {"authorities", "jurisdiction-criteria"}
    response = await _post(api, "admin-de", _ndjson(exported))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["revision"] is None
    assert body["counts"] == {"created": 0, "updated": 0, "deleted": 0, "unchanged": len(exported)}
    assert await services.reads.head() == 1


async def test_one_bad_line_in_5000_writes_nothing_and_is_named(
    api: Api, services: Services
) -> None:
    lines = [("authorities", factories.authority(code=f"DE:B{n:04d}")) for n in range(5000)]
    lines[3210] = ("authorities", factories.authority(code="DE:B3210", kind="tribunal"))
    response = await _post(api, "admin-de", _ndjson(lines))
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [e["loc"] for e in errors] == [["line", 3211, "kind"]]
    assert await services.reads.head() == 0
    assert (await services.reads.collection(KINDS["authorities"])).items == []


async def test_unparseable_and_foreign_lines_are_reported_each(api: Api) -> None:
    good = _ndjson([("authorities", factories.authority())])
    foreign = _ndjson([("authorities", factories.authority(owner="FR", code="FR:X"))])
    body = good + b"{oops\n" + foreign
    body += b'{"kind": "planets", "document": {}}\n'
    response = await _post(api, "admin-de", body)
    assert response.status_code == 422
    locs = [e["loc"] for e in response.json()["errors"]]
    assert locs == [["line", 2], ["line", 3, "owner"], ["line", 4, "kind"]]


async def test_dry_run_diff_equals_the_real_run_and_replace_removes_what_is_gone(
    api: Api, services: Services
) -> None:
    first = [("authorities", factories.authority(code=f"DE:R{n}")) for n in range(4)]
    assert (await _post(api, "admin-de", _ndjson(first))).json()["revision"] == 1
    second = [("authorities", factories.authority(code="DE:R0", names={"en": "Renamed"})),
              ("authorities", factories.authority(code="DE:R1")),
              ("authorities", factories.authority(code="DE:R9"))]  # fmt: skip
    dry = (await _post(api, "admin-de", _ndjson(second), mode="replace", dry_run="true")).json()
    assert dry["revision"] is None and dry["dry_run"] is True
    assert await services.reads.head() == 1
    real = (await _post(api, "admin-de", _ndjson(second), mode="replace")).json()
    assert real["revision"] == 2

    def shape(result: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
        return sorted((c["key"], c["change"], c["fields"]) for c in result["changes"])

    assert shape(dry) == shape(real) == [
        ("DE:R0", "updated", ["names"]), ("DE:R2", "deleted", []),
        ("DE:R3", "deleted", []), ("DE:R9", "created", []),
    ]  # fmt: skip
    assert dry["counts"] == real["counts"] == {"created": 1, "updated": 1, "deleted": 2,
                                               "unchanged": 1}  # fmt: skip
    codes = sorted(a["code"] for a in (await services.reads.collection(KINDS["authorities"])).items)
    assert codes == ["DE:R0", "DE:R1", "DE:R9"]


async def test_an_administrator_imports_for_its_own_owner_only(
    api: Api, services: Services
) -> None:
    lines = _ndjson([("authorities", factories.authority(owner="FR", code="FR:A"))])
    response = await _post(api, "admin-de", lines, owner="FR")
    assert response.status_code == 403
    assert await services.reads.head() == 0


async def test_certificate_rotation_replaces_it_everywhere_in_one_revision(
    api: Api, services: Services
) -> None:
    old, renewed = factories.certificate_pem(30, "old"), factories.certificate_pem(400, "new")
    async with api.client("admin-de") as c:
        parties = []
        for name in ("de-ap-1", "de-ap-2"):
            body = factories.routing_party(name=name, certificates=[
                {"use": "signing", "pem": old}, {"use": "encryption", "pem": old}])  # fmt: skip
            parties.append((await c.post("/api/v1/routing-parties", json=body)).json())
        sha = parties[0]["certificates"][0]["sha256"]
        rotated = await c.post(
            "/api/v1/routing-parties/certificate-rotation",
            json={"replaces_sha256": sha, "pem": renewed},
        )
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["revision"] == 3
        after = [(await c.get(f"/api/v1/routing-parties/{p['id']}")).json() for p in parties]
        # and back, with the fingerprint as `openssl x509 -fingerprint -sha256` prints it
        new_sha = after[0]["certificates"][0]["sha256"]
        colons = ":".join(new_sha[i : i + 2] for i in range(0, 64, 2)).upper()
        back = await c.post(
            "/api/v1/routing-parties/certificate-rotation",
            json={"replaces_sha256": f"sha256 Fingerprint={colons}", "pem": old},
        )
        assert back.status_code == 200, back.text
        # as a browser shows it (pairs and spaces, lowercase): the same certificate again
        spaced = " ".join(sha[i : i + 2] for i in range(0, 64, 2))
        again = await c.post(
            "/api/v1/routing-parties/certificate-rotation",
            json={"replaces_sha256": spaced, "pem": renewed},
        )
        assert again.status_code == 200, again.text
        assert sorted(again.json()["routing_parties"]) == sorted(p["id"] for p in parties)
        short = await c.post(
            "/api/v1/routing-parties/certificate-rotation",
            json={"replaces_sha256": colons[:-3], "pem": renewed},
        )
        assert short.status_code == 422
        assert short.json()["errors"][0]["loc"] == ["replaces_sha256"]
        unknown = await c.post(
            "/api/v1/routing-parties/certificate-rotation",
            json={"replaces_sha256": "0" * 64, "pem": renewed},
        )
        garbage = await c.post(
            "/api/v1/routing-parties/certificate-rotation",
            json={"replaces_sha256": sha, "pem": "not a certificate"},
        )
    assert unknown.status_code == 404
    assert garbage.status_code == 422
    assert garbage.json()["errors"][0]["loc"] == ["pem"]
    for party in after:
        assert [c["use"] for c in party["certificates"]] == ["signing", "encryption"]
        assert {c["sha256"] for c in party["certificates"]} != {sha}
        assert all(c["subject"].startswith("CN=new") for c in party["certificates"])


def test_import_command_reports_and_dry_runs(tmp_path: Path) -> None:
    env = os.environ | {"CDB_DATA_DIR": str(tmp_path), "CDB_LOG_LEVEL": "WARNING"}
    env.pop("CDB_DATABASE_URL", None)
    exe = str(Path(sys.executable).with_name("cdb-service"))
    subprocess.run([exe, "migrate"], env=env, check=True, capture_output=True)
    batch = tmp_path / "de.ndjson"
    batch.write_bytes(_ndjson([("authorities", factories.authority(code=f"DE:C{n}"))
                               for n in range(3)]))  # fmt: skip
    dry = subprocess.run([exe, "import", str(batch), "--owner", "DE", "--dry-run"], env=env,
                         check=True, capture_output=True, text=True)  # fmt: skip
    assert json.loads(dry.stdout)["counts"]["created"] == 3
    real = subprocess.run([exe, "import", str(batch), "--owner", "DE"], env=env, check=True,
                          capture_output=True, text=True)  # fmt: skip
    assert json.loads(real.stdout)["revision"] == 1
    again = subprocess.run([exe, "import", str(batch), "--owner", "DE"], env=env, check=True,
                           capture_output=True, text=True)  # fmt: skip
    assert json.loads(again.stdout)["revision"] is None
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"kind": "authorities", "document": {"code": "DE:X"}}\n')
    failed = subprocess.run([exe, "import", str(bad), "--owner", "DE"], env=env,
                            capture_output=True, text=True)  # fmt: skip
    assert failed.returncode == 2
    assert "line 1 kind [authorities DE:X]: Field required" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_an_entry_held_for_a_batch_is_the_entry_that_was_validated() -> None:
    """A batch keeps each validated document as JSON and validates it again when applying
    it: every kind, with every field the seed and the tests fill, comes back the same."""
    import datetime as dt

    from cdb_service.registry.store.batch_items import BatchItem
    from cdb_service.registry.store.validation import validate
    from cdb_service.seeding.dataset import SEED_DIR, build

    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=40)
    entries = [
        *build(SEED_DIR).entries,
        ("maintenance-windows", {"owner": "EC", "ref": "w1", "component": "cdb",
                                 "reason": "upgrade", "starts_at": start.isoformat(),
                                 "ends_at": (start + dt.timedelta(hours=2)).isoformat()}),
        ("incidents", {"owner": "EC", "ref": "i1", "component": "cdb", "description": "503s",
                       "started_at": (start - dt.timedelta(days=41)).isoformat(),
                       "expected_recovery_at": start.isoformat()}),
        ("owners", {"code": "NO", "name": "Norway", "instruments": ["maintenance"]}),
    ]  # fmt: skip
    assert {kind for kind, _ in entries} == set(KINDS)
    for n, (kind_name, data) in enumerate(entries, start=1):
        kind = KINDS[kind_name]
        document = validate(kind, data)
        held = BatchItem.of(kind, document, n)
        assert held.document() == document, (kind_name, data)
        assert kind.column_values(held.document()) == kind.column_values(document)
        assert len(held.source) < len(document.model_dump_json()) + 1


def _peak_mib(command: list[str], env: dict[str, str]) -> float:
    """Peak resident memory of one command, read by a fresh parent process."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
             "capture_output=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe, *command], env=env, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(done.stdout) / 1024


def test_a_national_batch_costs_little_memory_per_entry_created_or_unchanged(
    tmp_path: Path,
) -> None:
    """An administrator's 10,000 courts, imported and then re-imported unchanged: the
    command's peak grows by under 3 KiB an entry over a one-line import: about 2 now; 5
    and 6.5 when every entry was held as a validated model and every row read whole."""
    env = os.environ | {"CDB_DATA_DIR": str(tmp_path), "CDB_LOG_LEVEL": "WARNING"}
    env.pop("CDB_DATABASE_URL", None)
    exe = str(Path(sys.executable).with_name("cdb-service"))
    subprocess.run([exe, "migrate"], env=env, check=True, capture_output=True)
    entries = 10_000
    one, batch = tmp_path / "one.ndjson", tmp_path / "de.ndjson"
    one.write_bytes(_ndjson([("authorities", factories.authority(code="DE:ONE"))]))
    batch.write_bytes(_ndjson([("authorities", factories.authority(code=f"DE:C{n:05d}"))
                               for n in range(entries)]))  # fmt: skip
    baseline = _peak_mib([exe, "import", str(one), "--owner", "DE"], env)
    for what in ("created", "unchanged"):
        peak = _peak_mib([exe, "import", str(batch), "--owner", "DE"], env)
        per_entry_kib = (peak - baseline) * 1024 / entries
        print(f"{what}: peak {peak:.0f} MiB, 1 line {baseline:.0f} MiB, "
              f"{per_entry_kib:.2f} KiB an entry")  # fmt: skip
        assert per_entry_kib < 3, what
