"""docs/architecture.md names only what exists: every file path, module and member it cites.

The map is read by newcomers; a path that moved or a method that was renamed sends them
looking for nothing. Each backquoted name of a kind the map uses is checked:

- a path (`db/faults.py`, `registry/kinds/<kind>/__init__.py`, `mirror/`), under the
  package or the repository (`<…>` stands for any one folder);
- a bare file name (`app.py`, `openapi.yaml`): some file of that name;
- a dotted module path (`db.revisions.changes_after`, `web.conditional`): the module,
  and the name it defines or imports;
- a member (`EntryReads.head`, `KindSpec.server_fields`, `policy.redact`): a class or
  module of that name that defines it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import cdb_service

PACKAGE = Path(cdb_service.__file__).parent
ROOT = PACKAGE.parent
DOC = ROOT / "docs" / "architecture.md"
CODE = re.compile(r"`([^`\s]+)`")
PATH = re.compile(r"^[\w.<>-]+(/[\w.<>-]+)*/?$")
FILE = re.compile(r"\.(py|xsd|toml|yaml|html|md)$")
DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


def _names(tree: ast.Module) -> tuple[set[str], dict[str, set[str]]]:
    """A module's own names (definitions, assignments, imports) and its classes' members."""
    names: set[str] = set()
    classes: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            members = classes.setdefault(node.name, set())
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    members |= {t.id for t in item.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names, classes


def _index() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Every module by dotted name (under cdb_service) with its names; every class's members."""
    modules: dict[str, set[str]] = {}
    classes: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        dotted = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names, found = _names(ast.parse(path.read_text("utf-8")))
        modules[dotted] = names
        for name, members in found.items():
            classes.setdefault(name, set()).update(members)
    return modules, classes


def _path_exists(text: str) -> bool:
    pattern = re.sub(r"<[^>]+>", "*", text.rstrip("/"))
    for base in (PACKAGE, ROOT):
        if any(base.glob(pattern)):
            return True
    return ("/" not in text and any(PACKAGE.rglob(text))) or (ROOT / text).exists()


def _names_in_doc() -> list[str]:
    return sorted(set(CODE.findall(DOC.read_text("utf-8"))))


def _missing() -> list[str]:
    modules, classes = _index()
    stems = {}
    for dotted, names in modules.items():
        stems.setdefault(dotted.rsplit(".", 1)[-1], set()).update(names)
    missing = []
    for text in _names_in_doc():
        if text.startswith(("/", "../", "http")):
            continue  # a URL path, or a file outside the repository
        if "/" in text or FILE.search(text):
            if PATH.match(text) and not _path_exists(text):
                missing.append(text)
            continue
        if not DOTTED.match(text):
            continue
        head, _, member = text.rpartition(".")
        if head[0].isupper():  # Class.member
            if member not in classes.get(head, set()):
                missing.append(text)
        elif head in modules:  # package.module.name, or a module path itself
            if member not in modules[head] and text not in modules:
                missing.append(text)
        elif text in modules:
            continue
        elif head in stems and member not in stems[head]:
            missing.append(text)  # module.name, by the module's own name (`policy.redact`)
    return missing


def test_every_path_module_and_member_the_architecture_names_exists() -> None:
    assert not _missing(), f"docs/architecture.md names what does not exist: {_missing()}"


def test_the_check_sees_a_wrong_name() -> None:
    """Not vacuous: the names the map used to get wrong would be caught."""
    names = _names_in_doc()
    assert len(names) > 100
    modules, classes = _index()
    assert not _path_exists("db/outage.py")
    assert _path_exists("db/faults.py")
    assert "reached" not in classes["EntryReads"] and "head" in classes["EntryReads"]
    assert "changes_after" in modules["db.revisions"]
