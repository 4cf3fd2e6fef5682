"""What a resolve query is, as a client reads it in the contract and as every path takes it.

`lookup/query.py` declares the parameters once; the committed `openapi.yaml` must say
the same (required where the server requires, the code lists as enums, a description
on each), and the fast path must take exactly the route's parameters, or a request
the route answers would be answered differently past it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cdb_service.kernel import codes
from cdb_service.lookup import fast, query

CONTRACT = Path(__file__).resolve().parents[2] / "openapi.yaml"


def _parameters(path: str) -> dict[str, dict[str, Any]]:
    operation = yaml.safe_load(CONTRACT.read_text("utf-8"))["paths"][path]["get"]
    return {p["name"]: p for p in operation["parameters"]}


def test_the_contract_declares_the_resolve_query_as_the_server_reads_it() -> None:
    resolve = _parameters("/api/v1/resolve")
    assert set(resolve) == query.NAMES | {"min_revision"}
    for name, code_list in (("country", codes.COUNTRIES), ("instrument", codes.INSTRUMENTS),
                            ("competence", codes.COMPETENCES)):  # fmt: skip
        assert resolve[name]["required"] is True, name
        assert resolve[name]["schema"]["enum"] == list(code_list), name
    assert resolve["subject_matter"]["schema"]["enum"] == list(codes.SUBJECT_MATTERS)
    assert resolve["stage"]["schema"]["enum"] == list(codes.STAGES)
    assert not any(resolve[name]["required"] for name in ("postal_code", "lau", "nuts", "date"))
    desk = _parameters("/api/v1/resolve/national-member")
    assert desk["country"]["required"] is True
    assert desk["country"]["schema"]["enum"] == list(codes.COUNTRIES)
    recipient = _parameters("/api/v1/resolve/recipient/{code}")
    for parameters in (resolve, desk, recipient):
        undescribed = [name for name, p in parameters.items() if not p.get("description")]
        assert undescribed == []


def test_the_fast_path_takes_the_routes_parameters() -> None:
    assert fast.ROUTE.parameters == query.NAMES
