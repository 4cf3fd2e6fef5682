"""Erasure of named persons (issue 31, item 1; Annex I 5.5, 5.6): `cdb-service erase`
removes a national member's person from every answer and from the database's bytes,
while extracts and the audit trail still verify; the retention rule erases the persons of
entries deleted or replaced long ago, and keeps the current ones."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from joserfc.jwk import KeySet
from sqlalchemy import select, text

from cdb_service.db.personal import PersonalData
from cdb_service.distribution.extracts import verify_lines
from cdb_service.registry.store import erasure
from cdb_service.security.audit import AuditEvent, Who
from cdb_service.services import Services
from tests.support.api import Api, As

V1 = "/api/v1"
NAME = "Zbigniewa Quernowska"
OTHER = "Ottokar Brzęczyszczykiewicz"


def _member(ref: str, name: str) -> dict[str, Any]:
    return {"owner": "EJ", "ref": ref, "country": "PL", "role": "national-member",
            "contact": {"channel": "email", "value": f"{ref.lower()}@eurojust.example.eu"},
            "person": {"name": name, "title": "Prokurator"}}  # fmt: skip


def _cli(api: Api, *args: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("cdb-service"))
    env = os.environ | {"CDB_DATABASE_URL": api.settings.database_url,
                        "CDB_DATA_DIR": str(api.settings.data_dir), "CDB_LOG_LEVEL": "WARNING",
                        "CDB_AUTO_MIGRATE": "false"}  # fmt: skip
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=120)


async def _get(c: As, url: str, **params: Any) -> bytes:
    answer = await c.get(url, params=params, headers={"Accept": "*/*"})
    assert answer.status_code == 200, (url, answer.text)
    return bytes(answer.content)


async def _answers(c: As, entry: str, revision: int) -> dict[str, bytes]:
    """Every way an operator reads the entry's person back."""
    return {
        "entry": await _get(c, f"{V1}/national-members/{entry}"),
        "page": await _get(c, f"{V1}/national-members"),
        "past page": await _get(c, f"{V1}/national-members", revision=revision),
        "history": await _get(c, f"{V1}/national-members/{entry}/history"),
        "diff": await _get(c, f"{V1}/national-members/{entry}/diff", **{"from": 1}),
        "changes": await _get(c, f"{V1}/changes", since=0),
        "export": await _get(c, f"{V1}/export", owner="EJ"),
        "export csv": await _get(c, f"{V1}/export", owner="EJ", format="csv",
                                 kind="national-members"),
        "extract": await _get(c, f"{V1}/extract", kinds="national-members"),
        "past extract": await _get(c, f"{V1}/extract", kinds="national-members",
                                   revision=revision),
    }  # fmt: skip


