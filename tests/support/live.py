"""A real `cdb-service serve` on a PostgreSQL database of its own, its clients, and a probe.

For the availability tests: the service runs as a process (dev profile: its own PKI
and token issuer, migrated and seeded on start) over direct TLS, optionally reaching
PostgreSQL through a `ThreadedStallProxy`; `Live` hands out mTLS + token clients as
any dev client, and starts the probe (`cdb-service probe`) against it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from cdb_service.security.dev import DevPki, token_for
from cdb_service.settings import Settings
from tests.support.nginx import free_port
from tests.support.service_process import executable, service_env, stop, wait_ready
from tests.support.stall_proxy import ThreadedStallProxy
from tests.support.tls import client_context

PG_ADMIN_URL = os.environ.get("CDB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
LOOKUP = "/api/v1/resolve?country=DE&instrument=eio&competence=execute&postal_code=10115"


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one service (the service migrates it)."""
    name = f"cdb_live_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class Live:
    root: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    proxy: ThreadedStallProxy | None
    database_url: str

    @property
    def pki(self) -> DevPki:
        return DevPki(self.root / "var" / "pki")

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def ca(self) -> Path:
        return self.pki.ca

    def token(self, client: str) -> str:
        return token_for(self.pki, client, Settings(port=self.port).dev_issuer_url(), "cdb-api",
                         "cdb_owner")  # fmt: skip

    def client(self, name: str, timeout: float = 30) -> httpx.Client:
        context = client_context(self.ca, self.pki.client_cert(name), self.pki.client_key(name))
        return httpx.Client(base_url=self.base_url, verify=context, timeout=timeout,
                            headers={"Authorization": f"Bearer {self.token(name)}"})  # fmt: skip

    def anonymous(self, timeout: float = 10) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=client_context(self.ca), timeout=timeout)

    def start(self) -> None:
        """(Re)start the service process on the same data and port; wait until ready."""
        with (self.root / "serve.log").open("ab") as out:
            self.process = subprocess.Popen([executable(), "serve"], env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.ca.exists():  # the dev profile writes its PKI on first start
            assert self.process.poll() is None and time.monotonic() < deadline, "no PKI"
            time.sleep(0.1)
        wait_ready(_Waitable(self), client_context(self.ca))

    def revisions(self) -> list[int]:
        async def read() -> list[int]:
            connection = await asyncpg.connect(self.database_url)
            try:
                rows = await connection.fetch("SELECT revision FROM revisions ORDER BY revision")
            finally:
                await connection.close()
            return [r[0] for r in rows]

        return asyncio.run(read())

    @contextmanager
    def probe(
        self, store: Path, interval: float, timeout: float
    ) -> Iterator[subprocess.Popen[bytes]]:
        token = self.root / "probe-token"
        token.write_text(self.token("operator"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDB_")}
        pki = self.pki
        with (self.root / "probe.log").open("ab") as out:
            process = subprocess.Popen(
                [executable(), "probe", "--target", self.base_url, "--ca", str(pki.ca),
                 "--cert", str(pki.client_cert("operator")),
                 "--key", str(pki.client_key("operator")), "--token-file", str(token),
                 "--store", str(store), "--interval", str(interval), "--timeout", str(timeout),
                 "--windows-every", "60", "--lookup", LOOKUP],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            yield process
        finally:
            stop(process)


@dataclass
class _Waitable:
    """What `wait_ready` looks at: the process, and where to ask."""

    live: Live

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.live.process

    @property
    def base_url(self) -> str:
        return self.live.base_url

    def log_tail(self, size: int = 4000) -> str:
        log = self.live.root / "serve.log"
        return log.read_text(errors="replace")[-size:] if log.exists() else ""


@contextmanager
def live_service(root: Path, *, through_proxy: bool = False, **variables: str) -> Iterator[Live]:
    """The service on a fresh PostgreSQL database, directly or through a stall proxy."""
    root.mkdir(parents=True, exist_ok=True)
    with pg_database() as url:
        proxy = None
        service_url = url
        if through_proxy:
            parts = urlsplit(url)
            proxy = ThreadedStallProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
            user = f"{parts.username}@" if parts.username else ""
            service_url = urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))
        port = free_port()
        (root / "var").mkdir(exist_ok=True)
        env = service_env(root / "var", port, CDB_DATABASE_URL=service_url, **variables)
        live = Live(root, port, env, None, proxy, url)  # type: ignore[arg-type]
        try:
            live.start()
            yield live
        finally:
            if live.process is not None:
                stop(live.process)
            if proxy is not None:
                proxy.close()


def rows(store: Path, sql: str, *params: Any) -> list[Any]:
    import sqlite3

    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        return list(db.execute(sql, params).fetchall())
