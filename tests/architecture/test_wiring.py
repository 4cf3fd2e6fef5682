"""No hidden wires: the app state is read only by `deps.py` providers.

A part fetched by name from the app state is an import the layer check cannot see
(the request-id middleware once fetched the security gate that way, an upward
arrow), and a part a route needs but an app does not hold is a 500 at run time (the
mirror's `/resolve?min_revision=…` was). So only each context's `deps.py` reads the
state, as named, typed providers, and only the composition roots fill it: `app.py`
(from `Services`) and the mirror's `serving_app`. The second test plants a read in
a handler and shows the check names it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cdb_service"
# The composition roots: they put the parts in the state, they do not fetch them.
ROOTS = {"app.py", "mirror/serving.py"}


def _reads(source: str) -> list[int]:
    """Lines that reach the app state: `<x>.app.state`, `app.state`, the scope's
    `litestar_app`, or litestar's `State` (what a provider is handed)."""
    lines: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "state":
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name == "app":
                lines.append(node.lineno)
        elif (isinstance(node, ast.Constant) and node.value == "litestar_app") or (
            isinstance(node, ast.ImportFrom)
            and node.module == "litestar.datastructures"
            and any(alias.name == "State" for alias in node.names)
        ):
            lines.append(node.lineno)
    return lines


def hidden_wires(package: Path) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if path.name == "deps.py" or relative in ROOTS:
            continue
        found += [f"{relative}:{line}" for line in _reads(path.read_text("utf-8"))]
    return found


def test_only_providers_read_the_app_state() -> None:
    assert hidden_wires(PACKAGE) == []


def test_a_state_read_in_a_handler_is_named(tmp_path: Path) -> None:
    (tmp_path / "lookup").mkdir()
    provider = "def lookup_of(scope):\n    return scope['litestar_app'].state\n"
    (tmp_path / "lookup" / "deps.py").write_text(provider)
    (tmp_path / "lookup" / "controller.py").write_text(
        "async def resolve(request):\n"
        "    settings = request.app.state.settings\n"
        "    return scope['litestar_app'].state['reads'], settings\n"
    )
    (tmp_path / "console.py").write_text("from litestar.datastructures import Cookie, State\n")
    assert hidden_wires(tmp_path) == [
        "console.py:1", "lookup/controller.py:2", "lookup/controller.py:3",
    ]  # fmt: skip
