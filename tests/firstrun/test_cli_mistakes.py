"""A user's mistake at the command line gets one line and exit status 2, never a traceback.

Every subcommand is run as a separate `cdb-service` process, with a path that does not
exist and with a URL (or database) that does not answer. A few rows are left out on
purpose, named in `NOT_APPLICABLE` with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cdb_service.cli import parser
from cdb_service.mistakes import DatabaseTarget, explain
from tests.support.issuer import Issuer
from tests.support.nginx import free_port
from tests.support.pg_cluster import init_primary, requires_pg_server, workspace
from tests.support.service_process import executable, make_pki

MISSING = "/nonexistent/cdb-newcomer/file.ndjson"  # must stay absent (checked below)


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    says: str = ""  # a fragment the one line must contain


NOT_APPLICABLE = {
    # The probe's job is to record a service that does not answer: that is an outage
    # measured, not a mistake (its missing-file row is below).
    ("probe", "unreachable"),
    # `serve` waits for a database that does not answer (issue 27; shown by
    # tests/ops/test_readiness_outage.py); one that refuses the login is a mistake
    # (the "serve/login refused" row of `database_cases`).
    ("serve", "unreachable"),
    # An agent that cannot reach its registry tries again at its next run: exit status 1,
    # "retry later", not a mistake (tests/sync/test_config.py has its mistakes' rows).
    ("connector-sync", "unreachable"),
    # These take no URL and reach no database.
    ("dev-token", "unreachable"), ("dev-url", "unreachable"), ("openapi", "unreachable"),
    ("rotate-signing-key", "unreachable"),
    # These read no file the user names; their own mistakes have rows of their own.
    ("dev-token", "missing"), ("dev-url", "missing"),
}  # fmt: skip


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("newcomer")
    pki = make_pki(root / "pki", ("someone",))
    closed = free_port()
    # A migrated registry, so that the rows about an output path get as far as writing.
    env = {"PATH": os.environ["PATH"], "CDB_DATA_DIR": str(root / "data")}
    subprocess.run([executable(), "migrate"], env=env, check=True, capture_output=True)
    # The dev PKI too, once: rows run side by side, each on its own copy of this folder.
    subprocess.run([executable(), "dev-token", "--client", "reader"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    with Issuer(pki.server_cert, pki.server_key).running() as private_ca_server:
        yield {
            "data": str(root / "data"),
            "closed_db": f"postgresql://postgres@127.0.0.1:{closed}/cdb",
            "closed_url": f"https://127.0.0.1:{closed}",
            "private_ca_url": f"{private_ca_server.url}/jwks",
            "file": str(root / "empty.ndjson"),
            "tercet": str(root / "pc2025_DE_NUTS-2024_v1.0.csv"),
            "cert": str(pki.cert("someone")),
            "key": str(pki.key("someone")),
        }


def cases(p: dict[str, str]) -> list[Case]:
    assert not Path(MISSING).parent.exists(), "a command created the missing path's folder"
    Path(p["file"]).write_text("")
    # An output path that cannot be made: its folder would be inside a file.
    unwritable = f"{p['file']}/out/file.ndjson"
    Path(p["tercet"]).write_text("NUTS3;CODE\nDE300;10115\n")
    db = {"CDB_DATABASE_URL": p["closed_db"]}
    under_a_file = {"CDB_DATABASE_URL": f"sqlite:///{p['file']}/cdb.sqlite3"}
    # What rows write (mirrors, probe stores) goes beside the prepared data folder, never
    # into it: other rows copy that folder while these run.
    scratch = Path(p["data"]).parent / "scratch"
    scratch.mkdir(exist_ok=True)

    def mirror(into: str) -> list[str]:
        return ["mirror", "--into", f"sqlite:///{scratch}/{into}.sqlite3", "--once",
                "--token", "t"]  # fmt: skip

    return [
        Case("serve/missing", ["serve", "--port", str(free_port())],
             {"CDB_TLS_CERT_FILE": MISSING, "CDB_TLS_KEY_FILE": MISSING}, MISSING),
        Case("migrate/missing", ["migrate"], under_a_file, "not a directory"),
        Case("migrate/unreachable", ["migrate"], db, "CDB_DATABASE_URL"),
        Case("seed/missing", ["seed"], under_a_file, "not a directory"),
        Case("seed/unreachable", ["seed"], db, "CDB_DATABASE_URL"),
        Case("gazetteer-load/missing", ["gazetteer-load", MISSING, "--country", "DE"], {},
             MISSING),
        Case("gazetteer-load/unreachable", ["gazetteer-load", p["tercet"], "--country", "DE"], db,
             "CDB_DATABASE_URL"),
        Case("gazetteer-load/not a TERCET file", ["gazetteer-load", p["file"], "--country",
                                                  "DE"], {}, "TERCET"),
        Case("dev-token/wrong profile", ["dev-token", "--client", "reader"],
             {"CDB_PROFILE": "prod"}, "dev profile only"),
        Case("dev-token/unknown client", ["dev-token", "--client", "admin"], {}, "admin-de"),
        Case("dev-url/nothing running", ["dev-url"], {}, "make run"),
        Case("audit-verify/missing", ["audit-verify"], under_a_file, "not a directory"),
        Case("audit-verify/unreachable", ["audit-verify"], db, "CDB_DATABASE_URL"),
        Case("import/missing", ["import", MISSING, "--owner", "FR"], {}, MISSING),
        Case("import/unreachable", ["import", p["file"], "--owner", "FR"], db,
             "CDB_DATABASE_URL"),
        Case("export/missing", ["export", "--out", unwritable], {}, p["file"]),
        Case("export/unreachable", ["export"], db, "CDB_DATABASE_URL"),
        Case("quality/missing", ["quality", "--owner", "FR", "--out", unwritable], {},
             unwritable),
        Case("quality/unreachable", ["quality", "--owner", "FR"], db, "CDB_DATABASE_URL"),
        Case("verify-extract/missing", ["verify-extract", MISSING, "--jwks", MISSING], {},
             MISSING),
        Case("verify-extract/unreachable",
             ["verify-extract", p["file"], "--jwks", p["closed_url"] + "/jwks"], {},
             "cannot reach"),
        Case("verify-extract/private CA without --cacert",
             ["verify-extract", p["file"], "--jwks", p["private_ca_url"]], {}, "--cacert"),
        Case("verify-package/missing", ["verify-package", MISSING, "--jwks", MISSING], {},
             MISSING),
        Case("verify-package/unreachable",
             ["verify-package", p["file"], "--jwks", p["closed_url"] + "/jwks"], {},
             "cannot reach"),
        Case("verify-receipt/missing", ["verify-receipt", "a.b.c", "--jwks", MISSING], {},
             MISSING),
        Case("verify-receipt/unreachable",
             ["verify-receipt", "a.b.c", "--jwks", p["closed_url"] + "/jwks"], {},
             "cannot reach"),
        Case("verify-restore/missing", ["verify-restore", "--extract", MISSING, "--jwks",
                                        MISSING], {}, MISSING),
        Case("verify-restore/unreachable", ["verify-restore"], db, "CDB_DATABASE_URL"),
        Case("verify-restore/extract without its keys", ["verify-restore", "--extract",
                                                         p["file"]], {}, "--jwks"),
        Case("erase/missing", ["erase", "--expired"], under_a_file, "not a directory"),
        Case("erase/unreachable", ["erase", "--expired"], db, "CDB_DATABASE_URL"),
        Case("erase/without a reason", ["erase", "national-members",
                                        "00000000-0000-4000-8000-000000000000"], {}, "--reason"),
        Case("erase/a kind without persons", ["erase", "authorities",
                                              "00000000-0000-4000-8000-000000000000",
                                              "--reason", "r"], {}, "hold no personal data"),
        Case("erase/neither entry nor --expired", ["erase"], {}, "--expired"),
        Case("certificates/missing", ["certificates"], under_a_file, "not a directory"),
        Case("certificates/unreachable", ["certificates"], db, "CDB_DATABASE_URL"),
        Case("rotate-signing-key/missing", ["rotate-signing-key"],
             {"CDB_SIGNING_KEYS_FILE": MISSING}, MISSING),
        Case("mirror/missing", [*mirror("a"), "--from", p["closed_url"], "--ca", MISSING], {},
             MISSING),
        Case("mirror/unreachable", [*mirror("b"), "--from", p["closed_url"]], {}, "cannot reach"),
        Case("mirror/private CA without --ca", [*mirror("c"), "--from", p["private_ca_url"]], {},
             "--ca"),
        Case("mirror/issuer without a client id",
             [*mirror("d")[:-2], "--from", p["closed_url"], "--issuer", p["closed_url"]], {},
             "--issuer needs --client-id"),
        Case("mirror/unreachable issuer",
             [*mirror("e")[:-2], "--from", p["closed_url"], "--cert", p["cert"], "--key", p["key"],
              "--issuer", p["closed_url"], "--client-id", "cdb-mirror"], {},
             f"no token from {p['closed_url']}"),
        Case("probe/incident issuer and token",
             ["probe", "--target", p["closed_url"], "--store", f"{scratch}/probe.sqlite3",
              "--cert", p["cert"], "--key", p["key"], "--incident-issuer", p["closed_url"],
              "--incident-client-id", "ops", "--incident-token", "t"], {}, "not both"),
        Case("probe/missing", ["probe", "--target", p["closed_url"], "--ca", MISSING,
                               "--store", f"{scratch}/probe.sqlite3", "--max-samples", "1"],
             {}, MISSING),
        Case("probe/timeout longer than the interval",
             ["probe", "--target", p["closed_url"], "--store", f"{scratch}/probe.sqlite3",
              "--interval", "1", "--timeout", "2"], {}, "must not exceed --interval (1 s)"),
        Case("probe report/missing", ["probe", "report", "--store", MISSING], {}, MISSING),
        Case("connector-sync/missing", ["connector-sync", "--config", MISSING, "--once"], {},
             MISSING),
        Case("connector-sync/unknown target kind",
             ["connector-sync", "--config", _agent_config(scratch), "--once"], {},
             "'connector5' is not one of: connector-ng, connector4-dir, domibus"),
        Case("openapi/missing", ["openapi", "--out", unwritable], {}, unwritable),
    ]  # fmt: skip


def _agent_config(scratch: Path) -> str:
    """A connector-sync configuration with a target of a kind that does not exist."""
    path = scratch / "connector-sync.toml"
    path.write_text(f'registry = "https://127.0.0.1:1"\nparty = "fr-ap"\n'
                    f'state_file = "{scratch}/state.json"\n[[targets]]\n'
                    f'kind = "connector5"\nname = "c5"\n')  # fmt: skip
    return str(path)


def _run(case: Case, prepared: str) -> tuple[Case, subprocess.CompletedProcess[str]]:
    data = f"{prepared}-{re.sub(r'[^A-Za-z0-9]+', '-', case.name)}"
    shutil.copytree(prepared, data)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
           "CDB_DATA_DIR": data} | case.env  # fmt: skip
    done = subprocess.run([executable(), *case.argv], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    return case, done


def test_every_subcommand_is_covered(places: dict[str, str]) -> None:
    """A new subcommand must get its rows here (or a reason in NOT_APPLICABLE)."""
    commands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    rows = [case.name for case in cases(places)]
    for command in commands:
        for way in ("missing", "unreachable"):
            has_row = any(row.startswith(f"{command}/{way}") for row in rows)
            assert has_row or (command, way) in NOT_APPLICABLE, f"{command} has no {way} row"


def test_each_mistake_is_one_line_and_exit_2(places: dict[str, str]) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: _run(c, places["data"]), cases(places)))
    failures = []
    for case, done in results:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        ok = (done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr
              and case.says in lines[0])  # fmt: skip
        if not ok:
            failures.append(f"{case.name}: exit {done.returncode}, stderr {done.stderr[-600:]!r}")
    assert not failures, "\n".join(failures)


def test_dev_token_with_no_service_running_says_which_port_its_token_is_for(
    tmp_path: Path,
) -> None:
    """A token is still printed (it is valid for a service started later on that port);
    stderr says that none runs and how to aim it at another port."""
    env = {"PATH": os.environ["PATH"], "CDB_DATA_DIR": str(tmp_path / "var")}
    done = subprocess.run([executable(), "dev-token", "--client", "reader"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stdout.count(".") == 2, done.stderr
    note = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(note) == 1 and "no dev service is running" in note[0], done.stderr
    assert "port 8443" in note[0] and "CDB_PORT" in note[0]


# A database failure names its real cause: which bound ran out (and the setting that sets
# it), which address refused, that the login was refused. "cannot connect ()" for a
# statement timeout sent an operator to the network (issue 27).


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port that accepts a TCP connection (into the backlog) and never says a word:
    a hung PostgreSQL, or a firewall that swallows the handshake's answer."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def database_cases(pg_database: str, silent: int) -> list[Case]:
    closed = free_port()
    server = pg_database.rpartition("/")[0].rpartition("@")[2]  # host:port of the test server
    return [
        Case("refused", ["verify-restore"],
             {"CDB_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed}/cdb"},
             f"database connection refused by 127.0.0.1:{closed}"),
        Case("login refused", ["verify-restore"],
             {"CDB_DATABASE_URL": pg_database.replace("postgres@", "nobody-i27@", 1)},
             f"refused the login (role \"nobody-i27\" does not exist): authentication failed at "
             f"{server}"),
        Case("serve/login refused", ["serve", "--port", str(free_port())],
             {"CDB_DATABASE_URL": pg_database.replace("postgres@", "nobody-i27@", 1)},
             "refused the login (role \"nobody-i27\" does not exist)"),
        Case("statement timeout", ["verify-restore"],
             {"CDB_DATABASE_URL": pg_database, "CDB_DB_STATEMENT_TIMEOUT_S": "0.001"},
             "statement timeout (CDB_DB_STATEMENT_TIMEOUT_S=0.001 s)"),
        Case("connect timeout", ["verify-restore"],
             {"CDB_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{silent}/cdb",
              "CDB_DB_CONNECT_TIMEOUT_S": "1"},
             f"no answer from the database at 127.0.0.1:{silent} within the connect timeout "
             "(CDB_DB_CONNECT_TIMEOUT_S=1 s)"),
        Case("unknown host", ["verify-restore"],
             {"CDB_DATABASE_URL": "postgresql://postgres@cdb-db.invalid:5432/cdb"},
             "cannot resolve the database host cdb-db.invalid:5432"),
    ]  # fmt: skip


def test_a_database_failure_names_its_real_cause(
    places: dict[str, str], pg_database: str, silent_port: int
) -> None:
    failures = []
    for case in database_cases(pg_database, silent_port):
        _, done = _run(case, places["data"])
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        ok = (done.returncode == 2 and len(lines) == 1 and case.says in lines[0]
              and "cannot connect" not in lines[0])  # fmt: skip
        if not ok:
            failures.append(f"{case.name}: exit {done.returncode}, stderr {done.stderr[-600:]!r}")
    assert not failures, "\n".join(failures)


async def test_a_statement_the_client_gave_up_on_is_a_statement_timeout(pg_database: str) -> None:
    """The timeout the issue met: the driver's own (client-side) timeout on a query, a bare
    `TimeoutError` with no message, raised before the server's cancel arrives."""
    import asyncpg

    connection = await asyncpg.connect(pg_database)
    try:
        with pytest.raises(TimeoutError) as raised:
            await connection.fetch("SELECT pg_sleep(2)", timeout=0.05)
    finally:
        connection.terminate()
    target = DatabaseTarget(pg_database, 5.0, 0.05, 10.0)
    line = explain(raised.value, target)
    assert line is not None and line.startswith(
        "a statement ran past the statement timeout (CDB_DB_STATEMENT_TIMEOUT_S=0.05 s)"
    ), line


