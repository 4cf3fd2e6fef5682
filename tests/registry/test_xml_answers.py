"""XML beside JSON (Annex I 4.3(b)): every XML answer is valid against the typed XSD the
service publishes, and carries the same data as the JSON answer to the same request.

Each request is made twice, with `Accept: application/json` and `application/xml`;
the XML is validated against `/api/v1/schemas/cdb.xsd` as served (with the
problem.xsd it imports, also as served) and read back into the JSON shape, which must
equal the JSON answer. Covered: every root element the XSD declares (a route that gains
an XML form fails `test_every_declared_answer_is_exercised` until it is added here):
each kind's pages, entries, histories and diffs over the whole seed (routing parties
with certificates, national members with a person), the three look-ups, problems. The
XSD is typed: a stray member, a code outside its list or a missing member is refused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from lxml import etree

from cdb_service.kernel import codes
from cdb_service.kernel.owners import DEFAULT
from cdb_service.lookup.gazetteer import Place, replace_country
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.seeding.dataset import SEED_DIR, build
from cdb_service.seeding.load import seed
from cdb_service.services import Services
from cdb_service.web.xml_form import CDB_NS, from_xml, to_xml
from tests.support import factories
from tests.support.api import Api, As

V1 = "/api/v1"
XML = "application/xml"
MERGE = {"content-type": "application/merge-patch+json"}
XS = "{http://www.w3.org/2001/XMLSchema}"
# What the tests below exercise, by root element; the XSD declares exactly these.
KIND_ROOTS = {f"{kind}-{shape}" for kind in KINDS for shape in ("entry", "page", "history")}
LOOKUP_ROOTS = {"resolve-answer", "recipient-answer", "national-member-answer"}
OTHER_ROOTS = {"diff-answer"}


async def _served(c: As) -> dict[str, bytes]:
    served = {name: (await c.get(f"{V1}/schemas/{name}")) for name in ("cdb.xsd", "problem.xsd")}
    for response in served.values():
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(XML)
    return {name: response.content for name, response in served.items()}


async def _schema(c: As) -> etree.XMLSchema:
    """The served cdb.xsd, its import resolved to the served problem.xsd."""
    served = await _served(c)

    class Served(etree.Resolver):  # type: ignore[misc]
        def resolve(self, url: str, _: Any, context: Any) -> Any:
            return self.resolve_string(served[url.rsplit("/", 1)[-1]], context)

    parser = etree.XMLParser(resolve_entities=False)
    parser.resolvers.add(Served())
    return etree.XMLSchema(etree.fromstring(served["cdb.xsd"], parser, base_url="cdb.xsd"))


SEEN: set[str] = set()


async def _both(c: As, schema: etree.XMLSchema, url: str, status: int = 200,
                **params: Any) -> tuple[Any, bytes]:  # fmt: skip
    """The JSON and XML answers to one request: same status, same data, XML valid."""
    as_json = await c.get(url, params=params, headers={"Accept": "application/json"})
    as_xml = await c.get(url, params=params, headers={"Accept": XML})
    assert as_json.status_code == as_xml.status_code == status, as_xml.text
    media = as_xml.headers["content-type"]
    assert media.startswith("application/problem+xml" if status >= 400 else XML), media
    assert "Accept" in as_xml.headers.get("vary", "") or status >= 400
    document = etree.fromstring(as_xml.content)
    if not schema.validate(document):
        raise AssertionError(f"{url}: {schema.error_log.filter_from_errors()[:3]}")
    assert from_xml(as_xml.content) == as_json.json()
    SEEN.add(etree.QName(document).localname)
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
    SEEN.difference_update(LOOKUP_ROOTS)
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
        problem, xml = await _both(c, schema, f"{V1}/resolve", 422, country="XX")
        assert problem["errors"]
        stray = etree.fromstring(xml)  # the extension members are typed too
        etree.SubElement(stray.find(f"{{{CDB_NS}}}errors/{{{CDB_NS}}}i"), f"{{{CDB_NS}}}colour")
        assert not schema.validate(stray)
        await _both(c, schema, f"{V1}/authorities/{'0' * 8}-0000-0000-0000-{'0' * 12}", 404)
        await _both(c, schema, f"{V1}/authorities", 400, colour="blue")
    async with api.client() as stranger:  # refused at the gate, before any route
        refused, _ = await _both(stranger, schema, f"{V1}/authorities", 401)
        assert refused["status"] == 401
    assert LOOKUP_ROOTS <= SEEN, LOOKUP_ROOTS - SEEN


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
    """The feed, the code lists, the gazetteer manifest, the quality report and the JSON
    routing table have no XML form: a client that accepts only XML is told so (406, the
    problem in the XML it asked for), not handed JSON it said it cannot read."""
    await _scenario(services)
    reads = [
        (f"{V1}/changes", {"since": 0}), (f"{V1}/code-lists", {}),
        (f"{V1}/code-lists/instruments", {}), (f"{V1}/routing-table", {}),
        (f"{V1}/gazetteer", {}),
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


async def test_a_streamed_read_refuses_a_client_that_accepts_none_of_its_forms(
    api: Api, services: Services
) -> None:
    """Extracts, a country's gazetteer and exports are files in the format they name:
    a client that accepts only XML is told so (406), not sent NDJSON or a spreadsheet;
    no Accept, or one naming the format, still gets the file."""
    await _scenario(services)
    streams = [
        (f"{V1}/extract", {}, "application/x-ndjson"),
        (f"{V1}/gazetteer/DE", {}, "application/x-ndjson"),
        (f"{V1}/export", {"owner": "DE"}, "application/x-ndjson"),
        (f"{V1}/export", {"owner": "DE", "format": "csv", "kind": "authorities"}, "text/csv"),
    ]
    async with api.client("admin-de") as c:
        schema = await _schema(c)
        for url, params, media in streams:
            refused = await c.get(url, params=params, headers={"Accept": XML})
            assert refused.status_code == 406, (url, params, refused.text)
            assert refused.headers["content-type"].startswith("application/problem+xml")
            schema.assertValid(etree.fromstring(refused.content))
            assert media in from_xml(refused.content)["detail"]
            for accept in ({}, {"Accept": media}, {"Accept": "*/*"}):
                served = await c.get(url, params=params, headers=accept)
                assert served.status_code == 200, (url, params, accept, served.text)
                assert served.headers["content-type"].startswith(media), (url, accept)


def test_text_xml_cannot_carry_is_replaced_not_fatal() -> None:
    """Stored text is printable, but the XML form must not fail on what slipped through."""
    document = to_xml("entry-answer", {"note": "bell\x07 and \ud800 end", "odd key!": 1})
    assert from_xml(document) == {"note": "bell\ufffd and \ufffd end", "odd key!": 1}


async def _all_pages(c: As, schema: etree.XMLSchema, kind: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000}
    while True:
        page, _ = await _both(c, schema, f"{V1}/{kind}", **params)
        items += page["items"]
        if page["next"] is None:
            return items
        params["cursor"] = page["next"]


def _richest(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The entry whose XML says the most: certificates, a named person, a parent."""
    wanted = {"routing-parties": "certificates", "national-members": "person",
              "national-correspondents": "person", "authorities": "address"}.get(kind)  # fmt: skip
    return next((item for item in items if wanted and item.get(wanted)), items[0])


