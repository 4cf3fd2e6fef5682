"""openapi.yaml is what the app generates: a route or schema change without regenerating fails."""

from __future__ import annotations

from pathlib import Path

import yaml

from cdb_service.openapi import render, render_xsd

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.yaml"
COMMITTED_XSD = Path(__file__).resolve().parents[2] / "cdb_service" / "web" / "xsd" / "cdb.xsd"


def test_committed_openapi_matches_the_app() -> None:
    assert COMMITTED.read_text("utf-8") == render(), (
        "openapi.yaml is stale: run `make openapi` and commit the result"
    )


def test_committed_xsd_matches_the_app() -> None:
    """web/xsd/cdb.xsd is what the service serves (generated from the same models)."""
    assert COMMITTED_XSD.read_bytes() == render_xsd(), (
        "cdb_service/web/xsd/cdb.xsd is stale: run `make openapi` and commit the result"
    )


def test_every_answer_is_typed() -> None:
    """No success answer without a schema: a generated client and schemathesis's
    response conformance (tests/hostile/test_fuzz.py) have something to check."""
    document = yaml.safe_load(COMMITTED.read_text("utf-8"))
    untyped = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation.get("responses", {}).items():
                for media, content in (response.get("content") or {}).items():
                    schema = content.get("schema") or {}
                    if not schema or schema == {"additionalProperties": {}, "type": "object"}:
                        untyped.append(f"{method.upper()} {path} {status} {media}")
    assert not untyped, untyped


def test_names_is_an_object_keyed_by_language() -> None:
    schemas = yaml.safe_load(COMMITTED.read_text("utf-8"))["components"]["schemas"]
    for model in ("AuthorityIn", "AuthoritiesEntry"):
        names = schemas[model]["properties"]["names"]
        assert names["type"] == "object" and "de" in names["propertyNames"]["enum"], model


def test_schemathesis_conformance_has_teeth() -> None:
    """The fuzz's response-conformance check (tests/hostile/test_fuzz.py) rejects an entry
    that strays from the contract, and accepts one that keeps to it."""
    import datetime as dt

    import httpx
    import schemathesis

    operation = schemathesis.openapi.from_path(COMMITTED)["/api/v1/authorities/{entry_id}"]["GET"]
    entry = {
        "id": "00000000-0000-0000-0000-000000000001", "owner": "DE", "ref": None,
        "version": 1, "revision": 1, "valid_from": None, "valid_to": None,
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "code": "DE:X", "kind": "court", "names": {"de": "X"}, "address": None,
        "contacts": [], "languages": [], "parent_id": None, "routing_party_id": None,
    }  # fmt: skip

    def check(body: dict[str, object]) -> None:
        request = httpx.Request("GET", f"https://cdb.test/api/v1/authorities/{entry['id']}")
        response = httpx.Response(200, json=body, request=request)
        response.read()
        response.elapsed = dt.timedelta(milliseconds=1)
        operation.validate_response(response)

    check(entry)
    for strayed in (entry | {"names": ["X"]}, {k: v for k, v in entry.items() if k != "version"}):
        try:
            check(strayed)
        except Exception as error:  # schemathesis's failure group
            assert "violates schema" in str(error)
        else:
            raise AssertionError(f"accepted {strayed}")
