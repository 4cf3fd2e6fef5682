"""Which places a jurisdiction criterion covers, where it meets another authority's, and
which places a change leaves without a competent authority: read on the lookup index,
the way `/resolve` reads it (`resolver.candidate_keys`).

A place is a postal code of the gazetteer: a criterion keyed by a LAU, a NUTS region, a
postal-code prefix or the whole country covers every postal code the gazetteer puts in
it, so a court keyed by 80331 and another keyed by NUTS 3 DE212 (which holds 80331) meet
there, although their keys differ. Where the gazetteer has no places for a key (a country
not loaded, a LAU it does not know), the key itself is the place, and it still meets the
keys above it (a NUTS 3 region its NUTS 2 and its country).

The work is bounded: a criterion can cover a whole country, so only its first
PLACES_CHECKED places are looked at (for all of an authority's criteria together), and
what was not is counted and said.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cdb_service.console.i18n import gettext, ngettext
from cdb_service.console.pages import label_of
from cdb_service.lookup.index import Criterion, Gazetteer, LookupIndex, geo_key
from cdb_service.lookup.resolver import Query, candidate_keys
from cdb_service.registry.kinds import KINDS

# How many places one check looks at for ties or coverage (about 0.1 ms each).
PLACES_CHECKED = 1000
# How many postal codes of one country are read to expand a region (a country's
# gazetteer may hold hundreds of thousands): past it, the count is a lower bound.
SCAN_LIMIT = 200_000
# How many places a sentence names (the rest are counted: "and 12 more").
SHOWN = 10

# A criterion's priority when none is given (the contract's default).
PRIORITY = int(KINDS["jurisdiction-criteria"].schema.model_fields["priority"].default)

# (country, scheme, code): a postal code of the gazetteer, or a key it cannot expand.
Place = tuple[str, str, str]
REGIONS = ("postal-code-prefix", "lau", "nuts3", "nuts2", "nuts1", "country")


@dataclass
class Coverage:
    """A criterion's places: the first PLACES_CHECKED (sorted) and how many in all."""

    places: list[Place] = field(default_factory=list)
    total: int = 0
    at_least: bool = False  # the gazetteer was not read to its end


def _keys(geo: Iterable[Any], owner: str) -> list[Place]:
    return [
        (str(g.get("country") or owner), str(g.get("scheme")), str(g.get("code")))
        for g in geo
        if isinstance(g, dict) and g.get("scheme") and g.get("code")
    ]


Pairs = tuple[tuple[str, str], ...]
# Each country's postal codes with their (LAU, NUTS 3) pairs, by the gazetteer's stamp:
# read once, not looked up code by code at every page (a few countries kept).
_TABLES: dict[tuple[str, str], list[tuple[str, Pairs]]] = {}
TABLES_KEPT = 4


def _table(gazetteer: Gazetteer, country: str) -> list[tuple[str, Pairs]]:
    here = gazetteer.countries.get(country)
    if here is None:
        return []
    key = (country, here.stamp)
    if key not in _TABLES:
        if len(_TABLES) >= TABLES_KEPT:
            _TABLES.pop(next(iter(_TABLES)))
        codes = gazetteer.postal_codes(country)[:SCAN_LIMIT]
        _TABLES[key] = [(c, gazetteer.places_of(country, c)) for c in codes]
    return _TABLES[key]


def _inside(pairs: Pairs, postal: str, keys: Sequence[Place]) -> bool:
    """Whether a postal code (with its LAU and NUTS 3 pairs) lies in one of these keys."""
    for _, scheme, code in keys:
        if scheme == "country" or (scheme == "postal-code-prefix" and postal.startswith(code)):
            return True
        if scheme == "lau" and any(lau == code for lau, _ in pairs):
            return True
        if scheme.startswith("nuts") and any(n3.startswith(code) for _, n3 in pairs):
            return True
    return False