async def test_every_kind_as_seeded_is_valid_xml_and_reads_back(
    api: Api, services: Services
) -> None:
    """The whole seed, page by page and entry by entry, as an operator (who sees named
    persons), with each entry's history and diff after a change."""
    await seed(services.batches, services.sessions)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=60)
    for kind, body in (
        ("maintenance-windows", {"owner": "EC", "ref": "w1", "component": "cdb",
                                 "reason": "upgrade", "starts_at": start.isoformat(),
                                 "ends_at": (start + dt.timedelta(hours=2)).isoformat()}),
        ("incidents", {"owner": "EC", "ref": "i1", "component": "cdb", "description": "503s",
                       "started_at": (start - dt.timedelta(days=61)).isoformat(),
                       "expected_recovery_at": start.isoformat()}),
        ("national-members", {"owner": "EJ", "ref": "xml-nm", "country": "MT",
                              "role": "assistant", "person": {"name": "A. Person"},
                              "contact": {"channel": "email", "value": "mt@eurojust.example.eu"}}),
        ("owners", {"code": "NO", "name": "Norway", "instruments": ["maintenance"]}),
    ):  # fmt: skip
        await services.writes.create(KINDS[kind], validate(KINDS[kind], body), "test")
    SEEN.difference_update(KIND_ROOTS | OTHER_ROOTS)
    async with api.client("operator") as c:
        schema = await _schema(c)
        for kind in KINDS:
            items = await _all_pages(c, schema, kind)
            chosen = _richest(kind, items)
            url = f"{V1}/{kind}/{chosen['id']}"
            if kind == "routing-parties":
                assert chosen["certificates"] and chosen["certificates"][0]["sha256"]
            if kind == "national-members":
                assert chosen["person"]["name"]
            entry, _ = await _both(c, schema, url)
            assert entry == chosen
            tag = {"If-Match": f'"{entry["version"]}"'}
            changed = await c.patch(url, json={"ref": f"xml-{kind}"}, headers=MERGE | tag)
            assert changed.status_code == 200, changed.text
            history, _ = await _both(c, schema, f"{url}/history")
            assert [v["version"] for v in history["items"]] == [2, 1]
            diff, _ = await _both(c, schema, f"{url}/diff", **{"from": 1})
            assert {"field": "ref", "from": chosen["ref"], "to": f"xml-{kind}"} in diff["fields"]
        await _both(c, schema, f"{V1}/authorities", count="true", owner="DE", limit=3)
        await _seeded_lookups(c, schema, services)
    assert KIND_ROOTS | OTHER_ROOTS | LOOKUP_ROOTS <= SEEN


