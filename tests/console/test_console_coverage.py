"""What the console says a criterion covers, ties with and leaves uncovered, by place
(through the gazetteer) rather than by identical keys: on PostgreSQL and SQLite, over a
lookup index built from the registry as `/resolve` reads it."""

from __future__ import annotations

from typing import Any

from cdb_service.console import coverage
from cdb_service.lookup import snapshot
from cdb_service.lookup.gazetteer import Place, replace_country
from cdb_service.lookup.index import LookupIndex
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.services import Services
from tests.support import factories

MUNICH = "09162000"


async def _create(services: Services, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    spec = KINDS[kind]
    return (await services.writes.create(spec, validate(spec, body), "test")).document


def _geo(*keys: tuple[str, str]) -> list[dict[str, str]]:
    return [{"scheme": s, "code": c} for s, c in keys]


async def _registry(services: Services) -> tuple[LookupIndex, dict[str, Any], dict[str, Any]]:
    """Munich (two postal codes in one LAU and NUTS 3 region) and Berlin in the gazetteer;
    a prosecution competent for all of NUTS 3 DE212 (Munich), and a new court."""
    await replace_country(services.sessions, "DE", [
        Place("80331", MUNICH, "DE212"), Place("80333", MUNICH, "DE212"),
        Place("10115", "11000000", "DE300")], "test")  # fmt: skip
    court = await _create(services, "authorities", factories.authority(code="DE:AG-NEU"))
    await _create(services, "authorities", factories.authority(code="DE:STA-MUENCHEN"))
    criterion = await _create(services, "jurisdiction-criteria", factories.criterion(
        ref="sta", authority_code="DE:STA-MUENCHEN", geo=_geo(("nuts3", "DE212"))))  # fmt: skip
    return await snapshot.build(services.sessions, record=False), court, criterion


def _mine(court: dict[str, Any], *keys: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {"authority_id": court["id"], "instrument": "eio", "competence": "execute",
            "geo": _geo(*keys)} | extra  # fmt: skip


def _codes(places: list[coverage.Place]) -> list[str]:
    return [code for _, _, code in places]


async def test_a_region_covers_the_postal_codes_the_gazetteer_puts_in_it(
    services: Services,
) -> None:
    index, _, _ = await _registry(services)
    region = coverage.covered(index.gazetteer, _geo(("nuts3", "DE212")), "DE")
    assert _codes(region.places) == ["80331", "80333"] and region.total == 2
    # A postal code typed beside the region that holds it is one place, not two.
    both = coverage.covered(index.gazetteer, _geo(("lau", MUNICH), ("postal-code", "80331")), "DE")
    assert _codes(both.places) == ["80331", "80333"] and both.total == 2
    assert coverage.covered(index.gazetteer, _geo(("country", "DE")), "DE").total == 3
    # A country without a gazetteer: the key is the place.
    france = coverage.covered(index.gazetteer, [{"scheme": "nuts3", "code": "FR101",
                                                 "country": "FR"}], "DE")  # fmt: skip
    assert france.places == [("FR", "nuts3", "FR101")] and france.total == 1
    # Bounded: only the first places are listed, all are counted.
    capped = coverage.covered(index.gazetteer, _geo(("country", "DE")), "DE", cap=1)
    assert _codes(capped.places) == ["10115"] and capped.total == 3
    # A sentence names the first ten places and counts the rest.
    many = [("DE", "postal-code", f"{n:05d}") for n in range(12)]
    assert coverage.named(many, "DE").endswith("00008, 00009 and 2 more")
    assert coverage.named(many[:3], "DE", total=40) == "00000, 00001, 00002 and 37 more"


async def test_a_postal_code_inside_another_authority_s_region_is_a_tie(
    services: Services,
) -> None:
    index, court, _ = await _registry(services)
    mine = _mine(court, ("postal-code", "80331"))
    found, unchecked = coverage.ties(index, court["id"], "DE", [mine])
    assert [(t.label.split(" ")[0], _codes(t.places), t.same_rank) for t in found] == [
        ("DE:STA-MUENCHEN", ["80331"], False)
    ] and unchecked == 0
    said = coverage.tie_sentences(index, "DE", None, _mine(court, ("postal-code", "80331")))
    assert len(said) == 1 and said[0].startswith("A tie with DE:STA-MUENCHEN"), said
    assert "on 1 place: 80331" in said[0] and "more precisely" in said[0], said
    # Keyed by the same region, both are found at the same rank: a look-up cannot choose.
    same, _ = coverage.ties(index, court["id"], "DE", [_mine(court, ("nuts3", "DE212"))])
    assert same[0].same_rank and _codes(same[0].places) == ["80331", "80333"]
    assert "cannot choose" in coverage.tie_sentences(
        index, "DE", None, _mine(court, ("nuts3", "DE212")))[0]  # fmt: skip
    # Berlin is no one else's; another priority or another competence is no tie.
    for other in (_mine(court, ("postal-code", "10115")),
                  _mine(court, ("lau", MUNICH), priority=5),
                  _mine(court, ("lau", MUNICH), competence="receive")):  # fmt: skip
        assert coverage.ties(index, court["id"], "DE", [other]) == ([], 0), other
    # A tie the criterion had already is not new.
    before = _mine(court, ("postal-code", "80331"))
    after = _mine(court, ("postal-code", "80331"), ("postal-code", "10115"))
    assert coverage.tie_sentences(index, "DE", before, after) == []


async def test_places_left_uncovered_are_found_by_place(services: Services) -> None:
    index, court, criterion = await _registry(services)
    # Without the prosecution's region, Munich has nobody.
    places, unchecked = coverage.uncovered(index, "DE", criterion, None)
    assert _codes(places) == ["80331", "80333"] and unchecked == 0
    said = coverage.uncovered_sentences(index, "DE", criterion, None)
    assert said == ["2 places no longer covered for European Investigation Order (Executes "
                    "requests): 80331, 80333. "
                    "A look-up there finds no competent authority."]  # fmt: skip
    # The court's criterion on 80331 keeps that one covered.
    await _create(services, "jurisdiction-criteria", factories.criterion(
        ref="ag", authority_code="DE:AG-NEU", geo=_geo(("postal-code", "80331"))))  # fmt: skip
    index = await snapshot.build(services.sessions, record=False)
    places, _ = coverage.uncovered(index, "DE", criterion, None)
    assert _codes(places) == ["80333"]
    # Narrowed to its LAU, the region still covers both: nothing is lost.
    narrowed = criterion | {"geo": _geo(("lau", MUNICH))}
    assert coverage.uncovered(index, "DE", criterion, narrowed) == ([], 0)
    # Unless the court goes too (an authority retired with its criteria).
    places, _ = coverage.uncovered(index, "DE", criterion, None, gone_authority=court["id"])
    assert _codes(places) == ["80331", "80333"]