def covered(gazetteer: Gazetteer, geo: Iterable[Any], owner: str,
            cap: int = PLACES_CHECKED) -> Coverage:  # fmt: skip
    """The places a criterion's geo keys cover (a postal code typed twice, or also in a
    region typed beside it, is one place)."""
    keys = _keys(geo, owner)
    named = {k for k in keys if k[1] == "postal-code" or not gazetteer.covers(k[0])}
    regions: dict[str, list[Place]] = {}
    for key in keys:
        if key not in named:
            regions.setdefault(key[0], []).append(key)
    found: list[Place] = []
    total, at_least = 0, False
    for country, inside in sorted(regions.items()):
        table = _table(gazetteer, country)
        at_least |= len(table) >= SCAN_LIMIT
        reached: set[Place] = set()
        if any(k[1] == "country" for k in inside):  # the whole country: nothing to test
            total += len(table)
            found += [(country, "postal-code", c) for c, _ in table[: max(0, cap - len(found))]]
            reached = set(inside)
        for postal, pairs in table if not reached else ():
            if _inside(pairs, postal, inside):
                total += 1
                if len(found) < cap:
                    found.append((country, "postal-code", postal))
                for key in inside if len(reached) < len(inside) else ():
                    if key not in reached and _inside(pairs, postal, [key]):
                        reached.add(key)
        # A region the gazetteer puts no postal code in is a place of its own.
        named.update(k for k in inside if k not in reached)
        named -= {p for p in named if p[0] == country and p[1] == "postal-code"
                  and _inside(gazetteer.places_of(country, p[2]), p[2], inside)}  # fmt: skip
    total += len(named)
    found += sorted(named)
    found.sort(key=lambda p: (p[0], p[2], p[1]))
    return Coverage(found[:cap], total, at_least)


def candidates(index: LookupIndex, place: Place) -> list[tuple[int, int, str, str]]:
    """The keys that reach a place, most specific first (as `/resolve` tries them)."""
    country, scheme, code = place
    day = dt.date.today()
    if scheme == "postal-code":
        return candidate_keys(index, Query(country, "", "", day, postal_code=code))
    if scheme == "lau":
        return candidate_keys(index, Query(country, "", "", day, lau=code))
    if scheme.startswith("nuts"):
        return candidate_keys(index, Query(country, "", "", day, nuts=code))
    if scheme == "postal-code-prefix":
        prefixes = [(1, -n, scheme, code[:n]) for n in range(len(code), 0, -1)]
        return [*prefixes, (6, 0, "country", country)]
    return [(6, 0, "country", country)]


def spoken(place: Place, owner: str) -> str:
    """A place as a clerk names it: a postal code as it is, a region with its level."""
    country, scheme, code = place
    where = "" if country == owner else f" ({country})"
    label = {"postal-code": "{code}", "postal-code-prefix": gettext("postal codes {code}"),
             "lau": "LAU {code}", "nuts3": "NUTS 3 {code}", "nuts2": "NUTS 2 {code}",
             "nuts1": "NUTS 1 {code}", "country": gettext("all of {code}"),
             }.get(scheme, "{code}")  # fmt: skip
    return label.format(code=code) + where


def named(places: Sequence[Place], owner: str, total: int | None = None) -> str:
    """'80331, 80333 and 12 more'."""
    count = len(places) if total is None else total
    shown = ", ".join(spoken(p, owner) for p in places[:SHOWN])
    more = count - min(len(places), SHOWN)
    return shown + (gettext(" and {count} more").format(count=more) if count > SHOWN else "")


# --- who else is competent there -----------------------------------------------------


def _meets(a: frozenset[str], b: frozenset[str]) -> bool:
    """Two scopes (subject matters, stages) meet: an empty one is every one."""
    return not a or not b or bool(a & b)


def _spans(wide: frozenset[str], narrow: frozenset[str]) -> bool:
    """Whether a scope holds all of another (an empty one holds everything)."""
    return not wide or (bool(narrow) and narrow <= wide)