async def test_a_lock_not_granted_in_time_is_a_lock_timeout(pg_database: str) -> None:
    import asyncpg

    holder, waiter = await asyncpg.connect(pg_database), await asyncpg.connect(pg_database)
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE registry_head IN ACCESS EXCLUSIVE MODE")
            await waiter.execute("SET lock_timeout = 50")
            with pytest.raises(asyncpg.PostgresError) as raised:
                await waiter.fetch("SELECT * FROM registry_head")
    finally:
        await holder.close()
        await waiter.close()
    line = explain(raised.value, DatabaseTarget(pg_database, 5.0, 10.0, 0.05))
    assert line is not None and line.startswith(
        "a lock was not granted within the lock timeout (CDB_DB_LOCK_TIMEOUT_S=0.05 s)"
    ), line


@requires_pg_server
def test_a_wrong_password_is_a_refused_login(places: dict[str, str]) -> None:
    """A server that asks for a password (scram-sha-256), given the wrong one."""
    with workspace() as root:
        server = init_primary(root)
        try:
            server.sql("ALTER ROLE postgres PASSWORD 'right'", "postgres")
            (server.data / "pg_hba.conf").write_text("host all all 127.0.0.1/32 scram-sha-256\n")
            server.sql("SELECT pg_reload_conf()", "postgres")
            url = f"postgresql://postgres:not-it-8c1f@127.0.0.1:{server.port}/cdb"
            case = Case("wrong password", ["verify-restore"], {"CDB_DATABASE_URL": url})
            _, done = _run(case, places["data"])
        finally:
            server.stop()
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "refused the login (password authentication failed for user" in lines[0], lines[0]
    assert f"authentication failed at 127.0.0.1:{server.port}" in lines[0], lines[0]
    assert "not-it-8c1f" not in lines[0], "the password is not shown"


