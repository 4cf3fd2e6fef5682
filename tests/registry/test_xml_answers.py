"""XML beside JSON (Annex I 4.3(b)): every XML answer is valid against the XSD the service
publishes, and carries the same data as the JSON answer to the same request.

Each request is made twice, with `Accept: application/json` and `application/xml`;
the XML is validated against `/api/v1/schemas/cdb.xsd` as served (with the
problem.xsd it imports, also as served) and read back into the JSON shape, which must
equal the JSON answer. Covered: the three look-ups, an entry, a page, problems.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lxml import etree

from cdb_service.lookup.gazetteer import Place, replace_country
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.validation import validate
from cdb_service.services import Services
from cdb_service.web.xml_form import from_xml, to_xml
from tests.support import factories
from tests.support.api import Api, As

V1 = "/api/v1"
XML = "application/xml"


async def _schema(c: As) -> etree.XMLSchema:
    """The served cdb.xsd, its import resolved to the served problem.xsd."""
    served = {name: (await c.get(f"{V1}/schemas/{name}")) for name in ("cdb.xsd", "problem.xsd")}
    for response in served.values():
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(XML)

    class Served(etree.Resolver):  # type: ignore[misc]
        def resolve(self, url: str, _: Any, context: Any) -> Any:
            return self.resolve_string(served[url.rsplit("/", 1)[-1]].content, context)

    parser = etree.XMLParser(resolve_entities=False)
    parser.resolvers.add(Served())
    return etree.XMLSchema(etree.fromstring(served["cdb.xsd"].content, parser, base_url="cdb.xsd"))


async def _both(c: As, schema: etree.XMLSchema, url: str, status: int = 200,
                **params: Any) -> tuple[Any, bytes]:  # fmt: skip
    """The JSON and XML answers to one request: same status, same data, XML valid."""
    as_json = await c.get(url, params=params, headers={"Accept": "application/json"})
    as_xml = await c.get(url, params=params, headers={"Accept": XML})
    assert as_json.status_code == as_xml.status_code == status, as_xml.text
    media = as_xml.headers["content-type"]
    assert media.startswith("application/problem+xml" if status >= 400 else XML), media
    assert "Accept" in as_xml.headers.get("vary", "") or status >= 400
    schema.assertValid(etree.fromstring(as_xml.content))
    assert from_xml(as_xml.content) == as_json.json()
    return as_json.json(), as_xml.content


async def _scenario(services: Services) -> dict[str, Any]:
    async def create(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        spec = KINDS[kind]
        return (await services.writes.create(spec, validate(spec, body), "test")).document

    await replace_country(services.sessions, "DE", [Place("10115", "11000000", "DE300")], "test")
    await create("routing-parties", factories.routing_party())
    await create("routing-parties", factories.routing_party(owner="EJ", name="ej-ap"))
    names = {"de": "Amtsgericht <Mitte> & Söhne", "en": 'Local court "Mitte"'}
    authority = await create("authorities", factories.authority(
        code="DE:X", routing_party_name="de-ap", names=names))  # fmt: skip
    geo = [{"scheme": "postal-code", "code": "10115"}]
    await create(
        "jurisdiction-criteria", factories.criterion(ref="x", authority_code="DE:X", geo=geo)
    )
    await create("national-members", {
        "owner": "EJ", "ref": "de-nm", "country": "DE", "role": "national-member",
        "contact": {"channel": "email", "value": "desk.de@eurojust.example.eu"},
        "person": {"name": "A. Person"}, "routing_party_name": "ej-ap",
    })  # fmt: skip
    return authority


async def _caught_up(c: As, services: Services) -> None:
    head = await services.reads.head()
    for _ in range(100):
        answer = await c.get(f"{V1}/resolve/recipient/DE:X")
        if answer.status_code == 200 and answer.json()["revision"] >= head:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the lookup index did not catch up")


async def test_every_xml_answer_is_valid_and_carries_the_json_data(
    api: Api, services: Services
) -> None:
    authority = await _scenario(services)
    query = {"country": "DE", "instrument": "eio", "competence": "execute"}
    async with api.client("reader") as c:
        schema = await _schema(c)
        await _caught_up(c, services)
        found, _ = await _both(c, schema, f"{V1}/resolve", **query, postal_code="10115")
        assert [m["authority"]["code"] for m in found["matches"]] == ["DE:X"]
        empty, _ = await _both(c, schema, f"{V1}/resolve", **query, postal_code="99999")
        assert empty["matches"] == [] and empty["explanation"]["reason"]
        await _both(c, schema, f"{V1}/resolve/recipient/DE:X")
        desk, _ = await _both(c, schema, f"{V1}/resolve/national-member", country="DE")
        assert desk["members"][0]["routing"]["to_party"]["party_id"] == "ej-ap"
        entry, xml = await _both(c, schema, f"{V1}/authorities/{authority['id']}")
        assert entry["names"]["de"] == "Amtsgericht <Mitte> & Söhne"
        assert b"&lt;Mitte&gt; &amp; S" in xml  # escaped by lxml, not by hand
        for kind in KINDS:
            await _both(c, schema, f"{V1}/{kind}", limit=2)
        await _both(c, schema, f"{V1}/authorities", count="true", owner="DE")
        # Problems: RFC 9457's XML form, valid against the same schema set.
        problem, _ = await _both(c, schema, f"{V1}/resolve", 422, country="XX")
        assert problem["errors"]
        await _both(c, schema, f"{V1}/authorities/{'0' * 8}-0000-0000-0000-{'0' * 12}", 404)
        await _both(c, schema, f"{V1}/authorities", 400, colour="blue")
    async with api.client() as stranger:  # refused at the gate, before any route
        refused, _ = await _both(stranger, schema, f"{V1}/authorities", 401)
        assert refused["status"] == 401


async def test_json_is_the_default_and_what_is_not_offered_is_406(
    api: Api, services: Services
) -> None:
    authority = await _scenario(services)
    url = f"{V1}/authorities/{authority['id']}"
    async with api.client("reader") as c:
        for accept in (None, "*/*", "application/*", "application/json, application/xml;q=0.5"):
            headers = {"Accept": accept} if accept else {}
            answer = await c.get(url, headers=headers)
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("application/json"), accept
        preferred = await c.get(url, headers={"Accept": "application/json;q=0.4, application/xml"})
        assert preferred.headers["content-type"].startswith(XML)
        refused = await c.get(url, headers={"Accept": "text/csv"})
        assert refused.status_code == 406
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "application/xml" in refused.json()["detail"]
        await _caught_up(c, services)
        also = await c.get(f"{V1}/resolve/recipient/DE:X", headers={"Accept": "text/html"})
        assert also.status_code == 406


async def test_a_read_offered_in_json_only_refuses_an_xml_only_client_with_406(
    api: Api, services: Services
) -> None:
    """The feed, the code lists, the quality report, the JSON routing table, an entry's
    history and diff have no XML form: a client that accepts only XML is told so (406,
    the problem in the XML it asked for), not handed JSON it said it cannot read."""
    authority = await _scenario(services)
    entry = f"{V1}/authorities/{authority['id']}"
    reads = [
        (f"{V1}/changes", {"since": 0}), (f"{V1}/code-lists", {}),
        (f"{V1}/code-lists/instruments", {}), (f"{V1}/routing-table", {}),
        (f"{entry}/history", {}), (f"{entry}/diff", {"from": 1}), (f"{V1}/gazetteer", {}),
    ]  # fmt: skip
    async with api.client("admin-de") as c:
        schema = await _schema(c)
        for url, params in [*reads, (f"{V1}/quality", {"owner": "DE"})]:
            refused = await c.get(url, params=params, headers={"Accept": XML})
            assert refused.status_code == 406, (url, refused.text)
            assert refused.headers["content-type"].startswith("application/problem+xml"), url
            schema.assertValid(etree.fromstring(refused.content))
            assert "application/json only" in from_xml(refused.content)["detail"]
            plain = await c.get(url, params=params, headers={"Accept": "application/json"})
            assert plain.status_code == 200, (url, plain.text)
        # The other forms a `format=` chooses are not JSON, and are still served.
        csv = await c.get(f"{V1}/quality", params={"owner": "DE", "format": "csv"},
                          headers={"Accept": "text/csv"})  # fmt: skip
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")


def test_text_xml_cannot_carry_is_replaced_not_fatal() -> None:
    """Stored text is printable, but the XML form must not fail on what slipped through."""
    document = to_xml("entry-answer", {"note": "bell\x07 and \ud800 end", "odd key!": 1})
    assert from_xml(document) == {"note": "bell\ufffd and \ufffd end", "odd key!": 1}
