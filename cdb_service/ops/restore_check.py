"""Is a restored database the registry it claims to be? (`cdb-service verify-restore`)

Run after a restore (base backup + WAL to a moment) and before any service writes
to it. Each check is independent and says what it found:

- `migrations`: the schema is at the head this code expects;
- `revisions`: numbered 1..head with no gap, and the head row agrees;
- `entry_versions`: every revision holds as many entry versions as it says it
  changed (a torn restore shows here, not as a wrong answer months later);
- `audit`: the hash chain of the audit trail is intact from its first event;
- `extract` (given a signed extract of revision R): the extract's chain, digest
  and signature verify, and the restored registry at R holds exactly its entries
  -- same ids, versions, revisions and documents (named persons compared as the
  extract's reader saw them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cdb_service.db import migrate
from cdb_service.db import revisions as rev
from cdb_service.distribution.extracts import verify_lines
from cdb_service.registry.kinds import KINDS
from cdb_service.security import policy
from cdb_service.security.audit import verify_chain

PAGE = 500


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


async def verify_restore(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession],
                         extract: list[bytes] | None, key_set: Any) -> list[Check]:  # fmt: skip
    at_head = await migrate.at_head(engine)
    checks = [Check("migrations", at_head, "at head" if at_head else
                    "not at head: run `cdb-service migrate` only if this restore is meant to "
                    "be upgraded")]  # fmt: skip
    if not at_head:
        return checks
    checks.append(await _revisions(sessions))
    checks.append(await _entry_versions(sessions))
    report = await verify_chain(sessions)
    checks.append(Check("audit", report.ok, f"{report.checked} events chained" if report.ok else
                        f"broken at event {report.broken_at}: {report.reason}"))  # fmt: skip
    if extract is not None:
        checks.append(await _extract(sessions, extract, key_set))
    return checks


async def _revisions(sessions: async_sessionmaker[AsyncSession]) -> Check:
    async with rev.read_snapshot(sessions) as session:
        head = await rev.head_revision(session)
        count, low, high = (await session.execute(
            select(func.count(), func.min(rev.Revision.revision), func.max(rev.Revision.revision))
        )).one()  # fmt: skip
    if count == 0:
        return Check("revisions", head == 0, f"none; the head says {head}")
    gap_free = low == 1 and high == count
    ok = gap_free and head == high
    detail = (f"1..{high}, gap-free, head {head}" if ok else
              f"{count} revisions from {low} to {high} (gap-free would be 1..{count}); "
              f"head {head}")  # fmt: skip
    return Check("revisions", ok, detail)


async def _entry_versions(sessions: async_sessionmaker[AsyncSession]) -> Check:
    counted = (
        select(rev.EntryVersion.revision, func.count().label("n"))
        .group_by(rev.EntryVersion.revision)
        .subquery()
    )
    query = (
        select(rev.Revision.revision, rev.Revision.change_count, counted.c.n)
        .outerjoin(counted, counted.c.revision == rev.Revision.revision)
        .where(func.coalesce(counted.c.n, 0) != rev.Revision.change_count)
        .order_by(rev.Revision.revision)
        .limit(5)
    )
    async with rev.read_snapshot(sessions) as session:
        torn = (await session.execute(query)).all()
    if not torn:
        return Check("entry_versions", True, "every revision holds all its entry versions")
    named = ", ".join(f"revision {r} says {c}, holds {n or 0}" for r, c, n in torn)
    return Check("entry_versions", False, named)


async def _extract(sessions: async_sessionmaker[AsyncSession], lines: list[bytes],
                   key_set: Any) -> Check:  # fmt: skip
    verdict = verify_lines(lines, key_set)
    if not verdict.ok or verdict.revision is None:
        where = f"line {verdict.line}: " if verdict.line else ""
        return Check("extract", False, f"the extract does not verify: {where}{verdict.detail}")
    revision = verdict.revision
    header = json.loads(lines[0])
    kinds = [KINDS[name] for name in header.get("kinds") or KINDS]
    owner = header.get("owner")
    expected: dict[tuple[str, str], tuple[int, int, dict[str, Any]]] = {}
    for raw in lines[1:-1]:
        line = json.loads(raw)
        private = KINDS[line["kind"]].private_fields
        document = policy.redact(line["document"], private)
        expected[(line["kind"], line["id"])] = (line["version"], line["revision"], document)
    async with rev.read_snapshot(sessions) as session:
        head = await rev.head_revision(session)
        if revision > head:
            return Check("extract", False, f"the extract is of revision {revision}, after the "
                         f"restored head {head}: the restore stopped too early")  # fmt: skip
        differences: list[str] = []
        seen = 0
        for kind in kinds:
            after = None
            while True:
                versions = await rev.collection_as_of(session, kind.name, revision, owner=owner,
                                                      after=after, limit=PAGE)  # fmt: skip
                for version in versions:
                    seen += 1
                    key = (kind.name, str(version.entry_id))
                    document = policy.redact(dict(version.document), kind.private_fields)
                    found = (version.version, version.revision, json.loads(json.dumps(document,
                             default=str)))  # fmt: skip
                    if expected.pop(key, None) != found:
                        differences.append(f"{kind.name}/{version.entry_id}")
                    session.expunge(version)
                if len(versions) < PAGE:
                    break
                after = versions[-1].entry_id
    differences += [f"{kind}/{entry_id} (missing)" for kind, entry_id in expected]
    if differences:
        return Check("extract", False, f"the restored registry at revision {revision} differs "
                     f"from the extract in {len(differences)} entries, first "
                     f"{', '.join(differences[:3])}")  # fmt: skip
    return Check("extract", True, f"revision {revision}: {seen} entries equal to the signed "
                 "extract")  # fmt: skip


def as_report(checks: list[Check]) -> dict[str, Any]:
    return {"status": "ok" if all(c.ok for c in checks) else "failed",
            "checks": [asdict(c) for c in checks]}  # fmt: skip
