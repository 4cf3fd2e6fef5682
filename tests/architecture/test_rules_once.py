"""Rules written once: problems come from the catalogue, owner codes are spelled by one
function, and the contract lists the catalogue a client branches on.

The layer check cannot see a rule copied by hand; these scans can. Each scan is also
run on a planted copy of the habit it forbids, so that it cannot pass by finding nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from cdb_service.kernel.problems import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cdb_service"
# The dev issuer answers as an OAuth token endpoint (RFC 6749 errors), not as the CDB.
PROBLEM_BUILDERS = {"kernel/problems.py", "security/dev_issuer.py"}
CODE_SPELLER = "kernel/codes.py"


def _hand_built_problems(source: str) -> list[int]:
    """Lines that call `Problem(...)` themselves."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == "Problem")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "Problem")
        )
    ]


def _codes_upper_cased(source: str) -> list[int]:
    """Lines that upper-case something named an owner or a country themselves."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "upper"
        and any(word in ast.unparse(node.func.value).lower() for word in ("owner", "country"))
    ]


def _modules() -> list[tuple[str, str]]:
    return [
        (path.relative_to(PACKAGE).as_posix(), path.read_text("utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def test_every_problem_is_built_through_the_catalogue() -> None:
    found = [
        f"{name}:{line}"
        for name, source in _modules()
        if name not in PROBLEM_BUILDERS
        for line in _hand_built_problems(source)
    ]
    assert not found, f"build these through kernel/problems.py's catalogue: {found}"


def test_the_problem_scan_finds_a_planted_one() -> None:
    planted = 'raise Problem(400, "Malformed request", "bad", "malformed-request")\n'
    assert _hand_built_problems(planted) == [1]


def test_owner_and_country_codes_are_spelled_by_one_function() -> None:
    found = [
        f"{name}:{line}"
        for name, source in _modules()
        if name != CODE_SPELLER
        for line in _codes_upper_cased(source)
    ]
    assert not found, f"use kernel.codes.code_of or owner_code: {found}"


def test_the_code_scan_finds_a_planted_one() -> None:
    planted = "owner = args.owner.upper()\ncc = country.strip().upper()\nx = name.upper()\n"
    assert _codes_upper_cased(planted) == [1, 2]


def test_the_contract_states_each_problem_type_with_its_status_and_title() -> None:
    document = yaml.safe_load((ROOT / "openapi.yaml").read_text("utf-8"))
    stated = document["components"]["schemas"]["ProblemDetails"]["properties"]["type"]
    missing = [
        t.type
        for t in CATALOGUE
        if f"{t.status} `{t.type}` ({t.title})" not in " ".join(stated["description"].split())
    ]
    assert not missing, missing
    assert len({t.type for t in CATALOGUE}) == len(CATALOGUE), "a type is declared twice"
