"""Who is competent, and where to send: resolution over the in-memory lookup index.

Geographic keys are tried from the most specific to the least: postal code, the
postal-code prefixes from longest to shortest, LAU, NUTS3, NUTS2, NUTS1, country.
A query by postal code reaches the LAU and NUTS levels through the gazetteer.
Each authority is listed once, at its most specific match; ties are broken by
the criterion's priority (lower first), then by the authority's code, so the same
query at the same revision always gets the same answer.

The code order is not a verdict: when several authorities share the best rank and
priority the answer says so (`ambiguous`) and names what would separate them
(`narrow_by`): a query parameter the state's criteria are finer than, or `address`
when only the street address can (a postal code over two municipalities). An empty
answer says why (`explanation`) and lists the fallbacks, each with its routing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from cdb_service.kernel import codes
from cdb_service.kernel.geo import postal_unit
from cdb_service.lookup.explanations import explain
from cdb_service.lookup.index import Criterion, Entry, LookupIndex, geo_key, valid_on
from cdb_service.registry.kinds import KINDS
from cdb_service.security.policy import redact


@dataclass(frozen=True)
class Query:
    country: str
    instrument: str
    competence: str
    date: dt.date
    postal_code: str | None = None
    lau: str | None = None
    nuts: str | None = None
    subject_matter: str | None = None
    stage: str | None = None


def candidate_keys(index: LookupIndex, query: Query) -> list[tuple[int, int, str, str]]:
    """(specificity rank, -prefix length, scheme, code), most specific first."""
    cc = query.country
    out: list[tuple[int, int, str, str]] = []
    laus: set[str] = set()
    nuts3: set[str] = set()
    if query.postal_code:
        pc = query.postal_code
        out.append((0, 0, "postal-code", pc))
        unit = postal_unit(cc, pc)
        if unit != pc:  # IE, MT: the routing key / locality code is a postal code too
            out.append((0, 1, "postal-code", unit))
        out += [(1, -n, "postal-code-prefix", pc[:n]) for n in range(len(pc) - 1, 0, -1)]
        for lau, n3 in index.gazetteer.places_of(cc, pc):
            if lau:
                laus.add(lau)
            nuts3.add(n3)
    if query.lau:
        laus.add(query.lau)
        parent = index.gazetteer.nuts3_of_lau(cc, query.lau)
        if parent:
            nuts3.add(parent)
    out += [(2, 0, "lau", lau) for lau in sorted(laus)]
    levels: dict[str, set[str]] = {"nuts3": set(nuts3), "nuts2": set(), "nuts1": set()}
    if query.nuts:
        level = len(query.nuts) - 2
        levels[f"nuts{level}"].add(query.nuts)
    for code in list(levels["nuts3"]):
        levels["nuts2"].add(code[:4])
    for code in list(levels["nuts2"]):
        levels["nuts1"].add(code[:3])
    for rank, scheme in ((3, "nuts3"), (4, "nuts2"), (5, "nuts1")):
        out += [(rank, 0, scheme, code) for code in sorted(levels[scheme])]
    out.append((6, 0, "country", cc))
    return out


def _fits(criterion: Criterion, query: Query) -> bool:
    return (
        criterion.instrument == query.instrument
        and criterion.competence == query.competence
        and (not criterion.subject_matters or query.subject_matter in criterion.subject_matters)
        and (not criterion.stages or query.stage in criterion.stages)
        and valid_on(criterion, query.date)
    )


def _party_live(party: Entry, day: dt.date) -> bool:
    go_live = party.doc.get("go_live_at")
    return valid_on(party, day) and (go_live is None or go_live[:10] <= day.isoformat())


def resolve(index: LookupIndex, query: Query) -> dict[str, Any]:
    if not index.owners.takes_part(query.country, query.instrument):
        return not_participating(index, query)
    best: dict[uuid.UUID, tuple[tuple[Any, ...], Criterion, str, str]] = {}
    passed_over: dict[str, str] = {}  # authority code -> why it cannot be the answer
    # The place's criteria for the instrument and competence, whatever their subject
    # matter, stage and dates: they say why nothing matched and what would narrow a tie.
    at_place: list[Criterion] = []
    for rank, prefix, scheme, code in candidate_keys(index, query):
        for criterion in index.criteria_at(geo_key(query.country, scheme, code)):
            if (criterion.instrument, criterion.competence) == (query.instrument,
                                                                query.competence):  # fmt: skip
                at_place.append(criterion)
            if not _fits(criterion, query):
                continue
            authority = index.authorities.get(criterion.authority_id)
            if authority is None:
                continue
            if not valid_on(authority, query.date):
                passed_over[authority.doc["code"]] = "the authority is not valid on that date"
                continue
            party = _party_of(index, authority)
            if party is False or (isinstance(party, Entry) and not _party_live(party, query.date)):
                # its routing party is not valid on that date: it cannot be reached
                passed_over[authority.doc["code"]] = "its routing party is not live on that date"
                continue
            order = (rank, prefix, criterion.priority, authority.doc["code"])
            if criterion.authority_id not in best or order < best[criterion.authority_id][0]:
                best[criterion.authority_id] = (order, criterion, scheme, code)
    ranked = sorted(best.values(), key=lambda item: item[0])
    # Eurojust's matches are answered apart, never ranked among the member state's own
    # authorities: Eurojust receives beside them, it does not displace them.
    national_ranked: list[tuple[Any, ...]] = []
    national: list[dict[str, Any]] = []
    eurojust: list[dict[str, Any]] = []
    for item in ranked:
        _, criterion, scheme, code = item
        owner = index.authorities[criterion.authority_id].doc["owner"]
        match = _match(index, criterion, scheme, code, query)
        if owner == codes.EUROJUST:
            eurojust.append(match)
        else:
            national.append(match)
            national_ranked.append(item)
    matches = national
    # A tie is among the national authorities only (Eurojust's matches stand apart).
    tied = (
        [i for i in national_ranked if i[0][:3] == national_ranked[0][0][:3]]
        if national_ranked
        else []
    )
    body: dict[str, Any] = {
        "revision": index.revision,
        "query": _query_dict(query),
        "matches": matches,
        "eurojust": eurojust,
        "ambiguous": len(tied) > 1,
        "narrow_by": narrow_by(index, query, len(tied) > 1, at_place),
    }
    if not matches:
        body["explanation"] = explain(index, query, passed_over, at_place)
        body["fallbacks"] = fallbacks(index, query)
    return body


def not_participating(index: LookupIndex, query: Query) -> dict[str, Any]:
    """The state does not take part in the instrument: nobody there receives under it,
    whatever criteria were recorded, and no central authority for it stands in; its
    national correspondents remain (an EJN contact point says what applies instead)."""
    return {
        "revision": index.revision, "query": _query_dict(query), "matches": [],
        "eurojust": [], "ambiguous": False, "narrow_by": [],
        "explanation": {"reason": "not-participating",
                        "detail": index.owners.why_not(query.country, query.instrument)},
        "fallbacks": fallbacks(index, query) | {"central_authorities": []},
    }  # fmt: skip


# How specific each scheme tag is (0 = a whole postal code), and which query
# parameter reaches it: a postal code reaches every level through the gazetteer.
_LEVEL = {"p": 0, "x": 1, "l": 2, "n3": 3, "n2": 4, "n1": 5, "c": 6}
_REACHES = (("postal_code", 0), ("lau", 2), ("nuts", 3))


def _given_level(query: Query) -> int:
    if query.postal_code:
        return 0
    if query.lau:
        return 2
    if query.nuts:
        return 3 + (5 - len(query.nuts))  # DE300 → 3, DE30 → 4, DE3 → 5
    return 6


def narrow_by(index: LookupIndex, query: Query, ambiguous: bool,
              at_place: list[Criterion]) -> list[str]:  # fmt: skip
    """The query parameters that reach criteria finer than the query did, most precise
    first; `subject_matter` and `stage` where the place has criteria scoped by them that
    the query did not name (geography first: it is what senders know); `address` for a
    tie nothing in a query can break."""
    given = _given_level(query)
    levels = index.levels.get((query.country, query.instrument, query.competence), {})
    present = [_LEVEL[tag] for tag, count in levels.items() if count > 0 and tag in _LEVEL]
    finer = [
        name
        for name, reach in _REACHES
        if reach < given and any(reach <= level < given for level in present)
    ]
    live = [c for c in at_place if valid_on(c, query.date)]
    if query.subject_matter is None and any(c.subject_matters for c in live):
        finer.append("subject_matter")
    if query.stage is None and any(c.stages for c in live):
        finer.append("stage")
    if finer:
        return finer
    return ["address"] if ambiguous else []


def _party_of(index: LookupIndex, authority: Entry) -> Entry | bool | None:
    """The authority's routing party; None if it has none, False if it is not live then."""
    party_id = authority.doc.get("routing_party_id")
    if party_id is None:
        return None
    party = index.parties.get(uuid.UUID(str(party_id)))
    return party if party is not None and serves(party.doc, authority.doc["owner"]) else False