async def _database_holds(api: Api, services: Services, needle: str) -> list[str]:
    """Where the database still holds `needle`: SQLite's file bytes (database and WAL),
    PostgreSQL's every text and JSON column of every table."""
    if services.engine.dialect.name == "sqlite":
        path = Path(api.settings.database_url.removeprefix("sqlite:///"))
        files = [p for p in (path, Path(f"{path}-wal")) if p.exists()]
        return [p.name for p in files if needle.encode() in p.read_bytes()]
    found = []
    async with services.engine.connect() as connection:
        columns = (await connection.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN "
            "('text', 'character varying', 'json', 'jsonb')"))).all()  # fmt: skip
        for table, column in columns:
            hits = await connection.scalar(text(
                f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE :needle'),
                {"needle": f"%{needle}%"})  # fmt: skip
            if hits:
                found.append(f"{table}.{column}")
    return found


async def test_an_erased_national_member_is_gone_from_every_answer_and_the_database(
    api: Api, services: Services, tmp_path: Path
) -> None:
    async with api.client("admin-ej") as c:
        made = await c.post(f"{V1}/national-members", json=_member("EJ-PL-NM", NAME))
        assert made.status_code == 201, made.text
        assert made.json()["person"]["name"] == NAME  # the write's answer shows it
        entry, first = made.json()["id"], made.json()["revision"]
        changed = await c.patch(
            f"{V1}/national-members/{entry}",
            json={"contact": {"channel": "email", "value": "desk@eurojust.example.eu"}},
            headers={"If-Match": made.headers["ETag"],
                     "Content-Type": "application/merge-patch+json"})  # fmt: skip
        assert changed.status_code == 200, changed.text
        kept = await c.post(f"{V1}/national-members", json=_member("EJ-CZ-NM", OTHER))
        assert kept.status_code == 201
    async with api.client("operator") as c:
        before = await _answers(c, entry, first)
        jwks = (await c.get("/.well-known/jwks.json")).json()
    # Stored apart: no table but `personal_data` holds the name.
    async with services.sessions() as session:
        stored = (await session.scalars(select(PersonalData).where(
            PersonalData.entry_id == uuid.UUID(entry)))).all()  # fmt: skip
    assert [s.value["name"] for s in stored] == [NAME]  # one row for both versions
    for name, answer in before.items():
        if name == "diff":  # the person did not change between the two versions
            continue
        assert NAME.encode() in answer, f"{name} did not show the person to an operator"
    saved_extract = before["past extract"].splitlines(keepends=True)
    assert verify_lines(saved_extract, KeySet.import_key_set(jwks)).ok

    # Mistakes: one line, exit 2, nothing erased.
    for args, said in (
        (("national-members", entry), "--reason"),
        (("authorities", entry, "--reason", "x"), "hold no personal data"),
        (("national-members", "not-an-id", "--reason", "x"), "not an entry id"),
    ):
        wrong = await asyncio.to_thread(_cli, api, "erase", *args)
        assert wrong.returncode == 2 and said in wrong.stderr, wrong.stderr
        assert len(wrong.stderr.strip().splitlines()) == 1
    done = await asyncio.to_thread(
        _cli,
        api,
        "erase",
        "national-members",
        entry,
        "--reason",
        "data subject's request, DPO ticket 4711",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"erased": 1, "entries": [f"national-members/{entry}"]}

    async with api.client("operator") as c:
        after = await _answers(c, entry, first)
        found = await c.get(f"{V1}/national-members", params={"q": "Quernowska"})
        assert found.json()["items"] == []  # the search text lost the name too
        assert (await c.get(f"{V1}/national-members", params={"q": "Brzęczyszczykiewicz"})
                ).json()["items"]  # fmt: skip
    for name, answer in after.items():
        assert NAME.encode() not in answer, f"{name} still shows the erased person"
        assert b"Quernowska" not in answer, name
    assert json.loads(after["entry"])["person"] == "[erased]"
    assert OTHER.encode() in after["page"]  # another member's person stays
    history = json.loads(after["history"])["items"]
    assert [v["document"]["person"] for v in history] == ["[erased]", "[erased]"]
    # The re-served past extract says [erased] and verifies; so does the one saved before.
    past = after["past extract"].splitlines(keepends=True)
    assert b"[erased]" in after["past extract"]
    assert verify_lines(past, KeySet.import_key_set(jwks)).ok
    assert verify_lines(saved_extract, KeySet.import_key_set(jwks)).ok
    saved, jwks_file = tmp_path / "past.ndjson", tmp_path / "jwks.json"
    saved.write_bytes(after["past extract"])
    jwks_file.write_text(json.dumps(jwks))
    verified = await asyncio.to_thread(_cli, api, "verify-extract", str(saved), "--jwks",
                                       str(jwks_file))  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    audit = await asyncio.to_thread(_cli, api, "audit-verify")
    assert audit.returncode == 0 and json.loads(audit.stdout)["status"] == "ok", audit.stdout
    async with services.sessions() as session:
        event = (await session.scalars(select(AuditEvent).where(
            AuditEvent.action == "erase national-members"))).one()  # fmt: skip
    assert event.target == f"national-members/{entry}" and event.subject.startswith("cli:")
    assert event.detail == {"reason": "data subject's request, DPO ticket 4711", "erased": 1}
    # Nowhere in the database either (SQLite: the file after VACUUM; PostgreSQL: every row).
    assert await _database_holds(api, services, "Quernowska") == []
    assert await _database_holds(api, services, "Brzęczyszczykiewicz") != []  # the probe works

    # The entry can still be edited: its erased person is no value to write back.
    async with api.client("admin-ej") as c:
        current = await c.get(f"{V1}/national-members/{entry}")
        edited = await c.patch(
            f"{V1}/national-members/{entry}", json={"role": "deputy"},
            headers={"If-Match": current.headers["ETag"],
                     "Content-Type": "application/merge-patch+json"})  # fmt: skip
        assert edited.status_code == 200, edited.text
        assert edited.json()["person"] is None


async def test_the_retention_erases_persons_of_entries_deleted_or_replaced_long_ago(
    api: Api, services: Services
) -> None:
    async with api.client("admin-ej") as c:
        gone = (await c.post(f"{V1}/national-members", json=_member("EJ-PL-NM", NAME))).json()
        deleted = await c.delete(f"{V1}/national-members/{gone['id']}",
                                 headers={"If-Match": f'"{gone["version"]}"'})  # fmt: skip
        assert deleted.status_code in (200, 204), deleted.text
        moved = await c.post(f"{V1}/national-members", json=_member("EJ-CZ-NM", OTHER))
        replaced = await c.put(f"{V1}/national-members/{moved.json()['id']}",
                               json=_member("EJ-CZ-NM", "Nowa Osoba"),
                               headers={"If-Match": moved.headers["ETag"]})  # fmt: skip
        assert replaced.status_code == 200, replaced.text
    operator = Who(subject="retention-test", operator=True)
    # Within the retention: nothing goes.
    kept = await erasure.erase_expired(services.sessions, services.engine, 90, operator)
    assert kept.refs == 0
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=91)
    done = await erasure.erase_expired(services.sessions, services.engine, 90, operator, later)
    assert done.refs == 2  # the deleted member's person and the replaced one
    async with services.sessions() as session:
        left = (await session.scalars(select(PersonalData.value))).all()
        event = (await session.scalars(select(AuditEvent).where(
            AuditEvent.action == "erase expired personal data"))).one()  # fmt: skip
    assert [v["name"] for v in left] == ["Nowa Osoba"]  # the current person stays
    assert event.detail == {"reason": "retention of 90 days", "erased": 2}
    async with api.client("operator") as c:
        history = await _get(c, f"{V1}/national-members/{moved.json()['id']}/history")
        changes = await _get(c, f"{V1}/changes", since=0)
    assert OTHER.encode() not in history and b"Nowa Osoba" in history
    assert NAME.encode() not in changes and OTHER.encode() not in changes
    assert await _database_holds(api, services, "Quernowska") == []
    # The command the reports timer runs.
    again = await asyncio.to_thread(_cli, api, "erase", "--expired")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"erased": 0, "entries": [], "retention_days": 90}