def test_a_timeout_that_lost_its_driver_frames_names_both_bounds() -> None:
    """A driver timeout that crossed a thread (migrations run in one) arrives bare: it is
    still said to be a timeout, with both settings that bound a database wait."""
    line = explain(TimeoutError(), DatabaseTarget("postgresql://db1:5432/cdb", 5.0, 0.001, 10.0))
    assert line is not None and "cannot connect" not in line, line
    assert line.startswith("timed out waiting for the database"), line
    assert "CDB_DB_STATEMENT_TIMEOUT_S=0.001 s" in line and "CDB_DB_CONNECT_TIMEOUT_S=5 s" in line


def test_a_connection_closed_by_a_timeout_names_the_timeout_not_the_closed_connection() -> None:
    """Cleaning up after a timed-out statement can find the connection already closed;
    the closing error is not the cause the user is told (it was a traceback)."""
    from sqlalchemy.exc import ResourceClosedError

    try:
        try:
            raise TimeoutError
        except TimeoutError:
            raise ResourceClosedError("This Connection is closed") from None
    except ResourceClosedError as closed:
        closed.__context__ = TimeoutError()
        line = explain(closed, DatabaseTarget("postgresql://db1:5432/cdb", 5.0, 0.001, 10.0))
    assert line is not None and line.startswith("timed out waiting for the database"), line


def test_an_error_from_inside_the_driver_is_one_line_naming_the_database_bounds() -> None:
    """A timeout that cut a connection's first queries short surfaced as a TypeError in
    SQLAlchemy's dialect (a traceback): it is said as a database failure with its bounds."""
    inside = "/venv/site-packages/sqlalchemy/dialects/postgresql/base.py"  # the frame's file
    try:
        exec(compile("raise TypeError(\"'>=' not supported\")", inside, "exec"))
    except TypeError as raised:
        line = explain(raised, DatabaseTarget("postgresql://db1:5432/cdb", 5.0, 0.001, 10.0))
    assert line is not None and line.startswith("the database connection failed (TypeError"), line
    assert "statement timeout (CDB_DB_STATEMENT_TIMEOUT_S=0.001 s)" in line
    # The same error from our own code is a bug, not the user's: no line, a traceback.
    assert (
        explain(TypeError("x"), DatabaseTarget("postgresql://db1:5432/cdb", 5.0, 0.001, 10.0))
        is None
    )