def serves(party: dict[str, Any], owner: str) -> bool:
    """Does this party serve `owner`'s entries? Its own owner's, and those it is shared
    with: an entry whose party was unshared from its owner is not routed through it."""
    return owner == party["owner"] or owner in (party.get("shared_with") or ())


def routing(index: LookupIndex, authority: Entry, day: dt.date) -> dict[str, Any] | None:
    party = _party_of(index, authority)
    if not isinstance(party, Entry) or not _party_live(party, day):
        return None
    doc = party.doc
    identifier = doc["identifiers"][0]
    roles = doc.get("roles") or []
    role = next((r for r in roles if "responder" in r.lower()), roles[0] if roles else None)
    service = (doc.get("services") or [None])[0]
    now = dt.datetime.now(dt.UTC).isoformat()
    expired = [
        c["sha256"] for c in doc.get("certificates") or [] if (c.get("not_after") or "") <= now
    ]
    return {
        "final_recipient": authority.doc["code"],
        "routing_party_id": doc["id"],
        "party_name": doc["name"],
        "to_party": {
            "party_id": identifier["party_id"],
            "party_id_type": identifier["party_id_type"],
            "role": role,
        },
        "endpoint_url": doc["endpoint_url"],
        "service": service,
        "certificate_expired": bool(expired),
        "expired_certificates": expired,
    }


