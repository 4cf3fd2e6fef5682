"""Every PMode we serve is valid, whatever any one owner typed (on both databases).

Two ways in: text the API now refuses but that an older registry may hold (planted in
the table, as a registry from before the rules would have it), and a property test that
throws arbitrary Unicode at every text field of every kind through the API.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from sqlalchemy import update

from cdb_service.distribution.pmode import schema as own_schema
from cdb_service.registry.kinds.routing_parties.models import RoutingParty
from cdb_service.services import Services
from tests.distribution.test_routing_table import XSD
from tests.support import factories
from tests.support.api import Api

V1 = "/api/v1"
URL = f"{V1}/routing-table"


def _schemas() -> list[etree.XMLSchema]:
    """Ours always; Domibus's own where the shared reference files are present."""
    found = [own_schema()]
    if XSD.is_file():
        found.append(etree.XMLSchema(etree.parse(str(XSD))))
    return found


def _assert_valid(body: bytes) -> etree._Element:
    document = etree.fromstring(body)
    for checker in _schemas():
        assert checker.validate(document), str(checker.error_log)
    return document


async def test_a_party_that_cannot_be_expressed_is_left_out_and_named(
    api: Api, services: Services
) -> None:
    async with api.client("admin-de") as de, api.client("admin-fr") as fr:
        for client, body in (
            (de, factories.routing_party()),
            (fr, factories.routing_party(owner="FR", name="fr-ap")),
        ):
            assert (await client.post(f"{V1}/routing-parties", json=body)).status_code == 201
    # DE's party as a registry from before the text rules may hold it: a control
    # character in an action (what broke every connector's PMode).
    async with services.sessions() as session, session.begin():
        await session.execute(update(RoutingParty).where(RoutingParty.name == "de-ap").values(
            services=[{"service": "urn:test", "actions": ["Submit\u0001Request"]}]))  # fmt: skip
    async with api.client("reader") as c:
        pmode = await c.get(URL, params={"format": "pmode", "party": "fr-ap"})
        table = await c.get(URL)
        own = await c.get(URL, params={"format": "pmode", "party": "de-ap"})
    # FR's configuration is served, valid, without DE's party, and says so.
    assert pmode.status_code == 200, pmode.text
    parties = [p.get("name") for p in _assert_valid(pmode.content).iter("party")]
    assert parties == ["fr-ap"]
    assert pmode.headers["cdb-omitted-parties"] == "de-ap"
    warning = table.json()["warnings"]
    assert [(w["party"], w["owner"]) for w in warning] == [("de-ap", "DE")]
    # DE's own configuration cannot be built: DE is told what to correct.
    assert own.status_code == 422, own.text
    assert own.json()["errors"][0]["loc"] == ["query", "party"]
    # ... and DE's data-quality report names the party.
    async with api.client("admin-de") as de:
        report = (await de.get(f"{V1}/quality")).json()
    found = [f for f in report["findings"] if f["rule"] == "inexpressible-in-pmode"]
    assert [f["key"] for f in found] == ["de-ap"], found


# --- the property: arbitrary text in, a valid PMode out ------------------------------


def _later(days: int) -> str:
    return (dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)).isoformat()


# One valid document per kind, as the administrator who may write it sends it.
BASES: list[tuple[str, str, dict[str, Any]]] = [
    ("routing-parties", "admin-de", factories.routing_party(
        roles=["urn:role:responder"], services=[{"service": "urn:svc", "service_type": "t",
                                                "actions": ["Submit"]}])),
    ("authorities", "admin-de", factories.authority(
        routing_party_name="de-ap", address={"street": "Str. 1", "city": "Berlin",
                                             "country": "DE", "postal_code": "10115"})),
    ("national-correspondents", "admin-de",
     {"owner": "DE", "ref": "nc", "country": "DE", "type": "eurojust",
      "authority_code": "DE:COURT-1", "contact": {"value": "nc@justiz.example.de"},
      "person": {"name": "A. Person"}}),
    ("national-members", "admin-ej",
     {"owner": "EJ", "ref": "nm", "country": "DE", "role": "national-member",
      "contact": {"value": "de.desk@eurojust.example.eu"}}),
    ("jurisdiction-criteria", "admin-de", factories.criterion()),
    ("maintenance-windows", "operator",
     {"owner": "EC", "ref": "mw", "component": "cdb", "starts_at": _later(60),
      "ends_at": _later(61), "reason": "database upgrade"}),
    ("incidents", "operator",
     {"owner": "EC", "ref": "inc", "component": "cdb", "description": "lookups fail",
      "started_at": _later(-1), "expected_recovery_at": _later(1)}),
]  # fmt: skip
KEYS = {"routing-parties": "name", "authorities": "code"}


def _text_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _text_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _text_paths(v, (*path, i))]
    return []


# Every text field of every kind, but the owner (another owner's is a 403, asked first).
TARGETS = [(kind, who, base, path) for kind, who, base in BASES
           for path in _text_paths(base) if path != ("owner",)]  # fmt: skip
_serial = itertools.count()


def _put(document: dict[str, Any], path: tuple[Any, ...], value: str) -> None:
    for step in path[:-1]:
        document = document[step]
    document[path[-1]] = value


@pytest.mark.slow
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(target=st.sampled_from(TARGETS), text=st.text(min_size=0, max_size=300))
async def test_any_text_is_refused_naming_its_field_or_stored_and_pmodes_stay_valid(
    api: Api,
    services: Services,
    target: tuple[str, str, dict[str, Any], tuple[Any, ...]],
    text: str,
) -> None:
    kind, who, base, path = target
    document = copy.deepcopy(base)
    n = next(_serial)
    # A fresh natural key each time, so that what is refused is the text, not a duplicate.
    if kind in KEYS:
        key = KEYS[kind]
        document[key] = f"{document[key]}-{n}"
        if kind == "routing-parties":
            document["identifiers"] = [{"party_id": document["name"]}]
    elif "ref" in document:
        document["ref"] = f"{document['ref']}-{n}"
    _put(document, path, text)
    async with api.client("admin-de") as de:
        # What the other kinds refer to exists (created once; a repeat is a 409).
        await de.post(f"{V1}/routing-parties", json=factories.routing_party())
        await de.post(f"{V1}/authorities", json=factories.authority(routing_party_name="de-ap"))
    async with api.client(who) as client:
        answer = await client.post(f"{V1}/{kind}", json=document)
    named = ".".join(map(str, path))
    if answer.status_code == 422:
        fields = {".".join(map(str, e["loc"])) for e in answer.json()["errors"]}
        assert any(named.startswith(f) or f.startswith(named) for f in fields), (
            named, answer.text)  # fmt: skip
    elif answer.status_code == 409:
        assert path[0] in ("name", "code", "ref", "identifiers"), answer.text
    else:
        assert answer.status_code == 201, answer.text
    # Whatever was stored, every party's PMode is valid.
    async with api.client("reader") as c:
        table = (await c.get(URL)).json()
        for party in table["parties"]:
            pmode = await c.get(URL, params={"format": "pmode", "party": party["name"]})
            assert pmode.status_code == 200, pmode.text
            _assert_valid(pmode.content)
