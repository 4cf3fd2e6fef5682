"""PostgreSQL servers of the test's own: a primary, a streaming standby, a restored copy.

Debian's server binaries (`/usr/lib/postgresql/<version>/bin`), clusters in a
temporary directory on free loopback ports, never the shared server on 5432. As
root, initdb refuses to run, so every server command runs as the `postgres` user
(`runuser`), in a directory that user owns. `psql` talks to them over TCP with
trust authentication, as any client would.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.nginx import free_port

SERVER_USER = "postgres"


def server_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_basebackup"),
                   key=lambda p: int(p.parent.parent.name))  # fmt: skip
    return found[-1].parent if found else None


requires_pg_server = pytest.mark.skipif(
    server_bin() is None or (shutil.which("runuser") is None and os.geteuid() == 0),
    reason="PostgreSQL server binaries are not installed (Debian: postgresql; `make test` "
    "installs them)",
)


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *command] if os.geteuid() == 0 else command


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(_as_server_user(command), capture_output=True, text=True, check=False,
                          **kwargs)  # type: ignore[call-overload]  # fmt: skip
    assert done.returncode == 0, f"{command[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done  # type: ignore[no-any-return]


@dataclass
class Server:
    data: Path
    port: int

    def tool(self, name: str) -> str:
        bin_dir = server_bin()
        assert bin_dir is not None
        return str(bin_dir / name)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/cdb"

    def start(self) -> None:
        # No pipes: the server inherits pg_ctl's output and would hold them open forever.
        done = subprocess.run(_as_server_user([
            self.tool("pg_ctl"), "-D", str(self.data), "-l", str(self.data / "server.log"),
            "-w", "-t", "60", "start"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            check=False)  # fmt: skip
        assert done.returncode == 0, (self.data / "server.log").read_text()[-2000:]

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(_as_server_user([self.tool("pg_ctl"), "-D", str(self.data), "-m",
                                            "immediate", "-w", "stop"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)  # fmt: skip

    def kill(self) -> None:
        """SIGKILL the postmaster and every process it started, as a crash would."""
        pid, *children = self._processes()
        for victim in [pid, *children]:
            with suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def _processes(self) -> list[int]:
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True,
                                  check=False).stdout.split()  # fmt: skip
        return [pid, *map(int, children)]

    def freeze(self) -> None:
        """SIGSTOP the postmaster and its backends: a hung server (a frozen VM). The kernel
        still completes TCP handshakes and acknowledges data, so clients see no error,
        only silence."""
        for pid in self._processes():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT what `freeze` stopped (so that it can be stopped and cleaned up)."""
        if (self.data / "postmaster.pid").exists():
            for pid in self._processes():
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def promote(self) -> None:
        subprocess.run(_as_server_user([self.tool("pg_ctl"), "-D", str(self.data), "-w", "-t",
                                        "60", "promote"]), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)  # fmt: skip

    def sql(self, query: str, database: str = "cdb") -> list[list[str]]:
        psql = shutil.which("psql") or self.tool("psql")
        command = [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d",
                   database, "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", query]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return [line.split("\t") for line in done.stdout.splitlines()]


def _configure(data: Path, port: int, lines: list[str]) -> None:
    settings = [f"port = {port}", "listen_addresses = '127.0.0.1'",
                f"unix_socket_directories = '{data}'", "max_connections = 60",
                "shared_buffers = 32MB", *lines]  # fmt: skip
    with (data / "postgresql.auto.conf").open("a") as conf:
        conf.write("\n".join(settings) + "\n")


@contextmanager
def workspace() -> Iterator[Path]:
    """A directory the server user owns (pytest's are private to root)."""
    root = Path(tempfile.mkdtemp(prefix="cdb-pg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def init_primary(root: Path, extra: list[str] | None = None) -> Server:
    server = Server(root / "primary", free_port())
    run([server.tool("initdb"), "-D", str(server.data), "-U", "postgres", "--auth=trust",
         "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"])  # fmt: skip
    _configure(server.data, server.port, ["wal_level = replica", "max_wal_senders = 5",
                                          *(extra or [])])  # fmt: skip
    server.start()
    server.sql("CREATE DATABASE cdb", database="postgres")
    return server


def init_standby(root: Path, primary: Server, name: str) -> Server:
    """A streaming standby of `primary`, named `name`, and the primary's commits then
    wait for it (synchronous replication: what it acknowledged, the standby has)."""
    standby = Server(root / name, free_port())
    run([standby.tool("pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U",
         "postgres", "-D", str(standby.data), "-R", "-X", "stream", "-c", "fast"])  # fmt: skip
    _configure(standby.data, standby.port, [
        f"primary_conninfo = 'host=127.0.0.1 port={primary.port} user=postgres "
        f"application_name={name}'",
        # Promoted, it has no standby of its own: it must not wait for one.
        "synchronous_standby_names = ''",
    ])  # fmt: skip
    standby.start()
    primary.sql(f"ALTER SYSTEM SET synchronous_standby_names = '{name}'")
    primary.sql("SELECT pg_reload_conf()")
    wait_until(lambda: primary.sql("SELECT sync_state FROM pg_stat_replication") == [["sync"]],
               30, "the standby in synchronous replication")  # fmt: skip
    return standby


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout} s")
