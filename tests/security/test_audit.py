"""The hash-chained audit trail, on both databases: written, verified, and tampering found.

The same small history on each backend: two writes that commit, one refused write
(a duplicate code: 409) and one access denial recorded as the gate records it.
`verify_chain` walks it; then one row is changed, removed, or changed and re-hashed
by direct SQL, and the verifier must name the first event that no longer fits.
The real `cdb-service audit-verify` command is run against the same database.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from cdb_service.kernel.hash_chain import GENESIS
from cdb_service.kernel.problems import Problem
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.security import audit
from cdb_service.security.audit import AuditEvent, Who, event_hash, verify_chain
from cdb_service.services import Services
from cdb_service.settings import Settings
from tests.support import factories
from tests.support.service_process import executable

AUTH = KINDS["authorities"]
ADMIN_DE = Who(
    subject="admin-de", client_id="admin-de", cert_subject="CN=admin-de,O=cdb tests",
    cert_thumbprint="q2Vj0bG0mFf7x5tS256-admin-de", request_id="req-1", source_ip="127.0.0.1",
)  # fmt: skip
READER = Who(subject="reader", client_id="reader", cert_subject="CN=reader,O=cdb tests",
             cert_thumbprint="x5tS256-reader", source_ip="127.0.0.1")  # fmt: skip
EXPECTED = [  # (seq, action, outcome, subject) of the history below
    (1, "create authorities", "ok", "admin-de"),
    (2, "create authorities", "rejected-409", "admin-de"),
    (3, "create authorities", "ok", "admin-de"),
    (4, "access", "denied-403", "reader"),
]


async def _history(services: Services) -> None:
    writes = services.writes
    await writes.create(AUTH, validate(AUTH, factories.authority(code="DE:A")), ADMIN_DE)
    with pytest.raises(Problem) as refused:  # the same code again: refused, and audited
        await writes.create(AUTH, validate(AUTH, factories.authority(code="DE:A")), ADMIN_DE)
    assert refused.value.status == 409
    await writes.create(AUTH, validate(AUTH, factories.authority(code="DE:B")), ADMIN_DE)
    # A refusal as the gate records it (gate.deny → audit.record, its own transaction).
    await audit.record(services.sessions, READER, "access", "denied-403",
                       "POST /api/v1/authorities",
                       {"reason": "changing the registry needs the scope cdb.write"})  # fmt: skip


async def _events(services: Services) -> list[AuditEvent]:
    async with services.sessions() as session:
        return list((await session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all())


async def _sql(services: Services, statement: str, **params: Any) -> None:
    async with services.engine.begin() as connection:
        result = await connection.execute(text(statement), params)
        assert result.rowcount == 1  # type: ignore[attr-defined]


async def test_every_write_and_refusal_is_a_linked_event_and_the_chain_verifies(
    services: Services,
) -> None:
    await _history(services)
    events = await _events(services)
    assert [(e.seq, e.action, e.outcome, e.subject) for e in events] == EXPECTED
    first = events[0]
    assert (first.client_id, first.cert_subject, first.cert_thumbprint, first.source_ip) == (
        ADMIN_DE.client_id, ADMIN_DE.cert_subject, ADMIN_DE.cert_thumbprint, "127.0.0.1",
    )  # fmt: skip
    assert first.target is not None and first.target.startswith("authorities/")
    assert first.detail == {"revision": 1, "changes": 1}
    assert events[1].target is None
    assert "already has code" in (events[1].detail or {})["detail"]
    # Each event names its predecessor's hash; the first names the genesis value.
    assert [e.prev_hash for e in events] == [GENESIS] + [e.hash for e in events[:-1]]
    assert len({e.hash for e in events}) == len(events)

    report = await verify_chain(services.sessions)
    assert report.ok, report
    assert report.checked == 4


async def test_an_empty_trail_verifies(services: Services) -> None:
    report = await verify_chain(services.sessions)
    assert (report.ok, report.checked) == (True, 0)


@pytest.mark.parametrize(
    ("column", "value"),
    [("outcome", "ok"), ("subject", "someone-else"), ("cert_thumbprint", "another-thumbprint")],
)
async def test_a_changed_event_is_named(services: Services, column: str, value: str) -> None:
    await _history(services)
    # Event 2 is the refused write: make it look like a success, or like someone else's.
    await _sql(services, f"UPDATE audit_events SET {column} = :value WHERE seq = 2", value=value)
    report = await verify_chain(services.sessions)
    assert (report.ok, report.broken_at, report.checked) == (False, 2, 1)
    assert "changed" in str(report.reason)


async def test_a_changed_event_with_a_recomputed_hash_breaks_the_next_link(
    services: Services,
) -> None:
    """Whoever edits a row and re-hashes it (the algorithm is no secret) breaks event 3."""
    await _history(services)
    [second] = [e for e in await _events(services) if e.seq == 2]
    second.outcome = "ok"  # a detached copy; the row is changed by SQL below
    forged = event_hash(second.prev_hash, audit._content(second))
    await _sql(
        services, "UPDATE audit_events SET outcome = 'ok', hash = :h WHERE seq = 2", h=forged
    )
    report = await verify_chain(services.sessions)
    assert (report.ok, report.broken_at, report.checked) == (False, 3, 2)
    assert "link" in str(report.reason)


async def test_a_removed_last_event_is_detected(services: Services) -> None:
    await _history(services)
    await _sql(services, "DELETE FROM audit_events WHERE seq = 4")
    report = await verify_chain(services.sessions)
    assert (report.ok, report.broken_at, report.checked) == (False, 4, 3)
    assert "removed" in str(report.reason)


async def test_a_removed_event_in_the_middle_is_detected(services: Services) -> None:
    await _history(services)
    await _sql(services, "DELETE FROM audit_events WHERE seq = 2")
    report = await verify_chain(services.sessions)
    assert (report.ok, report.broken_at, report.checked) == (False, 2, 1)
    assert "missing" in str(report.reason)


# --- the command ------------------------------------------------------------------------


async def _audit_verify(settings: Settings, tmp_path: Path) -> tuple[int, dict[str, Any]]:
    exe = executable()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDB_")}
    env |= {"CDB_DATABASE_URL": settings.database_url, "CDB_DATA_DIR": str(tmp_path / "cli"),
            "CDB_DEV_ISSUER": "false", "CDB_LOG_LEVEL": "WARNING"}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        exe, "audit-verify", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    stdout = out.decode()
    start = stdout.find('{\n  "status"')  # the report (log lines, if any, are single-line)
    assert start >= 0, f"no report in:\n{stdout}\n{err.decode()}"
    report, _ = json.JSONDecoder().raw_decode(stdout[start:])
    assert process.returncode is not None
    return process.returncode, report


async def test_the_audit_verify_command(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    await _history(services)
    code, report = await _audit_verify(settings, tmp_path)
    assert (code, report) == (0, {"status": "ok", "events": 4})

    await _sql(services, "UPDATE audit_events SET outcome = 'ok' WHERE seq = 2")
    code, report = await _audit_verify(settings, tmp_path)
    assert code == 1
    assert report["status"] == "broken"
    assert report["event"] == 2
    assert report["verified_before_it"] == 1
    assert "changed" in report["reason"]
