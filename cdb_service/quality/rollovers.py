"""Certificate rollovers the access points may not make in time (issue 28): the new
certificate must be in every truststore some working days before it is used, and the old
one accepted some working days after (Annex I 6.4's notice, 5 working days by default,
`CDB_ROLLOVER_MIN_OVERLAP_WORKING_DAYS`). A gap is refused when written; these are the
rollovers that are allowed but short.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from cdb_service.kernel.calendar import default_calendar, local_date
from cdb_service.quality.findings import Finding, Inputs, entry_of
from cdb_service.registry.kinds.routing_parties.rollover import Window, rollovers


def rollover_rules(inputs: Inputs) -> Iterable[Finding]:
    """`rollover-unsafe`: the new certificate is accepted fewer working days before it is
    used than the minimum; `rollover-late`: the old one stops being accepted fewer working
    days after the new one is accepted. Only rollovers still ahead on the report's day."""
    cal, minimum = default_calendar(), inputs.rollover_min_working_days
    for doc in inputs.documents.get("routing-parties", ()):
        windows = [w for w in (Window.of(c) for c in doc.get("certificates") or ()) if w]
        for old, new in rollovers(windows):
            if local_date(new.use_from) < inputs.today:
                continue
            ahead = cal.working_days_between(local_date(new.accept_from), local_date(new.use_from))
            after = cal.working_days_between(local_date(new.accept_from),
                                             local_date(old.accept_until))  # fmt: skip
            detail = {"use": new.use, "replaces": old.sha256, "by": new.sha256,
                      "accept_from": new.accept_from.isoformat(),
                      "use_from": new.use_from.isoformat(),
                      "old_accept_until": old.accept_until.isoformat(),
                      "minimum_working_days": minimum}  # fmt: skip
            if ahead < minimum:
                yield Finding(
                    "rollover-unsafe", "error",
                    f"{doc['name']}: the new {new.use} certificate is used {ahead} working "
                    f"day(s) after access points may first accept it (at least {minimum})",
                    f"set its accept_from at least {minimum} working days before use_from, "
                    "or move use_from later",
                    discriminator=f"unsafe/{new.sha256}", detail=detail | {"days": ahead},
                    **entry_of("routing-parties", doc),
                )  # fmt: skip
            if after < minimum:
                yield Finding(
                    "rollover-late", "warning",
                    f"{doc['name']}: the old {old.use} certificate stops being accepted {after} "
                    f"working day(s) after its successor is first accepted (at least {minimum})",
                    "keep the old certificate accepted longer (accept_until), or accept the "
                    "new one earlier",
                    discriminator=f"late/{new.sha256}", detail=detail | {"days": after},
                    **entry_of("routing-parties", doc),
                )  # fmt: skip


def unconfirmed_rules(inputs: Inputs) -> Iterable[Finding]:
    """`rollout-unconfirmed`: an access point of the owner (or one that must import the
    owner's new certificate) has not acknowledged the package carrying a pending switch
    of a certificate into use (`distribution/rollouts.py`): an error from
    `rollout_alert_working_days` working days before use_from (when the alert fires), a
    warning before."""
    cal = default_calendar()
    docs = {d["name"]: d for d in inputs.documents.get("routing-parties", ())}
    for r in inputs.rollouts:
        use_from = dt.datetime.fromisoformat(str(r["effective_from"]))
        days = cal.working_days_between(inputs.today, local_date(use_from))
        severity = "error" if days <= inputs.rollout_alert_working_days else "warning"
        for line in r["access_points"]:
            if line["state"] in ("confirmed", "scheduled"):  # scheduled: switches on time
                continue
            doc = docs.get(line["party"]) or docs.get(r["party"])
            if doc is None:
                continue
            target = line["target"]
            where = f"{line['party']}" + (f" ({target['kind']} {target['name']})" if target else "")
            yield Finding(
                "rollout-unconfirmed", severity,
                f"{where} has not confirmed the package that switches {r['party']}'s "
                f"{r['certificate']['use']} certificate into use at {use_from.isoformat()} "
                f"({'a stale package' if line['state'] == 'stale' else 'no acknowledgement'})",
                "import the package (GET /api/v1/packages/{party}?at=use_from) or run "
                "cdb-service connector-sync; it acknowledges when applied",
                discriminator=f"unconfirmed/{r['id']}/{line['party']}/"
                f"{target['kind'] + ':' + target['name'] if target else '-'}",
                detail={"rollout": r["id"], "package_digest": line["package_digest"],
                        "state": line["state"], "use_from": use_from.isoformat(),
                        "working_days_left": days},
                **entry_of("routing-parties", doc),
            )  # fmt: skip
