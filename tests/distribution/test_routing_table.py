"""`GET /routing-table`: JSON and Domibus PMode, conditional GETs, validity."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import event

from cdb_service.distribution.pmode import Names, sanitise
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.seeding.load import seed
from cdb_service.services import Services
from tests.support import factories
from tests.support.api import Api

URL = "/api/v1/routing-table"
NS = "{http://domibus.eu/configuration}"


def _shared_dir() -> Path:
    configured = os.environ.get("CDB_SHARED_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "shared"


XSD = _shared_dir() / "external" / "domibus" / "domibus-pmode.xsd"


@pytest.fixture(scope="module")
def pmode_schema() -> etree.XMLSchema:
    if not XSD.is_file():
        pytest.skip(f"the Domibus PMode schema is not at {XSD} (set CDB_SHARED_DIR)")
    return etree.XMLSchema(etree.parse(str(XSD)))


def _valid(schema: etree.XMLSchema, body: bytes) -> etree._Element:
    document = etree.fromstring(body)
    assert schema.validate(document), str(schema.error_log)
    return document


async def _create(services: Services, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    spec = KINDS[kind]
    return (await services.writes.create(spec, validate(spec, body), "test")).document


async def _get(api: Api, **params: Any) -> Any:
    async with api.client("reader") as c:
        return await c.get(URL, params=params)


def _parties(document: etree._Element) -> list[str]:
    return [p.get("name") for p in document.iter("party")]


async def test_pmode_of_the_seed_data_validates(
    api: Api, services: Services, pmode_schema: etree.XMLSchema
) -> None:
    await seed(services.batches, services.sessions)
    response = await _get(api, format="pmode", whole_network="true")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    document = _valid(pmode_schema, response.content)
    assert document.tag == f"{NS}configuration"
    names = _parties(document)
    assert len(names) == 28 and names == sorted(names)
    assert document.get("party") == names[0]  # the whole network's: the first by name
    assert "de-justice-ap" in names and "eurojust-ap" in names
    [id_type] = document.iter("partyIdType")
    assert id_type.get("value") == "urn:oasis:names:tc:ebcore:partyid-type:unregistered"
    de = next(p for p in document.iter("party") if p.get("name") == "de-justice-ap")
    [identifier] = de.iter("identifier")
    assert identifier.get("partyId") == "de-justice-ap"
    assert identifier.get("partyIdType") == id_type.get("name")
    services = {s.get("value"): s.get("type") for s in document.iter("service")}
    assert services["urn:e-codex:services:judex:judicial-cooperation"] == "urn:e-codex:services"
    actions = {a.get("value") for a in document.iter("action")}
    assert {"SubmitRequest", "SubmitResponse", "Acknowledge"} <= actions
    # one leg per service and action: three JUDEX actions and the AS4 test
    assert len(list(document.iter("legConfiguration"))) == 4
    judex = next(p for p in document.iter("process") if "judicial" in p.get("name"))
    assert [p.get("name") for p in judex.iter("initiatorParty")] == names
    assert [p.get("name") for p in judex.iter("responderParty")] == names

    response = await _get(api, format="pmode", party="de-justice-ap")
    assert response.status_code == 200
    assert _valid(pmode_schema, response.content).get("party") == "de-justice-ap"


async def test_pmode_of_a_single_party_validates(
    api: Api, services: Services, pmode_schema: etree.XMLSchema
) -> None:
    await _create(
        services,
        "routing-parties",
        factories.routing_party(
            identifiers=[
                {"party_id": "de-ap"},
                {
                    "party_id": "0204:991-12345-67",
                    "party_id_type": "urn:oasis:names:tc:ebcore:partyid-type:iso6523:0204",
                },
            ],
            services=[
                {"service": "urn:test", "service_type": "t1", "actions": ["Submit", "Reply"]},
                {"service": "urn:test", "service_type": "t2", "actions": ["Submit"]},
            ],
        ),
    )
    response = await _get(api, format="pmode", party="de-ap")
    assert response.status_code == 200, response.text
    document = _valid(pmode_schema, response.content)
    assert document.get("party") == "de-ap"
    assert _parties(document) == ["de-ap"]
    assert len(list(document.iter("partyIdType"))) == 2
    service_names = [s.get("name") for s in document.iter("service")]
    assert len(set(service_names)) == len(service_names) == 3  # two types, and the AS4 test
    legs = [leg.get("name") for leg in document.iter("legConfiguration")]
    assert len(set(legs)) == len(legs) == 4
    # the factory's party is a responder only: no initiators for its services, but the
    # AS4 test service runs both ways between every party
    for process in document.iter("process"):
        test = process.get("name") == "testServiceProcess"
        assert (process.find("initiatorParties") is not None) == test
        assert [p.get("name") for p in process.iter("responderParty")] == ["de-ap"]


async def test_json_lists_the_recipients_each_party_serves(api: Api, services: Services) -> None:
    await seed(services.batches, services.sessions)
    response = await _get(api)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["revision"] == await services.reads.head()
    parties = body["parties"]
    names = [p["name"] for p in parties]
    assert names == sorted(names) and len(names) == 28
    by_name = {p["name"]: p for p in parties}

    de = by_name["de-justice-ap"]
    assert de["final_recipients"] == sorted(de["final_recipients"])
    assert de["final_recipients"] and all(c.startswith("DE:") for c in de["final_recipients"])
    assert any(c.startswith("DE:COURT-") for c in de["final_recipients"])
    async with api.client("reader") as c:
        listed = await c.get("/api/v1/authorities", params={"limit": 1000})
    de_codes = sorted(a["code"] for a in listed.json()["items"] if a["owner"] == "DE")
    assert de["final_recipients"] == de_codes
    assert de["identifiers"] == [
        {
            "party_id": "de-justice-ap",
            "party_id_type": "urn:oasis:names:tc:ebcore:partyid-type:unregistered",
        }
    ]
    assert de["endpoint_url"].startswith("https://")
    assert de["services"][0]["actions"] == ["SubmitRequest", "SubmitResponse", "Acknowledge"]
    [signing, _] = de["certificates"]
    assert signing["use"] == "signing" and len(signing["sha256"]) == 64
    assert signing["subject"] and signing["not_after"] and "BEGIN CERTIFICATE" in signing["pem"]

    ej = by_name["eurojust-ap"]["final_recipients"]
    assert "EJ:EUROJUST" in ej and "EJ:DE-DESK" in ej and "EJ:FR-DESK" in ej
    assert len([c for c in ej if c.endswith("-DESK")]) == 27
    assert ej == sorted(ej)


async def test_party_and_format_parameters(api: Api, services: Services) -> None:
    await _create(services, "routing-parties", factories.routing_party(name="de-b-ap"))
    await _create(services, "routing-parties", factories.routing_party(name="de-a-ap"))
    # no silent default: a connector that forgets its own party is told, not handed Austria's
    response = await _get(api, format="pmode")
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [["query", "party"]]
    assert "whole_network" in response.json()["errors"][0]["msg"]
    response = await _get(api, format="pmode", whole_network="true")
    assert etree.fromstring(response.content).get("party") == "de-a-ap"
    response = await _get(api, format="pmode", party="de-b-ap")
    assert etree.fromstring(response.content).get("party") == "de-b-ap"

    response = await _get(api, format="pmode", party="nobody")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["loc"] for e in response.json()["errors"]] == [["query", "party"]]

    response = await _get(api, format="yaml")
    assert response.status_code in (400, 422)
    assert [e["loc"] for e in response.json()["errors"]] == [["query", "format"]]


async def test_pmode_of_an_empty_registry_is_404(api: Api) -> None:
    response = await _get(api, format="pmode", whole_network="true")
    assert response.status_code == 404
    response = await _get(api)
    assert response.status_code == 200 and response.json()["parties"] == []


@contextmanager
def _statements(app_state: Any) -> Iterator[list[str]]:
    """Statements the app runs meanwhile, except the lookup follower's own polling
    (it reads the head every 200 ms whatever the requests do)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        task = asyncio.current_task()
        if task is None or task.get_name() != "lookup-index-follower":
            seen.append(str(args[2]).lower())

    engine = app_state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def _index_at(app_state: Any, revision: int) -> None:
    """Wait (briefly) until the app's lookup index has followed the registry to `revision`."""
    for _ in range(100):
        index = app_state.lookup.index
        if index is not None and index.revision >= revision:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the lookup index did not follow the registry")


