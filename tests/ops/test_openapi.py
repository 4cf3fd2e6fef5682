"""openapi.yaml is what the app generates: a route or schema change without regenerating fails."""

from __future__ import annotations

from pathlib import Path

from cdb_service.openapi import render

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.yaml"


def test_committed_openapi_matches_the_app() -> None:
    assert COMMITTED.read_text("utf-8") == render(), (
        "openapi.yaml is stale: run `make openapi` and commit the result"
    )
