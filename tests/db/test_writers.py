"""Only `cdb_service/db/` writes the history tables: registry_head, revisions, entry_versions.

The service writes them through `db/revisions/` (`head.py`, `writer.py`), a mirror
through `db/replica.py`; anyone else inserting, updating or deleting there would
bypass the registry lock and the gap-free revision order. A scan of the source finds
such writes: SQL builder calls (`insert`, `update`, `delete`, dialect variants) on the models or
their tables, rows constructed from the models (`session.add(Revision(...))`),
and SQL text naming the tables.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import cdb_service

PACKAGE = Path(cdb_service.__file__).parent
ALLOWED = PACKAGE / "db"
MODELS = frozenset({"RegistryHead", "Revision", "EntryVersion"})
TABLES = frozenset({"registry_head", "revisions", "entry_versions"})
# insert/update/delete and helpers named for them (pg_insert, _insert, insert_rows, …).
WRITES = re.compile(r"(^|_)(insert|update|delete|upsert)(_|$)")
SQL_WRITE = re.compile(
    r"\b(insert\s+into|update|delete\s+from|truncate(\s+table)?)\s+\"?(registry_head|revisions"
    r"|entry_versions)\b",
    re.IGNORECASE,
)


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _mentions_history(node: ast.AST) -> bool:
    for inner in ast.walk(node):
        if _name(inner) in MODELS:
            return True
        if isinstance(inner, ast.Constant) and inner.value in TABLES:
            return True
    return False


def writes_in(source: str) -> list[tuple[int, str]]:
    """(line, what) for every write to the history tables this source makes."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            called = _name(node.func)
            if called and WRITES.search(called) and any(map(_mentions_history, node.args)):
                found.append((node.lineno, f"{called}({ast.unparse(node.args[0])}, …)"))
            elif called in MODELS:
                found.append((node.lineno, f"{called}(...) row"))
        elif isinstance(node, ast.Constant) and SQL_WRITE.search(str(node.value)):
            found.append((node.lineno, f"SQL {str(node.value)[:60]!r}"))
    return found


def test_only_the_db_package_writes_the_history_tables() -> None:
    outside = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if ALLOWED not in path.parents
        for line, what in writes_in(path.read_text("utf-8"))
    ]
    assert not outside, "writes to the history tables outside cdb_service/db/:\n" + "\n".join(
        outside
    )


def test_the_scan_sees_the_writers_it_allows() -> None:
    """Not vacuous: the two real writers are found, and so is each shape of a stray write."""
    for name in ("revisions/head.py", "revisions/writer.py", "replica.py"):
        assert writes_in((ALLOWED / name).read_text("utf-8")), name
    strays = [
        "await session.execute(insert(EntryVersion), rows)",
        "await session.execute(update(rev.RegistryHead).values(revision=3))",
        "await session.execute(delete(Revision.__table__))",
        "await s.execute(pg_insert(_table(EntryVersion)), rows)",
        "await _insert(session, _table(EntryVersion), versions)",
        "await insert_rows(session, Revision, rows)",
        "session.add(Revision(revision=1, actor='x'))",
        "await s.execute(text('UPDATE registry_head SET revision = 9'))",
        "await s.execute(text('delete from entry_versions'))",
        'cursor.execute("INSERT INTO \\"revisions\\" VALUES (1)")',
    ]
    for stray in strays:
        assert writes_in(stray), stray
    harmless = [
        "select(Revision.actor).order_by(Revision.revision.desc())",
        "await session.execute(insert(GeoKey), rows)",
        "update(table).where(table.c.id == entry_id)",
        "errors.insert(0, FieldError(('owner',), moved))",
        "'the revisions of an entry are listed newest first'",
    ]
    for ok in harmless:
        assert not writes_in(ok), ok