def _live(index: LookupIndex, criterion: Criterion, owner: str, day: dt.date) -> bool:
    """A criterion of the owner's authorities that counts on `day` or later."""
    if criterion.valid_to is not None and criterion.valid_to < day:
        return False
    authority = index.authorities.get(criterion.authority_id)
    return (
        authority is not None
        and authority.doc.get("owner") == owner
        and (authority.valid_to is None or authority.valid_to >= day)
    )


@dataclass
class Tie:
    authority_id: uuid.UUID
    label: str
    instrument: str
    competence: str
    places: list[Place] = field(default_factory=list)
    # Whether somewhere both are found at the same rank (a look-up cannot choose),
    # not only one inside the other's region (the more precise key is answered first).
    same_rank: bool = False


def ties(index: LookupIndex, authority_id: Any, owner: str, criteria: Sequence[dict[str, Any]],
         skip: Iterable[Any] = (), day: dt.date | None = None
         ) -> tuple[list[Tie], int]:  # fmt: skip
    """Where another authority of the owner is competent for a place these criteria cover,
    for the same instrument and competence, overlapping subject matters and stages and
    the same priority; and how many places were left unchecked (over PLACES_CHECKED)."""
    day = day or dt.date.today()
    skipped = {str(s) for s in skip}
    found: dict[uuid.UUID, Tie] = {}
    unchecked = checked = 0
    for c in criteria:
        pair = (c.get("instrument"), c.get("competence"))
        subjects = frozenset(c.get("subject_matters") or ())
        stages = frozenset(c.get("stages") or ())
        given = c.get("priority")
        priority = PRIORITY if given is None else int(given)
        own = {(k[1], k[2]) for k in _keys(c.get("geo") or [], owner)}
        # One budget for all the criteria: an authority may have a hundred.
        budget = max(0, PLACES_CHECKED - checked)
        coverage = covered(index.gazetteer, c.get("geo") or [], owner, cap=budget)
        unchecked += coverage.total - len(coverage.places)
        checked += len(coverage.places)
        for place in coverage.places:
            keys = candidates(index, place)
            mine = min(((r, p) for r, p, s, k in keys if (s, k) in own), default=(9, 0))
            seen: set[uuid.UUID] = set()
            for rank, prefix, scheme, code in keys:
                for other in index.criteria_at(geo_key(place[0], scheme, code)):
                    if (str(other.id) in skipped or str(other.authority_id) == str(authority_id)
                            or (other.instrument, other.competence) != pair
                            or other.priority != priority or other.id in seen
                            or not _meets(other.subject_matters, subjects)
                            or not _meets(other.stages, stages)
                            or not _live(index, other, owner, day)):  # fmt: skip
                        continue
                    seen.add(other.id)
                    tie = found.get(other.authority_id)
                    if tie is None:
                        doc = index.authorities[other.authority_id].doc
                        tie = found[other.authority_id] = Tie(
                            other.authority_id, label_of(KINDS["authorities"], doc),
                            str(pair[0]), str(pair[1]))  # fmt: skip
                    if place not in tie.places:
                        tie.places.append(place)
                    tie.same_rank |= (rank, prefix) == mine
    return sorted(found.values(), key=lambda t: t.label), unchecked


def uncovered(index: LookupIndex, owner: str, before: dict[str, Any],
              after: dict[str, Any] | None, day: dt.date | None = None,
              gone_authority: Any = None, cap: int = PLACES_CHECKED
              ) -> tuple[list[Place], int]:  # fmt: skip
    """The places `before` covers that `after` (None: nothing) does not and that no other
    live criterion of the owner covers for the same instrument and competence (with a
    scope that holds `before`'s) on `day`; and how many places were left unchecked.
    `gone_authority`: an authority that is going too (its other criteria count for nothing)."""
    day = day or dt.date.today()
    pair = (before.get("instrument"), before.get("competence"))
    kept: set[tuple[str, str, str]] = set()
    if after is not None and (after.get("instrument"), after.get("competence")) == pair:
        kept = set(_keys(after.get("geo") or [], owner))
    subjects = frozenset(before.get("subject_matters") or ())
    stages = frozenset(before.get("stages") or ())
    coverage = covered(index.gazetteer, before.get("geo") or [], owner, cap=cap)
    out: list[Place] = []
    for place in coverage.places:
        keys = candidates(index, place)
        if any((place[0], s, k) in kept for _, _, s, k in keys):
            continue
        others = (o for _, _, s, k in keys for o in index.criteria_at(geo_key(place[0], s, k)))
        if not any(
            str(o.id) != str(before.get("id"))
            and str(o.authority_id) != str(gone_authority)
            and (o.instrument, o.competence) == pair
            and _spans(o.subject_matters, subjects)
            and _spans(o.stages, stages)
            and _live(index, o, owner, day)
            for o in others
        ):
            out.append(place)
    return out, coverage.total - len(coverage.places)


