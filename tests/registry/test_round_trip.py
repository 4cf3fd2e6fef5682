"""Export → import is a no-op in every format (NDJSON, CSV, XLSX), through the API and the CLI;
a batch's problems are all reported at once."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import select

from cdb_service.registry.kinds import KINDS
from cdb_service.registry.spreadsheets import XLSX_MEDIA_TYPE
from cdb_service.security.audit import AuditEvent
from cdb_service.seeding.load import seed
from cdb_service.services import Services
from tests.support import factories
from tests.support.api import Api, As

V1 = "/api/v1"
NO_CHANGE = {"created": 0, "updated": 0, "deleted": 0}


def _later(days: int) -> str:
    return (dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)).isoformat()


async def _dry_run(c: As, body: bytes, media: str, **params: Any) -> dict[str, Any]:
    response = await c.post(
        f"{V1}/import",
        content=body,
        params={"owner": "FR", "dry_run": "true", "mode": "replace"} | params,
        headers={"content-type": media},
    )
    assert response.status_code == 200, response.text[:3000]
    return dict(response.json())


async def test_an_api_created_window_survives_export_and_import_in_every_format(
    api: Api, services: Services
) -> None:
    await seed(services.batches, services.sessions)
    async with api.client("admin-fr") as c:
        window = {"owner": "FR", "component": "connector", "starts_at": _later(40),
                  "ends_at": _later(41), "reason": "= certificate renewal; planned"}  # fmt: skip
        created = await c.post(f"{V1}/maintenance-windows", json=window)
        assert created.status_code == 201, created.text
        assert created.json()["ref"] is None  # created without a ref, as the issue found it

        ndjson = await c.get(f"{V1}/export", params={"owner": "FR"})
        assert ndjson.status_code == 200
        lines = ndjson.content.splitlines()
        assert len(lines) > 20 and all(json.loads(x)["document"]["owner"] == "FR" for x in lines)
        result = await _dry_run(c, ndjson.content, "application/x-ndjson")
        assert result["counts"] == NO_CHANGE | {"unchanged": len(lines)}

        xlsx = await c.get(f"{V1}/export", params={"owner": "FR", "format": "xlsx"})
        assert xlsx.headers["content-type"].startswith(XLSX_MEDIA_TYPE)
        book = load_workbook(io.BytesIO(xlsx.content), read_only=True)
        authorities = list(book["authorities"].iter_rows(values_only=True))
        header = list(authorities[0])
        assert {"id", "code", "names.fr", "names.en", "address.city", "routing_party_name"} <= set(
            header
        )
        assert "routing_party_id" not in header  # references travel by code / name
        paris = next(r for r in authorities if r[header.index("code")] == "FR:COURT-PARIS")
        assert paris[header.index("names.fr")] == "Tribunal judiciaire de Paris"
        result = await _dry_run(c, xlsx.content, XLSX_MEDIA_TYPE)
        assert result["counts"] == NO_CHANGE | {"unchanged": len(lines)}

        total = 0
        for kind in KINDS:
            csv = await c.get(f"{V1}/export", params={"owner": "FR", "format": "csv", "kind": kind})
            assert csv.status_code == 200, csv.text
            if kind == "maintenance-windows":  # a formula to a spreadsheet program, defused
                assert ",'= certificate renewal; planned," in csv.text
            result = await _dry_run(c, csv.content, "text/csv", kind=kind, mode="merge")
            assert result["counts"]["updated"] == result["counts"]["created"] == 0, kind
            total += result["counts"]["unchanged"]
        assert total == len(lines)
    async with services.sessions() as session:
        exported = (await session.scalars(
            select(AuditEvent.target).where(AuditEvent.action == "export"))).all()  # fmt: skip
    assert "owner=FR kinds=* format=xlsx" in exported and len(exported) == 2 + len(KINDS)
    async with api.client("admin-fr") as c:
        # An edited spreadsheet row is an update of that entry and of nothing else.
        csv = await c.get(f"{V1}/export", params={"owner": "FR", "format": "csv",
                                                 "kind": "authorities"})  # fmt: skip
        edited = csv.text.replace(
            "Tribunal judiciaire de Paris,", "Tribunal judiciaire de Paris (siège),"
        )
        result = await _dry_run(c, edited.encode(), "text/csv", kind="authorities", mode="merge")
        assert result["counts"]["updated"] == 1
        assert result["changes"][0]["key"] == "FR:COURT-PARIS"
        assert result["changes"][0]["fields"] == ["names"]


async def test_every_problem_of_a_batch_is_reported_at_once_with_its_line(
    api: Api, services: Services
) -> None:
    async with api.client("admin-de") as c:
        party = await c.post(f"{V1}/routing-parties", json=factories.routing_party())
        assert party.status_code == 201
        court = await c.post(
            f"{V1}/authorities", json=factories.authority(routing_party_name="de-ap")
        )
        assert court.status_code == 201

    def line(kind: str, document: dict[str, Any]) -> bytes:
        return json.dumps({"kind": kind, "document": document}).encode()

    crit = "jurisdiction-criteria"
    lines = [
        b"{not json",  # 1: syntax
        line("authorities", factories.authority(code="DE:BAD", kind="tribunal")),  # 2: value
        line(crit, factories.criterion(authority_code="DE:NOWHERE")),  # 3: reference
        line("authorities", factories.authority(code="DE:TWICE")),
        line("authorities", factories.authority(code="DE:TWICE")),  # 5: duplicate
        # 6: refers to line 2's authority, which is broken: reported once, at line 2.
        line(crit, factories.criterion(ref="c2", authority_code="DE:BAD")),
    ]
    async with api.client("admin-de") as c:
        response = await c.post(f"{V1}/import", content=b"\n".join(lines),
                                headers={"content-type": "application/x-ndjson"})  # fmt: skip
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["loc"][:2], e["type"]) for e in errors] == [
        (["line", 1], "json_invalid"),
        (["line", 2], "value_error"),
        (["line", 3], "reference_error"),
        (["line", 5], "value_error"),
    ]  # fmt: skip
    assert errors[1]["loc"] == ["line", 2, "kind"] and errors[1]["entry"] == "authorities DE:BAD"
    assert errors[2]["entry"] == "jurisdiction-criteria crit-1"
    assert "repeats the key 'DE:TWICE' of line 4" in errors[3]["msg"]
    assert await services.reads.head() == 2  # nothing written


async def test_a_replace_conflict_names_the_line_and_the_referring_entry(api: Api) -> None:
    batch = [
        {"kind": "routing-parties", "document": factories.routing_party()},
        {"kind": "routing-parties", "document": factories.routing_party(name="de-ap-2")},
        {"kind": "authorities", "document": factories.authority(routing_party_name="de-ap-2")},
    ]
    body = "\n".join(json.dumps(x) for x in batch).encode()
    async with api.client("admin-de") as c:
        first = await c.post(f"{V1}/import", content=body)
        assert first.status_code == 200, first.text
        # The court (line 2 now) still names de-ap-2, which the batch no longer lists.
        without = "\n".join(json.dumps(x) for x in (batch[0], batch[2])).encode()
        response = await c.post(f"{V1}/import", content=without, params={"mode": "replace"})
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["loc"] == ["line", 2]
    assert error["entry"] == "authorities DE:COURT-1 (DE)"
    assert "refers to routing-parties de-ap-2, which replace mode would delete" in error["msg"]


def test_the_cli_round_trips_xlsx_and_csv_and_says_what_is_wrong_in_one_line(
    tmp_path: Path,
) -> None:
    env = os.environ | {"CDB_DATA_DIR": str(tmp_path), "CDB_LOG_LEVEL": "WARNING"}
    env.pop("CDB_DATABASE_URL", None)
    exe = str(Path(sys.executable).with_name("cdb-service"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], env=env, capture_output=True, text=True)

    assert run("migrate").returncode == 0
    assert run("seed").returncode == 0
    book = tmp_path / "ro.xlsx"
    assert run("export", "--owner", "RO", "--out", str(book)).returncode == 0
    dry = run("import", str(book), "--owner", "RO", "--dry-run", "--mode", "replace")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["counts"]["unchanged"] > 10
    assert {k: v for k, v in report["counts"].items() if k != "unchanged"} == NO_CHANGE
    assert report["changes"] == []

    folder = tmp_path / "csv"
    assert run("export", "--owner", "RO", "--format", "csv", "--out", str(folder)).returncode == 0
    dry = run("import", str(folder / "authorities.csv"), "--owner", "RO", "--dry-run")
    assert dry.returncode == 0 and json.loads(dry.stdout)["counts"]["updated"] == 0

    missing = run("import", str(tmp_path / "nope.ndjson"), "--owner", "RO")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"cdb-service import: cannot read {tmp_path / 'nope.ndjson'}: No such file or directory"
    ]
    odd = tmp_path / "batch.txt"
    odd.write_text("{}")
    wrong = run("import", str(odd), "--owner", "RO")
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1
    assert "name it *.ndjson, *.csv or *.xlsx" in wrong.stderr
    fake = tmp_path / "fake.xlsx"
    fake.write_text("not a workbook")
    broken = run("import", str(fake), "--owner", "RO")
    assert broken.returncode == 2 and "not an XLSX workbook" in broken.stderr
    assert "Traceback" not in missing.stderr + wrong.stderr + broken.stderr


async def test_party_ids_named_twice_are_found_before_anything_is_written(api: Api) -> None:
    async with api.client("admin-de") as c:
        party = await c.post(f"{V1}/routing-parties", json=factories.routing_party())
        assert party.status_code == 201
        lines = [
            factories.routing_party(name="de-ap-2", identifiers=[{"party_id": "de-ap"}]),
            factories.routing_party(name="de-ap-3", identifiers=[{"party_id": "de-x-1"}]),
            factories.routing_party(name="de-ap-4", identifiers=[{"party_id": "de-x-1"}]),
        ]
        body = "\n".join(json.dumps({"kind": "routing-parties", "document": d}) for d in lines)
        response = await c.post(f"{V1}/import", content=body.encode())
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [(e["loc"], e["entry"]) for e in errors] == [
        (["line", 1, "identifiers"], "routing-parties de-ap-2"),
        (["line", 3, "identifiers"], "routing-parties de-ap-4"),
    ]
    assert "already names routing-parties de-ap" in errors[0]["msg"]
    assert "also named by routing-parties de-ap-3 (line 2)" in errors[1]["msg"]