async def _seeded_lookups(c: As, schema: etree.XMLSchema, services: Services) -> None:
    """Per member state, the look-ups over the seed: a ranked match with its routing, an
    answer with nothing to match (explained, with fallbacks), its desk, its recipients."""
    head = await services.reads.head()
    gazetteer = build(SEED_DIR).gazetteer
    matched = explained = 0
    for country in codes.COUNTRIES:
        # The EIO where the state takes part in it; IE and DK do not (answered
        # `not-participating`, in XML too): the EAW for them.
        instrument = "eio" if DEFAULT.takes_part(country, "eio") else "eaw"
        query = {"country": country, "instrument": instrument, "competence": "execute"}
        if instrument != "eio":
            out, _ = await _both(c, schema, f"{V1}/resolve", **query | {"instrument": "eio"})
            assert out["explanation"]["reason"] == "not-participating"
        first = gazetteer[country][0] if gazetteer.get(country) else None
        # The seed keys region 0's EIO by postal code, the EAW by NUTS 2 (a NUTS 3 reaches it).
        place = ({"postal_code": first.postal_code} if instrument == "eio"
                 else {"nuts": first.nuts3}) if first else {}  # fmt: skip
        found, _ = await _both(c, schema, f"{V1}/resolve", **query, **place,
                               min_revision=head)  # fmt: skip
        matched += bool(found["matches"])
        for match in found["matches"][:1]:
            await _both(c, schema, f"{V1}/resolve/recipient/{match['authority']['code']}")
        none, _ = await _both(c, schema, f"{V1}/resolve", **query | {"instrument": "jit"})
        explained += bool(none["explanation"] and none["fallbacks"])
        await _both(c, schema, f"{V1}/resolve/national-member", country=country)
    assert matched == explained == len(codes.COUNTRIES)


async def test_every_declared_answer_is_exercised(api: Api) -> None:
    """The XSD declares one root per XML answer the routes give; each is exercised above
    (a new XML read fails here until a test here covers it)."""
    async with api.client("reader") as c:
        served = etree.fromstring((await _served(c))["cdb.xsd"])
    declared = {e.get("name") for e in served.findall(f"{XS}element")}
    extensions = {"errors"}  # problem members, checked with each problem above
    exercised = KIND_ROOTS | LOOKUP_ROOTS | OTHER_ROOTS
    assert declared - extensions == exercised, (
        f"XML answers no test here exercises: {sorted(declared - extensions - exercised)}; "
        f"roots no route declares any more: {sorted(exercised - declared)}"
    )
    assert served.get("version") == api.app.openapi_config.version  # type: ignore[union-attr]


