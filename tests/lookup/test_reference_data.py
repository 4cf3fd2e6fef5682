"""Real reference data: TERCET files of every shape load, a load takes effect at once,
ties and empty answers say why.

Through the API of a running app (its index follows the database as in production).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

from cdb_service.lookup.follower import IndexFollower
from cdb_service.lookup.gazetteer import Place, read_tercet, replace_country
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.services import Services
from cdb_service.settings import Settings
from tests.support import factories
from tests.support.api import Api
from tests.support.service_process import executable, service_env
from tests.support.tercet import fixtures

RESOLVE = "/api/v1/resolve"
BY_CLI = ("IE", "MT")  # the two states whose real files `gazetteer-load` used to refuse


async def _create(services: Services, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    spec = KINDS[kind]
    return (await services.writes.create(spec, validate(spec, body), "test")).document


async def _court(services: Services, owner: str, code: str, geo: list[tuple[str, str]],
                 **extra: Any) -> None:  # fmt: skip
    await _create(services, "authorities", factories.authority(owner=owner, code=code))
    await _create(services, "jurisdiction-criteria", factories.criterion(
        owner=owner, ref=f"c-{code}", authority_code=code,
        geo=[{"scheme": s, "code": c} for s, c in geo]) | extra)  # fmt: skip


async def _until(api: Api, params: dict[str, Any], done: Any, seconds: float = 5) -> Any:
    """The first answer that satisfies `done`, within `seconds`."""
    deadline = time.monotonic() + seconds
    async with api.client("reader") as c:
        while True:
            response = await c.get(RESOLVE, params=params)
            assert response.status_code == 200, response.text
            if done(response.json()) or time.monotonic() > deadline:
                return response
            await asyncio.sleep(0.05)


def _q(country: str, **more: Any) -> dict[str, Any]:
    return {"country": country, "instrument": "eio", "competence": "execute"} | more


def _codes(body: dict[str, Any]) -> list[str]:
    return [m["authority"]["code"] for m in body["matches"]]


async def test_every_states_real_layout_loads_and_a_typed_postal_code_meets_nuts3(
    api: Api, services: Services, settings: Settings, tmp_path: Any
) -> None:
    head = await services.reads.head()
    for fixture in fixtures():
        if fixture.country in BY_CLI:
            path = tmp_path / f"pc2024_{fixture.country}_NUTS-2024_v1.0.csv"
            path.write_text(fixture.text, "utf-8")
            env = service_env(tmp_path, 8443, CDB_DATABASE_URL=settings.database_url)
            done = await asyncio.to_thread(
                subprocess.run, [executable(), "gazetteer-load", str(path), "--country",
                                 fixture.country], env=env, capture_output=True, text=True,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr[-2000:]
            assert f'"places": {fixture.rows}' in done.stdout, done.stdout
        else:
            places = read_tercet(fixture.text, fixture.country)
            loaded = await replace_country(services.sessions, fixture.country, places, "test")
            assert loaded == fixture.rows  # a code in two regions is kept twice
    assert await services.reads.head() == head  # reference data: no registry revision
    for fixture in fixtures():
        cc = fixture.country
        # The EAW: every state here takes part in it (Ireland does not in the EIO).
        await _court(services, cc, f"{cc}:REGION", [("nuts3", fixture.nuts3)], instrument="eaw")
    for fixture in fixtures():
        cc = fixture.country
        response = await _until(
            api, _q(cc, postal_code=fixture.typed, instrument="eaw"), lambda b: b["matches"]
        )
        body = response.json()
        assert _codes(body) == [f"{cc}:REGION"], (cc, fixture.typed, body)
        assert body["matches"][0]["matched_by"] == {"scheme": "nuts3", "code": fixture.nuts3}
    # A full Eircode or Maltese postcode reaches its routing key / locality code,
    # however it is typed; a code in two regions reaches both.
    for cc, typed in (("IE", "a41f2x3"), ("IE", "A41"), ("MT", "ATD1234"), ("MT", "MT-ATD 1234")):
        assert _codes(
            (await _until(api, _q(cc, postal_code=typed, instrument="eaw"), bool)).json()
        ) == [f"{cc}:REGION"]
    # LV-1050 is listed under Rīga and Pierīga: both courts, and the sender is told.
    await _court(services, "LV", "LV:RIGA", [("nuts3", "LV006")])
    await _court(services, "LV", "LV:PIERIGA", [("nuts3", "LV007")])
    response = await _until(api, _q("LV", postal_code="LV-1050"), lambda b: len(b["matches"]) == 2)
    body = response.json()
    assert _codes(body) == ["LV:PIERIGA", "LV:RIGA"]
    assert body["ambiguous"] is True and body["narrow_by"] == ["address"]


async def test_a_gazetteer_load_takes_effect_on_every_worker_without_a_registry_write(
    api: Api, services: Services
) -> None:
    await _court(services, "DE", "DE:BERLIN", [("nuts3", "DE300")])
    query = _q("DE", postal_code="10115")
    before = await _until(api, query, lambda b: b["revision"] >= 2)
    assert before.json()["matches"] == []
    assert before.json()["explanation"]["reason"] == "place-not-covered"
    assert (
        "not in" in before.json()["explanation"]["detail"]
        or "no gazetteer" in (before.json()["explanation"]["detail"])
    )
    workers = [IndexFollower(services.settings), IndexFollower(services.settings)]
    for worker in workers:
        await worker.start()
    try:
        head = await services.reads.head()
        loaded_at = time.monotonic()
        await replace_country(services.sessions, "DE", [Place("10115", "11000000", "DE300")],
                              "pc2024_DE_NUTS-2024_v1.0.csv")  # fmt: skip
        assert await services.reads.head() == head  # no registry write
        after = await _until(api, query, lambda b: b["matches"])
        took = time.monotonic() - loaded_at
        assert _codes(after.json()) == ["DE:BERLIN"], after.json()
        assert took < 3, took
        assert after.headers["etag"] != before.headers["etag"]
        async with api.client("reader") as c:
            stale = await c.get(RESOLVE, params=query,
                                headers={"If-None-Match": before.headers["etag"]})  # fmt: skip
            same = await c.get(RESOLVE, params=query,
                               headers={"If-None-Match": after.headers["etag"]})  # fmt: skip
        assert stale.status_code == 200 and _codes(stale.json()) == ["DE:BERLIN"]
        assert same.status_code == 304
        # Every worker follows: each answers from the gazetteer just loaded.
        deadline = time.monotonic() + 3
        while any(w.index is None or not w.index.gazetteer.places_of("DE", "10115")
                  for w in workers):  # fmt: skip
            assert time.monotonic() < deadline, "a worker did not follow the load"
            await asyncio.sleep(0.05)
    finally:
        for worker in workers:
            await worker.stop()


async def test_ties_say_what_would_separate_them(api: Api, services: Services) -> None:
    # 53111 lies in two municipalities (LAUs) of one NUTS 3 region, each with its own court.
    await replace_country(services.sessions, "DE", [
        Place("53111", "05314000", "DEA22"), Place("53111", "05382056", "DEA22"),
        Place("53113", "05314000", "DEA22"),
    ], "test")  # fmt: skip
    await _court(services, "DE", "DE:BONN", [("lau", "05314000")])
    await _court(services, "DE", "DE:SIEGBURG", [("lau", "05382056")])
    await _court(services, "DE", "DE:REGION", [("nuts3", "DEA22")])
    tied = (await _until(api, _q("DE", postal_code="53111"), lambda b: b["revision"] >= 6)).json()
    assert _codes(tied) == ["DE:BONN", "DE:SIEGBURG", "DE:REGION"]
    assert tied["ambiguous"] is True and tied["narrow_by"] == ["address"]
    single = (await _until(api, _q("DE", postal_code="53113"), bool)).json()
    assert _codes(single) == ["DE:BONN", "DE:REGION"]
    assert single["ambiguous"] is False and single["narrow_by"] == []
    # A priority set by the registry is a choice, not a tie.
    await _court(services, "DE", "DE:BONN-2", [("lau", "05314000")], priority=9)
    ranked = await _until(api, _q("DE", postal_code="53113"), lambda b: len(b["matches"]) == 3)
    assert ranked.json()["ambiguous"] is False
    # Only a country given, in a state whose criteria are set on places: the sender is
    # told to add what reaches them (a postal code reaches every level).
    await _court(services, "DE", "DE:FEDERAL", [("country", "DE")])
    await _court(services, "DE", "DE:STREET", [("postal-code", "53111")])
    country = (await _until(api, _q("DE"), lambda b: b["matches"])).json()
    assert _codes(country) == ["DE:FEDERAL"] and country["ambiguous"] is False
    assert country["narrow_by"] == ["postal_code", "lau", "nuts"]
    by_nuts = (await _until(api, _q("DE", nuts="DEA22"), bool)).json()
    assert by_nuts["narrow_by"] == ["postal_code", "lau"]
    async with api.client("reader") as c:
        reverse = (await c.get(f"{RESOLVE}/recipient/DE:BONN")).json()
    assert reverse["ambiguous"] is False and reverse["narrow_by"] == []


async def test_an_empty_answer_says_why(api: Api, services: Services) -> None:
    await replace_country(services.sessions, "DE", [Place("10115", "11000000", "DE300")], "test")
    await _create(services, "routing-parties", factories.routing_party())

    async def why(**params: Any) -> dict[str, Any]:
        response = await _until(api, _q("DE", **params), lambda b: b["revision"] >= 5)
        body = response.json()
        assert body["matches"] == [] and body["ambiguous"] is False, body
        return dict(body["explanation"])

    await _court(services, "DE", "DE:LATER", [("nuts3", "DE300")], valid_from="2099-01-01")
    await _create(services, "authorities", factories.authority(
        code="DE:RETIRED", valid_to="2020-12-31"))  # fmt: skip
    await _create(services, "jurisdiction-criteria", factories.criterion(
        ref="r", authority_code="DE:RETIRED", competence="receive",
        geo=[{"scheme": "nuts3", "code": "DE300"}]))  # fmt: skip
    assert (await why(competence="issue"))["reason"] == "no-criterion"
    assert (await why(postal_code="10115"))["reason"] == "not-valid-on-date"
    retired = await why(postal_code="10115", competence="receive")
    assert retired["reason"] == "only-unroutable"
    assert retired["candidates"] == [
        {"code": "DE:RETIRED", "why": "the authority is not valid on that date"}
    ]
    elsewhere = await why(postal_code="80331", competence="receive", date="2020-06-01")
    assert elsewhere["reason"] == "place-not-covered"
    assert "80331 is not in DE's gazetteer" in elsewhere["detail"]


async def test_a_place_covered_for_another_subject_matter_or_stage_is_told_so(
    api: Api, services: Services
) -> None:
    # 10115 is covered for the EIO, but only for cybercrime at trial; the state's other
    # places have a general court. A sender asking about fraud learns that the place
    # is covered for another subject matter, not that no criterion is valid.
    await replace_country(services.sessions, "DE", [
        Place("10115", "11000000", "DE300"), Place("80331", "09162000", "DE212"),
    ], "test")  # fmt: skip
    await _create(services, "routing-parties", factories.routing_party())
    await _court(services, "DE", "DE:CYBER", [("nuts3", "DE300")],
                 subject_matters=["cybercrime"], stages=["trial"])  # fmt: skip
    await _court(services, "DE", "DE:MUNICH", [("nuts3", "DE212")])

    async def why(**params: Any) -> dict[str, Any]:
        body = (await _until(api, _q("DE", **params), lambda b: b["revision"] >= 5)).json()
        assert body["matches"] == [], body
        return dict(body["explanation"])

    fraud = await why(postal_code="10115", subject_matter="fraud", stage="trial")
    assert fraud["reason"] == "subject-matter-not-covered"
    assert "cybercrime" in fraud["detail"] and "fraud" in fraud["detail"]
    unnamed = await why(postal_code="10115")
    assert unnamed["reason"] == "subject-matter-not-covered"
    appeal = await why(postal_code="10115", subject_matter="cybercrime", stage="appeal")
    assert appeal["reason"] == "stage-not-covered"
    assert "trial" in appeal["detail"] and "appeal" in appeal["detail"]
    # What separates: a sender who names neither is told both reach finer criteria.
    hit = (await _until(api, _q("DE", postal_code="10115", subject_matter="cybercrime",
                                stage="trial"), lambda b: b["matches"])).json()  # fmt: skip
    assert _codes(hit) == ["DE:CYBER"] and hit["narrow_by"] == []
    await _court(services, "DE", "DE:BERLIN", [("nuts3", "DE300")])
    general = (await _until(api, _q("DE", postal_code="10115"), lambda b: b["matches"])).json()
    assert _codes(general) == ["DE:BERLIN"]
    assert general["narrow_by"] == ["subject_matter", "stage"]
    munich = (await _until(api, _q("DE", postal_code="80331"), lambda b: b["matches"])).json()
    assert munich["narrow_by"] == []
