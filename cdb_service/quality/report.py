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

Coverage and ties are computed on the lookup index with the resolver's own geographic
ranking (`lookup.resolver.candidate_keys`), so the report sees what `/resolve` answers.
Each finding's `id` is a digest of its rule, its entry and what distinguishes it (not of
its wording or counts), so a tool can follow one finding across reports.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cdb_service.db.documents import date_of
from cdb_service.distribution import pmode
from cdb_service.kernel import codes
from cdb_service.lookup.index import Criterion, Entry, LookupIndex, geo_key, valid_on
from cdb_service.lookup.resolver import Query, candidate_keys, routing

SEVERITIES = ("error", "warning", "info")
CERTIFICATE_STEPS = ((0, "error"), (30, "error"), (60, "warning"), (90, "info"))
FIRST_PLACES = 20
# Records of events (announced windows, incidents), not standing facts: never "due for review".
EVENTS = frozenset({"maintenance-windows", "incidents"})


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    message: str
    action: str
    kind: str | None = None
    entry_id: str | None = None
    key: str | None = None
    # What tells two findings of one rule and entry apart (a certificate, an instrument).
    discriminator: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)

    def stable_id(self, owner: str) -> str:
        raw = "|".join((owner, self.rule, self.kind or "", self.entry_id or "", self.discriminator))
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def as_dict(self, owner: str) -> dict[str, Any]:
        return {
            "id": self.stable_id(owner),
            "rule": self.rule,
            "severity": self.severity,
            "kind": self.kind,
            "entry_id": self.entry_id,
            "key": self.key,
            "message": self.message,
            "action": self.action,
            "detail": dict(self.detail),
        }


@dataclass
class Inputs:
    """What the rules read: the owner's current documents and the lookup index."""

    owner: str
    today: dt.date
    review_days: int
    documents: Mapping[str, Sequence[Mapping[str, Any]]]  # kind -> the owner's documents
    index: LookupIndex


def _valid_now_or_later(doc: Mapping[str, Any], day: dt.date) -> bool:
    end = date_of(doc.get("valid_to"))
    return end is None or end >= day


def _entry(kind: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    key = doc.get("code") or doc.get("name") or doc.get("ref") or doc["id"]
    return {"kind": kind, "entry_id": str(doc["id"]), "key": str(key)}


def routing_rules(inputs: Inputs) -> Iterable[Finding]:
    day, index = inputs.today, inputs.index
    criteria_of: dict[str, int] = defaultdict(int)
    for crit in inputs.documents.get("jurisdiction-criteria", ()):
        if _valid_now_or_later(crit, day):
            criteria_of[str(crit["authority_id"])] += 1
    for doc in inputs.documents.get("authorities", ()):
        if not _valid_now_or_later(doc, day):
            continue
        entry = Entry(dict(doc))
        party_id = doc.get("routing_party_id")
        reachable = party_id is not None and routing(index, entry, day) is not None
        if reachable:
            continue
        used = criteria_of.get(str(doc["id"]), 0)
        why = "has no routing party" if party_id is None else "has a routing party that is not live"
        yield Finding(
            "unroutable-authority", "error" if used else "warning",
            f"{doc['code']} {why}" + (f" but {used} criteria send senders to it" if used else ""),
            "link the authority to a live routing party (routing_party_name), "
            "or retire its criteria",
            **_entry("authorities", doc), detail={"criteria": used},
        )  # fmt: skip
    served: set[str] = {str(a.doc.get("routing_party_id")) for a in index.authorities.values()}
    served |= {str(m.doc.get("routing_party_id")) for m in index.members.values()}
    for doc in inputs.documents.get("routing-parties", ()):
        if str(doc["id"]) not in served and _valid_now_or_later(doc, day):
            yield Finding(
                "unused-routing-party", "warning",
                f"routing party {doc['name']} serves no authority or national member",
                "link the authorities it serves to it, or retire it",
                **_entry("routing-parties", doc),
            )  # fmt: skip


def validity_rules(inputs: Inputs) -> Iterable[Finding]:
    day = inputs.today
    authorities = {str(d["id"]): d for d in inputs.documents.get("authorities", ())}
    for crit in inputs.documents.get("jurisdiction-criteria", ()):
        if not _valid_now_or_later(crit, day):
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
                **_entry("jurisdiction-criteria", crit),
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
                    **_entry("jurisdiction-criteria", crit),
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
                **_entry("routing-parties", doc), discriminator=str(cert.get("sha256")),
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
                **_entry("routing-parties", doc),
            )  # fmt: skip


