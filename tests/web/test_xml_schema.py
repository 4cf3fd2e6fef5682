"""The XSD generator on its own: any answer model becomes a schema that accepts exactly
what `xml_form` writes for it, so a read that gains an XML form is typed without
hand-written XSD."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import pytest
from lxml import etree
from pydantic import BaseModel, Field

from cdb_service.web.xml_form import to_xml
from cdb_service.web.xml_schema import XmlAnswer, render

XS = "{http://www.w3.org/2001/XMLSchema}"


class Place(BaseModel):
    """Where it is."""

    city: str = Field(min_length=1, description="the city, as written locally")
    postal_code: str | None = None


class Thing(BaseModel):
    id: uuid.UUID
    kind: Literal["small", "large"]
    count: int = Field(ge=0)
    ratio: float | None
    on: dt.date | None
    at: dt.datetime
    place: Place | None
    tags: list[str] = Field(min_length=1, max_length=3)
    names: Annotated[dict[str, str], Field(json_schema_extra={
        "propertyNames": {"enum": ["de", "fr"]}})]  # fmt: skip
    counts: dict[str, int]
    anything: Any = None
    code: str = Field(pattern=r"^[A-Z]{2}$")
    loose: str = Field(pattern=r"[A-Z]{2}")  # JSON Schema searches: not an XSD pattern


GOOD: dict[str, Any] = {
    "id": "00000000-0000-0000-0000-00000000000a", "kind": "small", "count": 3, "ratio": None,
    "on": "2027-03-01", "at": "2027-03-01T10:00:00.5+00:00",
    "place": {"city": "Köln", "postal_code": None}, "tags": ["a"],
    "names": {"de": "Ding"}, "counts": {"odd key!": 1}, "anything": [{"x": None}],
    "code": "DE", "loose": "xx DE xx",
}  # fmt: skip


@pytest.fixture(scope="module")
def xsd() -> bytes:
    return render((XmlAnswer("thing-answer", Thing, ("GET /things/{id}",)),), "9.9")


def _valid(xsd: bytes, data: dict[str, Any]) -> bool:
    parser = etree.XMLParser(resolve_entities=False)
    parser.resolvers.add(_NoProblems())
    schema = etree.XMLSchema(etree.fromstring(xsd, parser, base_url="cdb.xsd"))
    return bool(schema.validate(etree.fromstring(to_xml("thing-answer", data))))


class _NoProblems(etree.Resolver):  # type: ignore[misc]
    """problem.xsd (imported) is not what is tested here: an empty schema of its namespace."""

    def resolve(self, url: str, _: Any, context: Any) -> Any:
        empty = (b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"'
                 b' targetNamespace="urn:ietf:rfc:7807"/>')  # fmt: skip
        return self.resolve_string(empty, context)


def test_what_the_model_allows_is_valid(xsd: bytes) -> None:
    assert _valid(xsd, GOOD)
    assert _valid(xsd, GOOD | {"place": None, "on": None, "ratio": 0.5, "names": {}})


@pytest.mark.parametrize(
    "change",
    [
        {"colour": "blue"},  # a member the model does not declare
        {"kind": "medium"},  # outside the Literal
        {"count": -1},  # below its bound
        {"count": "3"},  # a number as text
        {"on": "tomorrow"},  # not a date
        {"id": "not-a-uuid"},
        {"place": {"city": ""}},  # too short, and postal_code missing
        {"place": {"city": "Köln", "postal_code": None, "street": "x"}},  # stray, one deeper
        {"tags": []},  # fewer items than the model's minimum
        {"tags": ["a", "b", "c", "d"]},  # more than its maximum
        {"names": {"xx": "Ding"}},  # a key outside the closed list
        {"code": "DEU"},  # outside the anchored pattern
        {"at": None},  # null where the model has no null
    ],
)
def test_what_the_model_refuses_is_invalid(xsd: bytes, change: dict[str, Any]) -> None:
    assert not _valid(xsd, GOOD | change), change


def test_a_missing_member_is_invalid(xsd: bytes) -> None:
    assert not _valid(xsd, {k: v for k, v in GOOD.items() if k != "kind"})
    assert _valid(xsd, {k: v for k, v in GOOD.items() if k != "anything"})  # has a default


def test_descriptions_and_version_are_carried(xsd: bytes) -> None:
    schema = etree.fromstring(xsd)
    assert schema.get("version") == "9.9"
    place = schema.find(f"{XS}complexType[@name='Place-or-null']")
    assert place is not None
    assert "Where it is." in "".join(place.itertext())
    assert "as written locally" in "".join(place.itertext())
    root = schema.find(f"{XS}element[@name='thing-answer']")
    assert "GET /things/{id}" in "".join(root.itertext())
    patterns = [p.get("value") for p in schema.iter(f"{XS}pattern")]
    assert "[A-Z]{2}" in patterns and patterns.count("[A-Z]{2}") == 1  # `loose` left open
