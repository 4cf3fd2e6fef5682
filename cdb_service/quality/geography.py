"""The geographic rules of the quality report: coverage of the gazetteer's postal codes per
instrument and competence, and ties that priorities do not break.

Computed on the lookup index with the resolver's own ranking
(`lookup.resolver.candidate_keys`), so the report sees what `/resolve` answers.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from cdb_service.kernel import codes
from cdb_service.lookup.index import Criterion, geo_key, valid_on
from cdb_service.lookup.resolver import Query, candidate_keys, routing
from cdb_service.quality.findings import Finding, Inputs, valid_now_or_later

FIRST_PLACES = 20


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
        {(c["instrument"], c["competence"]) for c in criteria if valid_now_or_later(c, day)}
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