def completeness_rules(inputs: Inputs) -> Iterable[Finding]:
    official = codes.OFFICIAL_LANGUAGES.get(inputs.owner, ())
    for doc in inputs.documents.get("authorities", ()):
        if not _valid_now_or_later(doc, inputs.today):
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
                **_entry("authorities", doc), detail={"missing": missing},
            )  # fmt: skip
        if not doc.get("contacts"):
            yield Finding(
                "contact-missing", "warning", f"{doc['code']} has no functional contact",
                "add a functional mailbox or switchboard (contacts)",
                **_entry("authorities", doc),
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
            if updated < limit and _valid_now_or_later(doc, inputs.today):
                yield Finding(
                    "review-due", "info",
                    f"unchanged since {updated.date().isoformat()} "
                    f"(review period {inputs.review_days} days)",
                    "check the entry is still right; any change (or PATCH of nothing but "
                    "valid_from) records the review",
                    **_entry(kind, doc),
                )  # fmt: skip


def _overlap(a: frozenset[str], b: frozenset[str]) -> bool:
    """Two criteria's scopes (subject matters, stages) meet: empty means every one."""
    return not a or not b or bool(a & b)


def geography_rules(inputs: Inputs, first: int = FIRST_PLACES) -> Iterable[Finding]:
    """Coverage of the state's postal codes and unbroken ties, per instrument and competence."""
    owner, day, index = inputs.owner, inputs.today, inputs.index
    if owner not in codes.COUNTRIES:
        return
    criteria = inputs.documents.get("jurisdiction-criteria", ())
    pairs = sorted(
        {(c["instrument"], c["competence"]) for c in criteria if _valid_now_or_later(c, day)}
    )
    postal = index.gazetteer.postal_codes(owner)
    if not pairs or not postal:
        return
    live: dict[uuid.UUID, bool] = {}

    def counts(criterion: Criterion) -> bool:
        """Whether /resolve would list this criterion's authority today."""
        if not valid_on(criterion, day):
            return False
        if criterion.authority_id not in live:
            authority = index.authorities.get(criterion.authority_id)
            live[criterion.authority_id] = (
                authority is not None
                and authority.doc.get("owner") == owner
                and valid_on(authority, day)
                and (
                    authority.doc.get("routing_party_id") is None
                    or routing(index, authority, day) is not None
                )
            )
        return live[criterion.authority_id]

    uncovered: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    ties: dict[tuple[str, str, frozenset[uuid.UUID]], list[str]] = defaultdict(list)
    region_total: dict[str, int] = defaultdict(int)
    for pc in sorted(postal):
        nuts3 = next((n3 for _, n3 in index.gazetteer.places_of(owner, pc)), "")
        region_total[nuts3] += 1
        best: dict[tuple[str, str], list[tuple[tuple[int, int, int], Criterion, str]]] = {}
        query = Query(owner, "", "", day, postal_code=pc)
        for rank, prefix, scheme, code in candidate_keys(index, query):
            for criterion in index.criteria_at(geo_key(owner, scheme, code)):
                pair = (criterion.instrument, criterion.competence)
                if pair not in pairs or not counts(criterion):
                    continue
                order = (rank, prefix, criterion.priority)
                found = best.setdefault(pair, [])
                if not found or order < found[0][0]:
                    best[pair] = [(order, criterion, f"{scheme} {code}")]
                elif order == found[0][0]:
                    found.append((order, criterion, f"{scheme} {code}"))
        for pair in pairs:
            top = best.get(pair)
            if not top:
                uncovered[pair].append((pc, nuts3))
                continue
            tied = {
                a.authority_id
                for a in (t[1] for t in top)
                for b in (t[1] for t in top)
                if a.authority_id != b.authority_id
                and _overlap(a.subject_matters, b.subject_matters)
                and _overlap(a.stages, b.stages)
            }
            if len(tied) > 1:
                ties[(*pair, frozenset(tied))].append(f"postal-code {pc} ({top[0][2]})")
    yield from _coverage_findings(inputs, pairs, postal, uncovered, region_total, first)
    for (instrument, competence, authority_ids), places in sorted(
        ties.items(), key=lambda item: (item[0][0], item[0][1], sorted(map(str, item[0][2])))
    ):
        names = sorted(index.authorities[a].doc["code"] for a in authority_ids)
        yield Finding(
            "unbroken-tie", "warning",
            f"{instrument}/{competence}: {', '.join(names)} tie at {len(places)} place(s); "
            "a sender cannot tell them apart",
            "give one of them a lower priority, a narrower geo key, or distinct subject "
            "matters or stages",
            discriminator=f"{instrument}/{competence}/{'/'.join(names)}",
            detail={"instrument": instrument, "competence": competence, "authorities": names,
                    "places": places[:first], "count": len(places)},
        )  # fmt: skip


def _coverage_findings(
    inputs: Inputs,
    pairs: Sequence[tuple[str, str]],
    postal: Sequence[str],
    uncovered: Mapping[tuple[str, str], Sequence[tuple[str, str]]],
    region_total: Mapping[str, int],
    first: int,
) -> Iterable[Finding]:
    for instrument, competence in pairs:
        missing = uncovered.get((instrument, competence), ())
        if not missing:
            continue
        share = 1 - len(missing) / len(postal)
        per_region: dict[str, int] = defaultdict(int)
        for _, nuts3 in missing:
            per_region[nuts3] += 1
        regions = sorted(r for r, n in per_region.items() if r and n == region_total[r])
        yield Finding(
            "coverage-gap", "error" if share < 0.5 else "warning",
            f"{instrument}/{competence}: {len(missing)} of {len(postal)} postal codes "
            f"({1 - share:.1%}) resolve to no authority"
            + (f"; whole NUTS3 regions: {', '.join(regions[:first])}" if regions else ""),
            "add a criterion for these places (a NUTS or postal-code key), or a "
            "country-level criterion as the fallback",
            discriminator=f"{instrument}/{competence}",
            detail={"instrument": instrument, "competence": competence,
                    "covered_share": round(share, 4), "uncovered_count": len(missing),
                    "uncovered_nuts3": regions[:first],
                    "uncovered_places": [{"postal_code": pc, "nuts3": n3}
                                         for pc, n3 in missing[:first]]},
        )  # fmt: skip


RULES = (
    routing_rules,
    validity_rules,
    certificate_rules,
    pmode_rules,
    completeness_rules,
    currency_rules,
    geography_rules,
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
