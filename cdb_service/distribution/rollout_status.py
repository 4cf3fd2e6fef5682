"""Who has confirmed a change (`rollout_changes.Change`): one rollout item.

For each access point Q that must act on a change of party P at moment T, the package
of Q as of T has a digest (`Content.digest`, what `GET /packages/{Q}?at=T` serves and
what an agent acknowledges). Per target of Q that ever acknowledged
(`acknowledgements.py`):

* **confirmed**: it applied a package that carries the change: Q's package as of T, or
  as of a later change (it carries this one too);
* **scheduled**: it has not applied one yet, but holds one, verified and scheduled for
  at most `SCHEDULE_TOLERANCE` after T (an agent fetches the package as of T ahead and
  says so, `scheduled_for`): it will switch on time, so while the change is pending it
  counts as confirmed (the gauge and the alert do not fire for it). A carrying package
  scheduled later than that (as of a later change) does not: Q would switch late;
* **stale**: it acknowledged packages, but none of those: it runs what it ran before;
* an access point that never acknowledged anything is **unconfirmed** (target unknown).

Once T has passed, a target still only scheduled is shown so, but no longer counted as
confirmed: it said it would switch and has not said it did.

Which package: the digest names the content *and* the scope it was fetched with
(`?owner=` / `?whole_network=true`, in the manifest's `content.scope`), so one digest
cannot stand for another scope's. A connector operator who imports the CMT-style whole
network, or one owner's parties, expects that import to count when it holds the change,
so three scopes of Q's package are tried: the default one, the whole network's, and
that of the changed party's owner (`?owner=<P's owner>`: the only owner scope that
carries P's change, unless P is Q, whose own owner's scope it then is). A package of
another owner's scope does not carry P, so it is stale for P, rightly: Q has not got
P's change. Each line says which scope confirmed it (`scope`, as the manifest's).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cdb_service.distribution.acknowledgements import Acknowledgement
from cdb_service.distribution.packages import FOREVER, Inexpressible, NoSuchParty, Scope, content
from cdb_service.distribution.rollout_changes import Change
from cdb_service.distribution.routing_table import RoutingTable
from cdb_service.kernel.calendar import local_date

# How much later than the change a held package may be scheduled and still confirm it:
# the agent's effective_from and the change's are the same instant in the manifest, the
# margin only absorbs rounding of an ISO 8601 time by a client.
SCHEDULE_TOLERANCE = dt.timedelta(seconds=60)


class Digests:
    """The digest of Q's package of a scope at a moment, from the routing table of the
    moment's day (as `GET /packages` builds it), memoised for one computation; None when
    Q's package cannot be built then."""

    def __init__(self, tables: Mapping[dt.date, RoutingTable]) -> None:
        self.tables = tables
        self._memo: dict[tuple[Scope, dt.datetime], str | None] = {}

    def of(self, scope: Scope, moment: dt.datetime) -> str | None:
        key = (scope, moment)
        if key not in self._memo:
            table = self.tables.get(local_date(moment))
            try:
                self._memo[key] = None if table is None else content(table, scope, moment).digest
            except (NoSuchParty, Inexpressible):
                self._memo[key] = None
        return self._memo[key]


@dataclass
class Target:
    kind: str
    name: str
    rows: list[Acknowledgement] = field(default_factory=list)  # newest first


def _targets(rows: Sequence[Acknowledgement]) -> list[Target]:
    by: dict[tuple[str, str], Target] = {}
    for row in rows:
        by.setdefault((row.target_kind, row.target_name),
                      Target(row.target_kind, row.target_name)).rows.append(row)  # fmt: skip
    return sorted(by.values(), key=lambda t: (t.kind, t.name))


def scopes(change: Change, q: dict[str, Any]) -> list[Scope]:
    """The scopes of Q's package that carry the change (see the module's docstring)."""
    return [Scope(q["name"]), Scope(q["name"], whole_network=True),
            Scope(q["name"], owner=change.owner)]  # fmt: skip


def status(change: Change, q: dict[str, Any], rows: Sequence[Acknowledgement],
           digests: Digests, later: Sequence[dt.datetime]) -> list[dict[str, Any]]:  # fmt: skip
    """One line per target of access point `q` (one line when it has none)."""
    expected = digests.of(Scope(q["name"]), change.effective_from)
    base = {"party": q["name"], "owner": q["owner"], "package_digest": expected}
    targets = _targets(rows)
    if not targets:
        return [base | {"target": None, "state": "unconfirmed", "acknowledged_digest": None,
                        "applied_at": None, "scheduled_for": None, "scope": None}]  # fmt: skip

    def carrier(digest: str) -> Scope | None:
        for moment in (change.effective_from, *later):
            for scope in scopes(change, q):
                if digests.of(scope, moment) == digest:
                    return scope
        return None

    def on_time(row: Acknowledgement) -> bool:
        due = row.scheduled_for
        return due is None or due <= change.effective_from + SCHEDULE_TOLERANCE

    out = []
    for target in targets:
        applied = [r for r in target.rows if r.scheduled_for is None]
        held = [r for r in target.rows if r.scheduled_for is not None and on_time(r)]
        hit = next(((r, s) for r in (*applied, *held) if (s := carrier(r.package_digest))),
                   None)  # fmt: skip
        shown = hit[0] if hit else (applied or target.rows)[0]
        state = "stale" if hit is None else "scheduled" if shown.scheduled_for else "confirmed"
        out.append(base | {
            "target": {"kind": target.kind, "name": target.name},
            "state": state,
            "acknowledged_digest": shown.package_digest,
            "applied_at": None if shown.scheduled_for else shown.applied_at.isoformat(),
            "scheduled_for": shown.scheduled_for.isoformat() if shown.scheduled_for else None,
            "scope": None if hit is None else {"owner": hit[1].owner,
                                               "whole_network": hit[1].whole_network},
        })  # fmt: skip
    return out


def rollout(change: Change, carried_by: Sequence[dict[str, Any]],
            acks: Mapping[str, list[Acknowledgement]], digests: Digests, now: dt.datetime,
            later: Sequence[dt.datetime]) -> dict[str, Any]:  # fmt: skip
    lines = [line for q in carried_by
             for line in status(change, q, acks.get(q["name"], []), digests, later)]  # fmt: skip
    pending = change.effective_from > now
    scheduled = sum(1 for line in lines if line["state"] == "scheduled")
    # A target that will switch on time counts while the change is ahead (see above).
    confirmed = sum(1 for line in lines if line["state"] == "confirmed") + (
        scheduled if pending else 0
    )
    c = change.certificate
    return {
        "id": str(change.id),
        "kind": change.kind,
        "party": change.party,
        "owner": change.owner,
        "changes": list(change.what),
        "description": change.description,
        "certificate": None if c is None else {
            "use": c.use,
            "sha256": c.sha256,
            "subject": c.subject,
            "accept_from": c.accept_from.isoformat(),
            "use_from": c.use_from.isoformat(),
            "accept_until": c.accept_until.isoformat() if c.accept_until != FOREVER else None,
        },
        "revision": change.revision,
        "effective_from": change.effective_from.isoformat(),
        "pending": pending,
        "confirmed": confirmed,
        "scheduled": scheduled,
        "access_points_total": len(lines),
        "access_points": lines,
    }  # fmt: skip