def authority_summary(authority: Entry) -> dict[str, Any]:
    doc = authority.doc
    return {
        "id": doc["id"],
        "code": doc["code"],
        "kind": doc["kind"],
        "names": doc["names"],
        "owner": doc["owner"],
    }


def _match(index: LookupIndex, criterion: Criterion, scheme: str, code: str,
           query: Query) -> dict[str, Any]:  # fmt: skip
    authority = index.authorities[criterion.authority_id]
    return {
        "authority": authority_summary(authority),
        "criterion": {
            "id": str(criterion.id),
            "ref": criterion.ref,
            "priority": criterion.priority,
        },
        "matched_by": {"scheme": scheme, "code": code},
        "routing": routing(index, authority, query.date),
    }


def fallbacks(index: LookupIndex, query: Query) -> dict[str, Any]:
    """The state's central authority for the instrument and its national correspondent,
    each in one shape: its role, the authority (where a correspondent sits), routing."""
    central: list[dict[str, Any]] = []
    for criterion in index.criteria_at(geo_key(query.country, "country", query.country)):
        if criterion.instrument != query.instrument or criterion.competence != "central":
            continue
        authority = index.authorities.get(criterion.authority_id)
        if (
            authority is not None
            and valid_on(criterion, query.date)
            and valid_on(authority, query.date)
        ):
            central.append(_fallback("central-authority", authority, None, query.date, index))
    central.sort(key=lambda item: item["authority"]["code"])
    correspondents = sorted(
        (
            e.doc
            for e in index.correspondents.values()
            if e.doc["country"] == query.country
            and e.doc["type"] == "eurojust"
            and valid_on(e, query.date)
        ),
        key=lambda d: str(d.get("ref") or d["id"]),
    )
    private = KINDS["national-correspondents"].private_fields
    return {
        "central_authorities": central,
        "national_correspondents": [
            _fallback("national-correspondent", _seat(index, d), redact(d, private),
                      query.date, index)
            for d in correspondents
        ],
    }  # fmt: skip


def _seat(index: LookupIndex, correspondent: dict[str, Any]) -> Entry | None:
    seat = correspondent.get("authority_id")
    return index.authorities.get(uuid.UUID(str(seat))) if seat else None


def _fallback(role: str, authority: Entry | None, correspondent: dict[str, Any] | None,
              day: dt.date, index: LookupIndex) -> dict[str, Any]:  # fmt: skip
    return {
        "role": role,
        "authority": authority_summary(authority) if authority is not None else None,
        "routing": routing(index, authority, day) if authority is not None else None,
        "correspondent": correspondent,
    }


def _query_dict(query: Query) -> dict[str, Any]:
    out = {k: v for k, v in query.__dict__.items() if v is not None}
    out["date"] = query.date.isoformat()
    return out


def recipient(index: LookupIndex, code: str, day: dt.date) -> dict[str, Any] | None:
    """The authority behind a finalRecipient / originalSender value, with its routing."""
    authority_id = index.authority_by_code.get(code)
    if authority_id is None:
        return None
    authority = index.authorities[authority_id]
    return {
        "revision": index.revision,
        "authority": authority_summary(authority) | {"valid_on_date": valid_on(authority, day)},
        "routing": routing(index, authority, day),
        "ambiguous": False,  # a code names one authority
        "narrow_by": [],
    }


def national_members(index: LookupIndex, country: str, day: dt.date) -> dict[str, Any]:
    members = sorted(
        (e for e in index.members.values() if e.doc["country"] == country and valid_on(e, day)),
        key=lambda e: ("national-member", "deputy", "assistant").index(e.doc["role"]),
    )
    out = []
    for member in members:
        doc = redact(member.doc, KINDS["national-members"].private_fields)
        party_id = doc.get("routing_party_id")
        party = index.parties.get(uuid.UUID(str(party_id))) if party_id else None
        if party is not None and not serves(party.doc, member.doc["owner"]):
            party = None
        out.append({"member": doc, "routing": _member_routing(party, doc)})
    # Several members in the first role (two deputies and no member): the sender chooses.
    first = [m for m in members if members and m.doc["role"] == members[0].doc["role"]]
    return {"revision": index.revision, "country": country, "members": out,
            "ambiguous": len(first) > 1, "narrow_by": []}  # fmt: skip


def _member_routing(party: Entry | None, member: dict[str, Any]) -> dict[str, Any] | None:
    if party is None:
        return None
    identifier = party.doc["identifiers"][0]
    return {
        "final_recipient": codes.desk_code(member["country"]),
        "endpoint_url": party.doc["endpoint_url"],
        "to_party": {
            "party_id": identifier["party_id"],
            "party_id_type": identifier["party_id_type"],
        },
    }