async def test_the_language_type_is_the_eu_official_languages(api: Api) -> None:
    """The 24 official EU languages' ISO 639-1 codes, as the Publications Office's
    authority table gives them, and the annotation says where they come from."""
    async with api.client("reader") as c:
        served = etree.fromstring((await _served(c))["cdb.xsd"])
    language = served.find(f"{XS}simpleType[@name='languages.text']")
    assert language is not None
    values = [e.get("value") for e in language.iter(f"{XS}enumeration")]
    eu24 = ["bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "ga", "hr",
            "hu", "it", "lt", "lv", "mt", "nl", "pl", "pt", "ro", "sk", "sl", "sv"]  # fmt: skip
    assert sorted(values) == eu24 == sorted(codes.LANGUAGES)
    note = "".join(language.find(f"{XS}annotation").itertext())
    assert "Publications Office" in note and "ISO 639-1" in note and "24" in note
    names = served.find(f"{XS}complexType[@name='AuthoritiesEntry.names']")
    assert names is not None  # names per language: one optional element per code
    assert sorted(e.get("name") for e in names.iter(f"{XS}element")) == eu24
    documented = served.find(
        f"{XS}complexType[@name='AuthoritiesEntry']//{XS}element[@name='code']"
    )
    assert "finalRecipient" in "".join(documented.itertext())


async def test_the_xsd_refuses_what_the_models_do_not_declare(api: Api, services: Services) -> None:
    """A deliberately wrong answer is refused: the typed XSD would catch a stray field."""
    pem = factories.certificate_pem()
    party = factories.routing_party(certificates=[{"use": "signing", "pem": pem}])
    spec = KINDS["routing-parties"]
    created = (await services.writes.create(spec, validate(spec, party), "test")).document
    async with api.client("reader") as c:
        schema = await _schema(c)
        good = (await c.get(f"{V1}/routing-parties/{created['id']}",
                            headers={"Accept": XML})).content  # fmt: skip

    def q(path: str) -> str:
        return "/".join(f"{{{CDB_NS}}}{step}" for step in path.split("/"))

    def edited(change: Any) -> Any:
        document = etree.fromstring(good)
        change(document)
        return document

    assert schema.validate(etree.fromstring(good)), schema.error_log
    certificate = q("certificates/i")
    wrong = {
        "a stray member in a certificate": lambda d: etree.SubElement(
            d.find(certificate), f"{{{CDB_NS}}}colour").__setattr__("text", "blue"),
        "a stray member in the entry": lambda d: etree.SubElement(d, f"{{{CDB_NS}}}colour"),
        "a missing member": lambda d: d.remove(d.find(q("endpoint_url"))),
        "a code outside its list": lambda d: d.find(f"{certificate}/{q('use')}").__setattr__(
            "text", "decoration"),
        "a number as text": lambda d: d.find(q("version")).attrib.pop("t"),
        "a date that is not one": lambda d: d.find(q("created_at")).__setattr__("text", "soon"),
        "a null where none may be": lambda d: d.find(q("name")).set("t", "null"),
        "another kind's root": lambda d: d.__setattr__("tag", f"{{{CDB_NS}}}authorities-entry"),
    }  # fmt: skip
    for why, change in wrong.items():
        assert not schema.validate(edited(change)), why


@pytest.mark.parametrize("names", [{"xx": "Gericht"}, {"DE": "Gericht"}])
async def test_a_name_in_no_eu_language_is_refused(api: Api, names: dict[str, str]) -> None:
    async with api.client("reader") as c:
        schema = await _schema(c)
    entry = {"id": "00000000-0000-0000-0000-000000000001", "owner": "DE", "ref": None,
             "version": 1, "revision": 1, "valid_from": None, "valid_to": None,
             "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
             "code": "DE:X", "kind": "court", "names": {"de": "Gericht"}, "address": None,
             "contacts": [], "languages": ["de"], "parent_id": None,
             "routing_party_id": None}  # fmt: skip
    assert schema.validate(etree.fromstring(to_xml("authorities-entry", entry)))
    refused = to_xml("authorities-entry", entry | {"names": names})
    assert not schema.validate(etree.fromstring(refused))
