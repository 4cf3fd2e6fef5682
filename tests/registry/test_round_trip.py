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

from openpyxl import Workbook, load_workbook
from sqlalchemy import select

from cdb_service.registry.formats.spreadsheets import XLSX_MEDIA_TYPE
from cdb_service.registry.kinds import KINDS
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
    gln = {"party_id": "4012345000009",
           "party_id_type": "urn:oasis:names:tc:ebcore:partyid-type:iso6523:0088"}  # fmt: skip
    async with api.client("operator") as c:
        # France's access point holds a registered party id (GLN): unique registry-wide
        # (a German one, which an operator allowed it).
        party = await c.post(f"{V1}/routing-parties", json=factories.routing_party(
            owner="FR", name="fr-ap",
            identifiers=[{"party_id": "fr-ap"}, gln | {"operator_confirmed": True}]))  # fmt: skip
        assert party.status_code == 201, party.text
    async with api.client("admin-de") as c:
        for name in ("de-ap", "de-ap-2"):
            party = await c.post(f"{V1}/routing-parties", json=factories.routing_party(name=name))
            assert party.status_code == 201
        court = await c.post(
            f"{V1}/authorities", json=factories.authority(routing_party_name="de-ap-2")
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
        # 7: conflict with an existing entry outside the batch: France's party holds the GLN.
        line("routing-parties", factories.routing_party(identifiers=[{"party_id": "de-ap"}, gln])),
        # 8: replace mode: the court stays and still names de-ap-2, which the batch drops.
        line("authorities", factories.authority(routing_party_name="de-ap-2")),
    ]
    async with api.client("admin-de") as c:
        response = await c.post(f"{V1}/import", content=b"\n".join(lines),
                                params={"mode": "replace"},
                                headers={"content-type": "application/x-ndjson"})  # fmt: skip
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["loc"], e["type"], e.get("entry")) for e in errors] == [
        (["line", 1], "json_invalid", None),
        (["line", 2, "kind"], "value_error", "authorities DE:BAD"),
        (["line", 3, "authority_code"], "reference_error", "jurisdiction-criteria crit-1"),
        (["line", 5, "code"], "value_error", "authorities DE:TWICE"),
        (["line", 7, "identifiers"], "duplicate", "routing-parties de-ap"),
        (["line", 8], "replace_conflict", "authorities DE:COURT-1 (DE)"),
    ]  # fmt: skip
    assert "repeats the key 'DE:TWICE' of line 4" in errors[3]["msg"]
    assert "already names routing-parties fr-ap" in errors[4]["msg"]
    assert "refers to routing-parties de-ap-2, which replace mode would delete" in errors[5]["msg"]
    # Line 1 could have named de-ap-2: the conflict is reported now, and says so.
    assert errors[5]["msg"].endswith("unless a line that could not be read names it")
    assert await services.reads.head() == 4  # nothing written


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


def _cells(book: Workbook, sheet: str, key_column: str) -> dict[Any, dict[str, Any]]:
    """Each data row of a sheet as {key: {"row": its number, column: cell}} for editing."""
    ws = book[sheet]
    header = [c.value for c in ws[1]]
    out = {}
    for number, row in enumerate(ws.iter_rows(min_row=2), start=2):
        cells = dict(zip(header, row, strict=True))
        out[cells[key_column].value] = {"row": number} | cells
    return out


def _xlsx(book: Workbook) -> bytes:
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