async def test_etag_if_none_match_and_a_write(api: Api, services: Services) -> None:
    await _create(services, "routing-parties", factories.routing_party())
    json_tag = (await _get(api)).headers["etag"]
    pmode_tag = (await _get(api, format="pmode", party="de-ap")).headers["etag"]
    assert json_tag.startswith('W/"') and json_tag != pmode_tag

    app_state = api.app.state  # the running app's parts, each under its name
    await _index_at(app_state, await services.reads.head())
    async with api.client("reader") as c:
        with _statements(app_state) as statements:
            response = await c.get(URL, headers={"If-None-Match": json_tag})
        assert response.status_code == 304 and response.content == b""
        assert response.headers["etag"] == json_tag
        # a 304 at a revision already seen is decided in memory: no registry query at all
        registry = [s for s in statements if "registry_head" in s or "routing_parties" in s
                    or "authorities" in s or "national_members" in s]  # fmt: skip
        assert registry == []

        response = await c.get(
            URL, params={"format": "pmode", "party": "de-ap"}, headers={"If-None-Match": json_tag}
        )
        assert response.status_code == 200  # the JSON tag is not the PMode's

        await _create(services, "authorities", factories.authority(routing_party_name="de-ap"))
        await _index_at(app_state, await services.reads.head())
        response = await c.get(URL, headers={"If-None-Match": json_tag})
        assert response.status_code == 200
        assert response.headers["etag"] != json_tag
        [party] = response.json()["parties"]
        assert party["final_recipients"] == ["DE:COURT-1"]


