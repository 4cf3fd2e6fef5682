"""The report's inputs gathered in one place, for the API and the CLI alike."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cdb_service import metrics
from cdb_service.distribution import rollouts
from cdb_service.lookup.gazetteer import loads
from cdb_service.lookup.snapshot import build
from cdb_service.quality.findings import Inputs
from cdb_service.quality.report import report
from cdb_service.registry.formats.files import documents_by_kind
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.reads import EntryReads


async def owner_report(
    reads: EntryReads,
    owner: str,
    today: dt.date,
    review_days: int,
    rollover_min_days: int = 5,
    alert_working_days: int = 2,
) -> dict[str, Any]:
    # A lookup index of its own, built from one snapshot: coverage and ties see the
    # gazetteer and the registry of one moment (not a worker's index mid-follow),
    # and a report (rare) costs no pause to the index that answers /resolve.
    index = await build(reads.sessions)
    documents = await documents_by_kind(reads, KINDS.values(), owner)
    async with reads.sessions() as session:
        sources = {load.country: load.source for load in await loads(session)}
    # Switches still ahead of the report's day (a report of a past day has none to chase).
    pending = await rollouts.pending_uses(reads.sessions, dt.datetime.now(dt.UTC), owner)
    body = report(Inputs(owner, today, review_days, documents, index, sources, rollover_min_days,
                         pending, alert_working_days))  # fmt: skip
    for severity, count in body["summary"].items():
        metrics.QUALITY_FINDINGS.labels(owner, severity).set(count)
    return body
