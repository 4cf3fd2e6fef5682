"""Why a resolve matched nothing: the most basic reason first, as a machine code and a
sentence (`explanation` in the answer).

The place's own criteria for the instrument and competence speak before the state's:
a place covered only for another subject matter or stage is told so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cdb_service.lookup.index import Criterion, LookupIndex, valid_on

if TYPE_CHECKING:
    from cdb_service.lookup.resolver import Query


def explain(index: LookupIndex, query: Query, passed_over: dict[str, str],
            at_place: list[Criterion]) -> dict[str, Any]:  # fmt: skip
    """Why nothing matched, most basic reason first (a machine code and a sentence).

    The place's own criteria speak first: a place covered only for another subject
    matter or stage is told so, not that no criterion is valid. Where the place has
    none, the state's criteria for the instrument and competence are what is said."""
    cc, what = query.country, f"{query.instrument}/{query.competence}"
    slots = index.by_purpose.get((cc, query.instrument, query.competence), set())
    criteria = [c for c in (index.criteria[s] for s in sorted(slots)) if c is not None]
    if not criteria:
        return {"reason": "no-criterion",
                "detail": f"{cc} has no jurisdiction criterion for {what}"}  # fmt: skip
    pool, where = (list(at_place), "this place") if at_place else (criteria, cc)
    by_subject = [
        c for c in pool if not c.subject_matters or query.subject_matter in c.subject_matters
    ]
    if not by_subject:
        covered = sorted({s for c in pool for s in c.subject_matters})
        return {"reason": "subject-matter-not-covered",
                "detail": f"{where} has criteria for {what} only for subject matter "
                          f"{', '.join(covered)}, not "
                          f"{query.subject_matter or '(none given)'}"}  # fmt: skip
    scoped = [c for c in by_subject if not c.stages or query.stage in c.stages]
    if not scoped:
        covered = sorted({s for c in by_subject for s in c.stages})
        return {"reason": "stage-not-covered",
                "detail": f"{where} has criteria for {what} only for stage "
                          f"{', '.join(covered)}, not {query.stage or '(none given)'}"}  # fmt: skip
    if not any(valid_on(c, query.date) for c in scoped):
        return {"reason": "not-valid-on-date",
                "detail": f"{where} has {len(scoped)} criteria for {what}; none is valid on "
                          f"{query.date.isoformat()}"}  # fmt: skip
    if passed_over:
        return {"reason": "only-unroutable",
                "detail": "the only authorities for this place are retired or cannot be "
                          "reached on that date",
                "candidates": [{"code": code, "why": why}
                               for code, why in sorted(passed_over.items())]}  # fmt: skip
    return {"reason": "place-not-covered", "detail": _uncovered(index, query)}


def _uncovered(index: LookupIndex, query: Query) -> str:
    cc = query.country
    if query.postal_code and not index.gazetteer.places_of(cc, query.postal_code):
        if not index.gazetteer.covers(cc):
            return (f"no criterion for this place; no gazetteer is loaded for {cc}, so a postal "
                    "code reaches only criteria set on postal codes")  # fmt: skip
        return (f"no criterion for this place; postal code {query.postal_code} is not in "
                f"{cc}'s gazetteer")  # fmt: skip
    if query.lau and index.gazetteer.nuts3_of_lau(cc, query.lau) is None:
        return f"no criterion for this place; LAU {query.lau} is not in {cc}'s gazetteer"
    return "no criterion valid on that date covers this place"