async def test_etag_follows_parties_and_recipients_not_contacts(
    api: Api, services: Services
) -> None:
    """A connector polling with If-None-Match reloads when routing changes, and only then."""
    party = await _create(services, "routing-parties", factories.routing_party())
    authority = await _create(
        services, "authorities", factories.authority(routing_party_name="de-ap")
    )
    app_state = api.app.state

    async def tags() -> tuple[str, str]:
        await _index_at(app_state, await services.reads.head())
        json_tag = (await _get(api)).headers["etag"]
        pmode = await _get(api, format="pmode", party="de-ap")
        assert pmode.status_code == 200, pmode.text
        return json_tag, pmode.headers["etag"]

    async def conditional(tag: str, **params: str) -> int:
        async with api.client("reader") as c:
            response = await c.get(URL, params=params, headers={"If-None-Match": tag})
        return response.status_code

    before = await tags()
    # the authority's contacts change: a new revision, the same routing
    kind = KINDS["authorities"]
    phone = {"channel": "phone", "value": "+49 30 1234 5678"}
    changed = {**authority, "contacts": [*authority["contacts"], phone]}
    await services.writes.update(kind, uuid.UUID(authority["id"]), validate(kind, changed),
                                 "test")  # fmt: skip
    assert await services.reads.head() > authority["revision"]
    assert await tags() == before
    assert await conditional(before[0]) == 304
    assert await conditional(before[1], format="pmode", party="de-ap") == 304

    # a service added to the party moves both tags
    kind = KINDS["routing-parties"]
    more = {**party, "services": [*party["services"],
                                  {"service": "urn:new", "actions": ["Submit"]}]}  # fmt: skip
    await services.writes.update(kind, uuid.UUID(party["id"]), validate(kind, more), "test")
    after = await tags()
    assert after[0] != before[0] and after[1] != before[1]
    assert await conditional(before[0]) == 200
    assert await conditional(before[1], format="pmode", party="de-ap") == 200


async def test_a_party_whose_validity_ended_is_left_out(
    api: Api, services: Services, pmode_schema: etree.XMLSchema
) -> None:
    yesterday = dt.date.today() - dt.timedelta(days=2)
    await _create(services, "routing-parties", factories.routing_party())
    await _create(
        services,
        "routing-parties",
        factories.routing_party(owner="FR", name="fr-ap", valid_to=yesterday.isoformat()),
    )
    await _create(
        services,
        "routing-parties",
        factories.routing_party(
            owner="FR", name="fr-future", valid_from=(yesterday + dt.timedelta(days=30)).isoformat()
        ),
    )
    body = (await _get(api)).json()
    assert [p["name"] for p in body["parties"]] == ["de-ap"]
    response = await _get(api, format="pmode", party="de-ap")
    assert _parties(_valid(pmode_schema, response.content)) == ["de-ap"]
    response = await _get(api, format="pmode", party="fr-ap")
    assert response.status_code == 422


def test_names_are_schema_words_and_deterministic() -> None:
    assert sanitise("urn:e-codex:services:judex") == "urn_e_codex_services_judex"
    assert sanitise("0204") == "x_0204"
    assert sanitise("::").startswith("x_")
    long = sanitise("a" * 400)
    assert len(long) == 255
    names = Names()
    first, second = names("a:b"), names("a-b")
    assert first == "a_b" and second != first and second.startswith("a_b_")
    assert names("a:b") == first
    assert Names()("a-b") == "a_b"  # alone, it gets the plain word
