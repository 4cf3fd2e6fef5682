"""openapi.yaml is what the app generates: a route or schema change without regenerating fails."""

from __future__ import annotations

from pathlib import Path

import yaml

from cdb_service.openapi import render

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.yaml"


def test_committed_openapi_matches_the_app() -> None:
    assert COMMITTED.read_text("utf-8") == render(), (
        "openapi.yaml is stale: run `make openapi` and commit the result"
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
