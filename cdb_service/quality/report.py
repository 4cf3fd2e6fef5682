"""The data-quality report of one owner: findings, each with severity, entry and what to do.

Rules (Annex I 7.6: complete, exact, current):

- routing: authorities without a valid routing party (an error when criteria send
  senders to them), routing parties that serve no one;
- references in time: criteria pointing at retired or not-yet-valid authorities;
- certificates expired or expiring within 30 / 60 / 90 days;
- routing parties whose data no valid PMode can carry (left out of every PMode);
- names missing in the state's official languages or in English; authorities without
  a contact;
- coverage: per instrument and competence, the share of the state's gazetteer postal
  codes that resolve to at least one authority, with the uncovered places;
- ties that priorities do not break: the ambiguities a sender meets;
- entries unchanged for longer than the review period.

Coverage and ties (`geography.py`) are computed on the lookup index with the resolver's
own geographic ranking (`lookup.resolver.candidate_keys`), so the report sees what
`/resolve` answers.
Each finding's `id` is a digest of its rule, its entry and what distinguishes it (not of
its wording or counts), so a tool can follow one finding across reports.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from cdb_service.db.documents import date_of
from cdb_service.distribution import pmode
from cdb_service.kernel import codes
from cdb_service.lookup.index import Entry
from cdb_service.lookup.resolver import routing, serves
from cdb_service.quality.findings import SEVERITIES, Finding, Inputs, entry_of, valid_now_or_later
from cdb_service.quality.geography import geography_rules
from cdb_service.quality.rollovers import rollover_rules, unconfirmed_rules
from cdb_service.quality.stale_geography import stale_geography_rules

CERTIFICATE_STEPS = ((0, "error"), (30, "error"), (60, "warning"), (90, "info"))


# Records of events (announced windows, incidents), not standing facts: never "due for review".
EVENTS = frozenset({"maintenance-windows", "incidents"})


def routing_rules(inputs: Inputs) -> Iterable[Finding]:
    day, index = inputs.today, inputs.index
    criteria_of: dict[str, int] = defaultdict(int)
    for crit in inputs.documents.get("jurisdiction-criteria", ()):
        if valid_now_or_later(crit, day):
            criteria_of[str(crit["authority_id"])] += 1
    for doc in inputs.documents.get("authorities", ()):
        if not valid_now_or_later(doc, day):
            continue
        entry = Entry(dict(doc))
        party_id = doc.get("routing_party_id")
        reachable = party_id is not None and routing(index, entry, day) is not None
        if reachable:
            continue
        used = criteria_of.get(str(doc["id"]), 0)
        party = index.parties.get(uuid.UUID(str(party_id))) if party_id is not None else None
        if party_id is None:
            why = "has no routing party"
        elif party is not None and not serves(party.doc, doc["owner"]):
            why = (f"names routing party {party.doc['name']}, which {party.doc['owner']} no "
                   f"longer shares with {doc['owner']}, so nothing is routed to it")  # fmt: skip
        else:
            why = "has a routing party that is not live"
        yield Finding(
            "unroutable-authority", "error" if used else "warning",
            f"{doc['code']} {why}" + (f" but {used} criteria send senders to it" if used else ""),
            "link the authority to a live routing party (routing_party_name), "
            "or retire its criteria",
            **entry_of("authorities", doc), detail={"criteria": used},
        )  # fmt: skip
    served: set[str] = {str(a.doc.get("routing_party_id")) for a in index.authorities.values()}
    served |= {str(m.doc.get("routing_party_id")) for m in index.members.values()}
    for doc in inputs.documents.get("routing-parties", ()):
        if str(doc["id"]) not in served and valid_now_or_later(doc, day):
            yield Finding(
                "unused-routing-party", "warning",
                f"routing party {doc['name']} serves no authority or national member",
                "link the authorities it serves to it, or retire it",
                **entry_of("routing-parties", doc),
            )  # fmt: skip


def validity_rules(inputs: Inputs) -> Iterable[Finding]:
    day = inputs.today
    authorities = {str(d["id"]): d for d in inputs.documents.get("authorities", ())}
    for crit in inputs.documents.get("jurisdiction-criteria", ()):
        if not valid_now_or_later(crit, day):
            continue
        authority = authorities.get(str(crit["authority_id"]))
        if authority is None:
            continue
        ended, starts = date_of(authority.get("valid_to")), date_of(authority.get("valid_from"))
        if ended is not None and ended < day:
            yield Finding(
                "criterion-on-retired-authority", "error",
                f"criterion {crit.get('ref')} names {authority['code']}, retired on "
                f"{ended.isoformat()}: senders following it reach no one",
                "point the criterion at the authority that took over, or retire it",
                **entry_of("jurisdiction-criteria", crit),
                detail={"authority": authority["code"], "valid_to": ended.isoformat()},
            )  # fmt: skip
        elif starts is not None and starts > day:
            crit_starts = date_of(crit.get("valid_from"))
            if crit_starts is None or crit_starts < starts:
                yield Finding(
                    "criterion-before-authority", "warning",
                    f"criterion {crit.get('ref')} is valid before {authority['code']} is "
                    f"(from {starts.isoformat()})",
                    "give the criterion the authority's valid_from",
                    **entry_of("jurisdiction-criteria", crit),
                    detail={"authority": authority["code"], "valid_from": starts.isoformat()},
                )  # fmt: skip


def certificate_rules(inputs: Inputs) -> Iterable[Finding]:
    now = dt.datetime.combine(inputs.today, dt.time(), dt.UTC)
    for doc in inputs.documents.get("routing-parties", ()):
        for cert in doc.get("certificates") or ():
            if not cert.get("not_after"):
                continue
            not_after = dt.datetime.fromisoformat(str(cert["not_after"]))
            days = (not_after - now).days
            step = next(((limit, sev) for limit, sev in CERTIFICATE_STEPS if days < limit), None)
            if step is None:
                continue
            what = "expired" if days < 0 else f"expires within {step[0]} days"
            yield Finding(
                "certificate-expiry", step[1],
                f"{doc['name']}: the {cert.get('use')} certificate {what} "
                f"({not_after.date().isoformat()})",
                "upload the renewed certificate (POST /routing-parties/certificate-rotation)",
                **entry_of("routing-parties", doc), discriminator=str(cert.get("sha256")),
                detail={"use": cert.get("use"), "not_after": cert["not_after"], "days": days},
            )  # fmt: skip


def pmode_rules(inputs: Inputs) -> Iterable[Finding]:
    """Parties left out of every PMode (their data cannot be expressed validly)."""
    for doc in inputs.documents.get("routing-parties", ()):
        why = pmode.inexpressible(dict(doc))
        if why is not None:
            yield Finding(
                "inexpressible-in-pmode", "error",
                f"{doc['name']}: left out of every PMode the connectors load: {why}",
                "correct the party's identifiers, roles, services, actions or endpoint",
                **entry_of("routing-parties", doc),
            )  # fmt: skip


def completeness_rules(inputs: Inputs) -> Iterable[Finding]:
    official = codes.OFFICIAL_LANGUAGES.get(inputs.owner, ())
    for doc in inputs.documents.get("authorities", ()):
        if not valid_now_or_later(doc, inputs.today):
            continue
        names = doc.get("names") or {}
        missing = [] if "en" in names else ["en"]
        if official and not any(lang in names for lang in official):
            missing.insert(0, "/".join(official))
        if missing:
            yield Finding(
                "name-missing", "warning",
                f"{doc['code']} has no name in {' or '.join(missing)}",
                f"add names.{missing[0].split('/')[0]}",
                **entry_of("authorities", doc), detail={"missing": missing},
            )  # fmt: skip
        if not doc.get("contacts"):
            yield Finding(
                "contact-missing", "warning", f"{doc['code']} has no functional contact",
                "add a functional mailbox or switchboard (contacts)",
                **entry_of("authorities", doc),
            )  # fmt: skip


def currency_rules(inputs: Inputs) -> Iterable[Finding]:
    limit = dt.datetime.combine(inputs.today, dt.time(), dt.UTC) - dt.timedelta(
        days=inputs.review_days
    )
    for kind, docs in inputs.documents.items():
        if kind in EVENTS:
            continue
        for doc in docs:
            updated = dt.datetime.fromisoformat(str(doc["updated_at"]))
            if updated < limit and valid_now_or_later(doc, inputs.today):
                yield Finding(
                    "review-due", "info",
                    f"unchanged since {updated.date().isoformat()} "
                    f"(review period {inputs.review_days} days)",
                    "check the entry is still right; any change (or PATCH of nothing but "
                    "valid_from) records the review",
                    **entry_of(kind, doc),
                )  # fmt: skip


RULES = (
    routing_rules,
    validity_rules,
    certificate_rules,
    pmode_rules,
    completeness_rules,
    currency_rules,
    geography_rules,
    stale_geography_rules,
    rollover_rules,
    unconfirmed_rules,
)


def findings(inputs: Inputs) -> list[Finding]:
    out = [f for rule in RULES for f in rule(inputs)]
    return sorted(out, key=lambda f: (SEVERITIES.index(f.severity), f.rule, f.key or ""))


def report(inputs: Inputs) -> dict[str, Any]:
    found = findings(inputs)
    summary = dict.fromkeys(SEVERITIES, 0)
    for finding in found:
        summary[finding.severity] += 1
    return {
        "owner": inputs.owner,
        "date": inputs.today.isoformat(),
        "revision": inputs.index.revision,
        "summary": summary,
        "findings": [f.as_dict(inputs.owner) for f in found],
    }


CSV_COLUMNS = ("id", "severity", "rule", "kind", "key", "entry_id", "message", "action")


def as_csv(body: Mapping[str, Any]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for finding in body["findings"]:
        writer.writerow(["" if finding[c] is None else finding[c] for c in CSV_COLUMNS])
    return out.getvalue()