# --- in the clerk's words (a preview's consequences) ---------------------------------


def tie_sentences(index: LookupIndex, owner: str, before: dict[str, Any] | None,
                  after: dict[str, Any]) -> list[str]:  # fmt: skip
    """The ties a criterion creates: places where another authority is competent too,
    less those its previous version had already."""
    authority_id = after.get("authority_id")
    if not authority_id:
        return []
    skip = [after.get("id")] if after.get("id") else []
    old: set[tuple[uuid.UUID, Place]] = set()
    if before is not None and str(before.get("authority_id")) == str(authority_id):
        had, _ = ties(index, authority_id, owner, [before], skip)
        old = {(t.authority_id, p) for t in had for p in t.places}
    found, unchecked = ties(index, authority_id, owner, [after], skip)
    out = []
    for tie in found:
        new = [p for p in tie.places if (tie.authority_id, p) not in old]
        if not new:
            continue
        why = (gettext("A sender's look-up there finds both authorities at the same rank "
                       "and cannot choose between them.") if tie.same_rank else
               gettext("Both are competent there; a look-up answers first the one whose "
                       "criterion names the place more precisely."))  # fmt: skip
        said = ngettext("A tie with {authority} ({instrument}, {competence}) on {count} "
                        "place: {places}.",
                        "A tie with {authority} ({instrument}, {competence}) on {count} "
                        "places: {places}.", len(new))  # fmt: skip
        out.append(said.format(authority=tie.label, instrument=tie.instrument,
                               competence=tie.competence, count=len(new),
                               places=named(new, owner)) + " " + why)  # fmt: skip
    if unchecked:
        said = ngettext("{count} more place of this criterion was not checked for ties (it "
                        "covers many).",
                        "{count} more places of this criterion were not checked for ties (it "
                        "covers many).", unchecked)  # fmt: skip
        out.append(said.format(count=unchecked))
    return out


def uncovered_sentences(index: LookupIndex, owner: str, before: dict[str, Any] | None,
                        after: dict[str, Any] | None, day: dt.date | None = None,
                        gone_authority: Any = None, cap: int = PLACES_CHECKED
                        ) -> list[str]:  # fmt: skip
    """The places a criterion stops covering that nothing else of the owner covers."""
    if before is None:
        return []
    places, unchecked = uncovered(index, owner, before, after, day, gone_authority, cap)
    if not places:
        return []
    when = (
        gettext("From {day}: ").format(day=day.isoformat()) if day and day > dt.date.today() else ""
    )
    more = ngettext(" ({count} more place not checked)", " ({count} more places not checked)",
                    unchecked).format(count=unchecked) if unchecked else ""  # fmt: skip
    said = ngettext("{count} place no longer covered for {instrument} ({competence}): "
                    "{places}{more}. A look-up there finds no competent authority.",
                    "{count} places no longer covered for {instrument} ({competence}): "
                    "{places}{more}. A look-up there finds no competent authority.",
                    len(places))  # fmt: skip
    return [when + said.format(count=len(places), instrument=before.get("instrument"),
                               competence=before.get("competence"),
                               places=named(places, owner), more=more)]  # fmt: skip