async def test_a_dry_run_sums_up_and_spreadsheet_problems_name_their_sheet_and_row(
    api: Api,
) -> None:
    crit = "jurisdiction-criteria"
    setup = [("routing-parties", factories.routing_party()),
             ("routing-parties", factories.routing_party(name="de-ap-2")),
             ("authorities", factories.authority(routing_party_name="de-ap-2")),
             ("authorities", factories.authority(code="DE:COURT-2", routing_party_name="de-ap")),
             (crit, factories.criterion(ref="crit-1")),
             (crit, factories.criterion(ref="crit-2", authority_code="DE:COURT-2"))]  # fmt: skip
    body = "\n".join(json.dumps({"kind": k, "document": d}) for k, d in setup).encode()
    async with api.client("admin-de") as c:
        assert (await c.post(f"{V1}/import", content=body)).status_code == 200
        exported = await c.get(f"{V1}/export", params={"format": "xlsx"})
    assert exported.status_code == 200

    # An administrator's edits in the workbook: one court renamed, one criterion dropped,
    # one added. The dry run counts per kind and operation and lists the first change only.
    book = load_workbook(io.BytesIO(exported.content))
    _cells(book, "authorities", "code")["DE:COURT-2"]["names.en"].value = "Local Court Two"
    criteria = book[crit]
    criteria.delete_rows(_cells(book, crit, "ref")["crit-2"]["row"])
    added = {
        "owner": "DE",
        "ref": "crit-3",
        "authority_code": "DE:COURT-2",
        "instrument": "eio",
        "competence": "execute",
        "geo": '[{"scheme": "postal-code", "code": "10117"}]',
    }
    criteria.append([added.get(str(c.value)) for c in criteria[1]])
    async with api.client("admin-de") as c:
        dry = await _dry_run(c, _xlsx(book), XLSX_MEDIA_TYPE, owner="DE", first=1)
    assert dry["by_kind"] == {
        "routing-parties": {"created": 0, "updated": 0, "deleted": 0, "unchanged": 2},
        "authorities": {"created": 0, "updated": 1, "deleted": 0, "unchanged": 1},
        crit: {"created": 1, "updated": 0, "deleted": 1, "unchanged": 1},
    }  # fmt: skip
    assert dry["counts"] == {"created": 1, "updated": 1, "deleted": 1, "unchanged": 4}
    assert [(x["kind"], x["key"], x["change"]) for x in dry["changes"]] == [
        ("authorities", "DE:COURT-2", "updated")
    ]

    # Problems in a workbook: each at its sheet, row and column, with its entry; a
    # replace-mode conflict at the row of the entry that still refers.
    courts = _cells(book, "authorities", "code")
    courts["DE:COURT-2"]["kind"].value = "tribunal"
    _cells(book, crit, "ref")["crit-3"]["authority_code"].value = "DE:NOWHERE"
    book["routing-parties"].delete_rows(_cells(book, "routing-parties", "name")["de-ap-2"]["row"])
    async with api.client("admin-de") as c:
        refused = await c.post(f"{V1}/import", content=_xlsx(book),
                               params={"mode": "replace", "dry_run": "true"},
                               headers={"content-type": XLSX_MEDIA_TYPE})  # fmt: skip
    assert refused.status_code == 422, refused.text
    one, two = courts["DE:COURT-1"]["row"], courts["DE:COURT-2"]["row"]
    assert sorted((e["loc"], e["entry"]) for e in refused.json()["errors"]) == sorted([
        (["sheet", "authorities", "row", one], "authorities DE:COURT-1 (DE)"),
        (["sheet", "authorities", "row", two, "kind"], "authorities DE:COURT-2"),
        (["sheet", crit, "row", criteria.max_row, "authority_code"], f"{crit} crit-3"),
    ])  # fmt: skip

    # A CSV file (one kind) is located by row and column.
    async with api.client("admin-de") as c:
        csv = await c.get(f"{V1}/export", params={"format": "csv", "kind": "authorities"})
        lines = csv.text.splitlines()  # the header is row 1
        row = next(n for n, text in enumerate(lines, start=1) if "DE:COURT-2" in text)
        lines[row - 1] = lines[row - 1].replace(",court,", ",tribunal,")
        refused = await c.post(f"{V1}/import", content="\n".join(lines).encode(),
                               params={"kind": "authorities", "dry_run": "true"},
                               headers={"content-type": "text/csv"})  # fmt: skip
    assert refused.status_code == 422, refused.text
    (error,) = refused.json()["errors"]
    assert error["loc"] == ["row", row, "kind"] and error["entry"] == "authorities DE:COURT-2"


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
