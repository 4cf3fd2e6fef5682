"""Recipient resolution: a hand-built scenario per rule, through the API of a running app."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest

from cdb_service.lookup.deps import provide_lookup
from cdb_service.lookup.follower import IndexFollower
from cdb_service.lookup.gazetteer import Place, replace_country
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.services import Services
from tests.support import factories
from tests.support.api import Api

RESOLVE = "/api/v1/resolve"
GEO = {
    "postal-code": "10115", "postal-code-prefix": "101", "lau": "11000000", "nuts3": "DE300",
    "nuts2": "DE30", "nuts1": "DE3", "country": "DE",
}  # fmt: skip


async def _create(services: Services, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    spec = KINDS[kind]
    return (await services.writes.create(spec, validate(spec, body), "test")).document


async def _scenario(services: Services, party: dict[str, Any] | None = None) -> None:
    await replace_country(services.sessions, "DE", [Place("10115", "11000000", "DE300")], "test")
    await _create(services, "routing-parties", party or factories.routing_party())


async def _authority(services: Services, code: str, **extra: Any) -> dict[str, Any]:
    body = factories.authority(code=code, routing_party_name="de-ap") | extra
    return await _create(services, "authorities", body)


async def _criterion(services: Services, ref: str, code: str, geo: list[tuple[str, str]],
                     **extra: Any) -> dict[str, Any]:  # fmt: skip
    body = factories.criterion(ref=ref, authority_code=code,
                               geo=[{"scheme": s, "code": c} for s, c in geo]) | extra  # fmt: skip
    return await _create(services, "jurisdiction-criteria", body)


async def _resolve(api: Api, services: Services, plain: bool = False,
                   **params: Any) -> dict[str, Any]:  # fmt: skip
    """Resolve once the app's index has caught up with the registry head. `plain`: as a
    RIS that asks for no compression does (the fast path's whole answer, `lookup/fast.py`)."""
    head = await services.reads.head()
    query = {"country": "DE", "instrument": "eio", "competence": "execute"} | params
    headers = {"Accept-Encoding": "identity"} if plain else {}
    async with api.client("reader") as c:
        for _ in range(100):
            response = await c.get(RESOLVE, params=query, headers=headers)
            assert response.status_code == 200, response.text
            if response.json()["revision"] >= head:
                return dict(response.json())
            await asyncio.sleep(0.05)
    raise AssertionError("the lookup index did not catch up")


def _codes(body: dict[str, Any]) -> list[str]:
    return [m["authority"]["code"] for m in body["matches"]]


async def test_most_specific_first_through_the_gazetteer(api: Api, services: Services) -> None:
    await _scenario(services)
    order = ["country", "nuts1", "nuts2", "nuts3", "lau", "postal-code-prefix", "postal-code"]
    for n, scheme in enumerate(order):  # created least specific first, so order is earned
        await _authority(services, f"DE:{n}-{scheme.upper()}")
        await _criterion(
            services, f"c-{scheme}", f"DE:{n}-{scheme.upper()}", [(scheme, GEO[scheme])]
        )
    await _authority(services, "DE:PREFIX-2")
    await _criterion(services, "c-prefix-2", "DE:PREFIX-2", [("postal-code-prefix", "10")])
    body = await _resolve(api, services, postal_code="10115")
    assert _codes(body) == [
        "DE:6-POSTAL-CODE", "DE:5-POSTAL-CODE-PREFIX", "DE:PREFIX-2", "DE:4-LAU", "DE:3-NUTS3",
        "DE:2-NUTS2", "DE:1-NUTS1", "DE:0-COUNTRY",
    ]  # fmt: skip
    assert body["matches"][1]["matched_by"] == {"scheme": "postal-code-prefix", "code": "101"}
    first = body["matches"][0]
    assert first["routing"]["final_recipient"] == "DE:6-POSTAL-CODE"
    assert first["routing"]["to_party"]["party_id"] == "de-ap"
    assert first["routing"]["endpoint_url"] == "https://de-ap.example.eu/msh"
    # By NUTS alone, only NUTS and country levels apply.
    by_nuts = await _resolve(api, services, nuts="DE30")
    assert _codes(by_nuts) == ["DE:2-NUTS2", "DE:1-NUTS1", "DE:0-COUNTRY"]
    # Postal codes are normalised: "10 115" is 10115.
    assert _codes(await _resolve(api, services, postal_code="10 115")) == _codes(body)


async def test_priority_then_code_decide_among_equals(api: Api, services: Services) -> None:
    await _scenario(services)
    for code, priority in (("DE:B", 5), ("DE:A", 5), ("DE:C", 1)):
        await _authority(services, code)
        await _criterion(services, f"c-{code}", code, [("nuts3", "DE300")], priority=priority)
    answers = [_codes(await _resolve(api, services, postal_code="10115")) for _ in range(3)]
    assert answers == [["DE:C", "DE:A", "DE:B"]] * 3


async def test_validity_dates_of_criterion_authority_and_party(
    api: Api, services: Services
) -> None:
    await _scenario(services)
    await _create(services, "routing-parties",
                  factories.routing_party(name="de-ap-2027", valid_from="2027-01-01"))  # fmt: skip
    await _authority(services, "DE:NEW-CRITERION")
    await _criterion(
        services, "c1", "DE:NEW-CRITERION", [("country", "DE")], valid_from="2027-01-01"
    )
    await _authority(services, "DE:RETIRED", valid_to="2026-12-31")
    await _criterion(services, "c2", "DE:RETIRED", [("country", "DE")])
    await _create(services, "authorities", factories.authority(
        code="DE:NEW-PARTY", routing_party_name="de-ap-2027"))  # fmt: skip
    await _criterion(services, "c3", "DE:NEW-PARTY", [("country", "DE")])
    before = await _resolve(api, services, date="2026-12-31")
    after = await _resolve(api, services, date="2027-01-01")
    assert _codes(before) == ["DE:RETIRED"]
    assert _codes(after) == ["DE:NEW-CRITERION", "DE:NEW-PARTY"]


async def test_subject_matter_and_stage_filters(api: Api, services: Services) -> None:
    await _scenario(services)
    await _authority(services, "DE:TERROR")
    await _criterion(services, "t", "DE:TERROR", [("country", "DE")],
                     subject_matters=["terrorism"], stages=["investigation"])  # fmt: skip
    await _authority(services, "DE:ANY")
    await _criterion(services, "a", "DE:ANY", [("country", "DE")])
    assert _codes(await _resolve(api, services)) == ["DE:ANY"]
    both = await _resolve(api, services, subject_matter="terrorism", stage="investigation")
    assert _codes(both) == ["DE:ANY", "DE:TERROR"]
    assert _codes(await _resolve(api, services, subject_matter="terrorism", stage="trial")) == [
        "DE:ANY"
    ]
    assert _codes(await _resolve(api, services, subject_matter="fraud")) == ["DE:ANY"]


async def test_no_match_is_empty_with_fallbacks_apart(api: Api, services: Services) -> None:
    await _scenario(services)
    await _authority(services, "DE:CENTRAL", kind="central-authority")
    await _criterion(services, "central", "DE:CENTRAL", [("country", "DE")], competence="central")
    await _create(services, "national-correspondents", {
        "owner": "DE", "ref": "nc", "country": "DE", "type": "eurojust",
        "contact": {"channel": "email", "value": "nc@justiz.example.de"},
        "person": {"name": "A. Person"}})  # fmt: skip
    body = await _resolve(api, services, postal_code="10115")
    assert body["matches"] == []
    assert [f["authority"]["code"] for f in body["fallbacks"]["central_authorities"]] == [
        "DE:CENTRAL"
    ]
    correspondents = body["fallbacks"]["national_correspondents"]
    assert [c["correspondent"]["ref"] for c in correspondents] == ["nc"]
    assert "person" not in correspondents[0]["correspondent"]
    # One shape for every fallback: its role, the authority, the routing.
    fallbacks = [*body["fallbacks"]["central_authorities"], *correspondents]
    assert [set(f) for f in fallbacks] == [{"role", "authority", "routing", "correspondent"}] * 2
    assert body["fallbacks"]["central_authorities"][0]["routing"]["final_recipient"] == (
        "DE:CENTRAL"
    )
    assert body["explanation"]["reason"] == "no-criterion"


async def test_expired_certificate_is_flagged(api: Api, services: Services) -> None:
    now = dt.datetime.now(dt.UTC)
    from cdb_service.security.pki import issue, make_ca

    short = issue(make_ca("short"), "ap", not_before=now - dt.timedelta(days=1),
                  not_after=now + dt.timedelta(seconds=2)).cert_pem  # fmt: skip
    await _scenario(
        services, factories.routing_party(certificates=[{"use": "signing", "pem": short}])
    )
    await _authority(services, "DE:X")
    await _criterion(services, "x", "DE:X", [("country", "DE")])
    fresh = await _resolve(api, services)
    assert fresh["matches"][0]["routing"]["certificate_expired"] is False
    await asyncio.sleep(
        max(0.0, (now + dt.timedelta(seconds=3) - dt.datetime.now(dt.UTC)).total_seconds())
    )
    stale = await _resolve(api, services)
    assert stale["matches"][0]["routing"]["certificate_expired"] is True


async def test_bad_codes_are_422_naming_the_field(api: Api) -> None:
    async with api.client("reader") as c:
        cases = {
            "country": {"country": "GR"},
            "instrument": {"instrument": "eio2"},
            "postal_code": {"postal_code": "1011"},
            "competence": {"competence": None},
        }
        for name, change in cases.items():
            query = {"country": "DE", "instrument": "eio", "competence": "execute"} | change
            response = await c.get(
                RESOLVE, params={k: v for k, v in query.items() if v is not None}
            )
            assert response.status_code == 422, name
            assert response.headers["content-type"] == "application/problem+json"
            assert ["query", name] in [e["loc"] for e in response.json()["errors"]]


async def test_etag_and_reverse_lookups(api: Api, services: Services) -> None:
    await _scenario(services)
    await _authority(services, "DE:R")
    await _criterion(services, "r", "DE:R", [("country", "DE")])
    await _resolve(api, services)
    async with api.client("reader") as c:
        query = {"country": "DE", "instrument": "eio", "competence": "execute"}
        first = await c.get(RESOLVE, params=query)
        again = await c.get(RESOLVE, params=query, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304
        found = await c.get(f"{RESOLVE}/recipient/DE:R")
        missing = await c.get(f"{RESOLVE}/recipient/DE:NOPE")
    assert found.json()["routing"]["to_party"]["party_id"] == "de-ap"
    assert missing.status_code == 404


async def test_a_question_asked_again_is_answered_anew_after_a_write_and_at_midnight(
    api: Api, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole answers are kept by their query string (`lookup/fast.py`): the same question
    gets a new answer once the registry moves, and an undated one once the day in
    Brussels does."""
    await _scenario(services)
    await _authority(services, "DE:FIRST")
    await _criterion(services, "c1", "DE:FIRST", [("country", "DE")])
    before = await _resolve(api, services, plain=True)
    await _authority(services, "DE:SECOND")
    await _criterion(services, "c2", "DE:SECOND", [("country", "DE")])
    after = await _resolve(api, services, plain=True)
    assert (_codes(before), _codes(after)) == (["DE:FIRST"], ["DE:FIRST", "DE:SECOND"])
    tomorrow = dt.date.fromisoformat(after["query"]["date"]) + dt.timedelta(days=1)
    for module in ("cdb_service.lookup.fast", "cdb_service.lookup.query"):
        monkeypatch.setattr(f"{module}.today", lambda: tomorrow)
    next_day = await _resolve(api, services, plain=True)
    assert next_day["query"]["date"] == tomorrow.isoformat()
    assert _codes(next_day) == ["DE:FIRST", "DE:SECOND"]


@pytest.mark.postgres_only
async def test_a_write_is_visible_to_every_worker_within_a_second(services: Services) -> None:
    workers = [IndexFollower(services.settings), IndexFollower(services.settings)]
    for worker in workers:
        await worker.start()
    try:
        await _scenario(services)
        await _authority(services, "DE:SEEN")
        written = await services.reads.head()
        started = time.monotonic()
        while any(w.index is None or w.index.revision < written for w in workers):
            assert time.monotonic() - started < 1.0, "a worker lagged more than a second"
            await asyncio.sleep(0.01)
        assert all("DE:SEEN" in w.index.authority_by_code for w in workers if w.index)
    finally:
        for worker in workers:
            await worker.stop()


async def test_a_resolve_before_the_index_is_built_says_when_to_come_back(
    api: Api, services: Services
) -> None:
    """A worker whose index is not built yet answers 503 with `Retry-After`, as every
    other 503 does, so a client (or nginx) knows when to try again."""
    follower = provide_lookup(api.app.state)
    built, follower.index = follower.index, None
    try:
        async with api.client("reader") as c:
            answer = await c.get(
                "/api/v1/resolve",
                params={"country": "DE", "instrument": "eio", "competence": "execute"},
            )
    finally:
        follower.index = built
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0
    assert answer.json()["type"].endswith("/not-ready")
