"""Real `cdb-service serve` processes for security tests, and the test PKI they use.

`Pki` writes a CA of its own (nothing from the dev profile), a server certificate
for localhost/127.0.0.1, named client certificates, an expired client certificate
of the same CA and a client certificate of a CA the service does not know.
`running_service` starts the service with exactly the `CDB_*` variables given
(nothing inherited from the caller's environment), waits for `/health/ready` and
stops it at the end. `Service` reads the service's SQLite file read-only, to see
what a request changed: the registry head, the audit trail.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from cryptography import x509

from cdb_service.security.pki import PkiFiles, issue, make_ca
from cdb_service.security.x509 import certificate_facts
from tests.support.nginx import free_port
from tests.support.tls import client_context

PROBLEM = "application/problem+json"


# --- the test PKI ---------------------------------------------------------------------


@dataclass(frozen=True)
class Pki(PkiFiles):
    """The tests' own PKI, in the dev PKI's layout: named clients, plus `expired` and
    `stranger` (see `make_pki`)."""

    def cert(self, name: str) -> Path:
        return self.client_cert(name)

    def key(self, name: str) -> Path:
        return self.client_key(name)

    def pem(self, name: str) -> str:
        return self.cert(name).read_text()

    def certificate(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert(name).read_bytes())

    def thumbprint(self, name: str) -> str:
        """RFC 8705 `x5t#S256` of client `name`'s certificate."""
        return certificate_facts(self.certificate(name)).x5t_s256

    def subject(self, name: str) -> str:
        return certificate_facts(self.certificate(name)).subject

    def context(self, name: str | None = None) -> ssl.SSLContext:
        """A client TLS context trusting the test CA, presenting `name`'s certificate."""
        if name is None:
            return client_context(self.ca)
        return client_context(self.ca, self.cert(name), self.key(name))

    def escaped_pem(self, name: str) -> str:
        """The certificate as nginx forwards it (`$ssl_client_escaped_cert`)."""
        return quote(self.pem(name), safe="")


EXPIRED = "expired"
STRANGER = "stranger"


def make_pki(root: Path, clients: tuple[str, ...]) -> Pki:
    """A CA, a server certificate, `clients`, plus `expired` (same CA) and `stranger`."""
    pki = Pki(root)
    now = dt.datetime.now(dt.UTC)
    ca = make_ca("cdb test CA", organisation="cdb tests", not_before=now - dt.timedelta(days=60))
    pki.write_ca(ca)
    pki.write_server(issue(ca, "localhost", organisation="cdb tests", dns_names=("localhost",),
                           ip_addresses=("127.0.0.1",), server=True))  # fmt: skip
    for name in clients:
        pki.write_client(name, issue(ca, name, organisation="cdb tests", client=True))
    # Issued by the trusted CA and otherwise fine, but its validity ended yesterday.
    expired = issue(ca, "expired-client", organisation="cdb tests", client=True,
                    not_before=now - dt.timedelta(days=30),
                    not_after=now - dt.timedelta(days=1))  # fmt: skip
    pki.write_client(EXPIRED, expired)
    # A well-formed, valid client certificate of a CA the service was never told about.
    other_ca = make_ca("Some other CA", organisation="elsewhere")
    pki.write_client(STRANGER, issue(other_ca, "reader", organisation="elsewhere", client=True))
    return pki


# --- the service process ----------------------------------------------------------------


def executable() -> str:
    """This interpreter's own `cdb-service` first: another checkout's on PATH would test
    other code."""
    beside = Path(sys.executable).with_name("cdb-service")
    return str(beside) if beside.exists() else shutil.which("cdb-service") or str(beside)


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log: Path
    scheme: str

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def database(self) -> Path:
        return self.data_dir / "cdb.sqlite3"

    def dev_token(self, client: str) -> str:
        """A token from this dev service's own issuer, as `cdb-service dev-token` prints it."""
        env = {"PATH": os.environ["PATH"], "CDB_DATA_DIR": str(self.data_dir),
               "CDB_PORT": str(self.port)}  # fmt: skip
        done = subprocess.run([executable(), "dev-token", "--client", client], env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        return done.stdout.strip()

    def log_tail(self, size: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""

    # Read-only looks into the service's SQLite file (WAL: sees every committed write).

    def query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        with closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)) as db:
            db.row_factory = sqlite3.Row
            return list(db.execute(sql, params).fetchall())

    def registry_head(self) -> int:
        return int(self.query("SELECT revision FROM registry_head WHERE id = 1")[0][0])

    def authority_count(self) -> int:
        return int(self.query("SELECT count(*) FROM authorities")[0][0])

    def audit_seq(self) -> int:
        return int(self.query("SELECT coalesce(max(seq), 0) FROM audit_events")[0][0])

    def audit_after(self, seq: int) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM audit_events WHERE seq > ? ORDER BY seq", seq)
        out = []
        for row in rows:
            event = dict(row)
            if isinstance(event.get("detail"), str):
                event["detail"] = json.loads(event["detail"])
            out.append(event)
        return out


def service_env(data_dir: Path, port: int, **variables: str) -> dict[str, str]:
    """The caller's environment without any CDB_* variable, plus exactly these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDB_")}
    env |= {"CDB_PROFILE": "dev", "CDB_DATA_DIR": str(data_dir), "CDB_HOST": "127.0.0.1",
            "CDB_PORT": str(port),
            # Tests of one refusal after another from 127.0.0.1 are not floods: each is
            # written to the trail as it happens. Rate limits and the counting of repeated
            # refusals have tests of their own (tests/hostile/).
            "CDB_RATE_LIMIT_ANONYMOUS_BURST": "100000",
            "CDB_AUDIT_REFUSAL_WINDOW_S": "0"}  # fmt: skip
    return env | variables


def wait_ready(service: Service, verify: ssl.SSLContext | bool, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise AssertionError(f"the service exited:\n{service.log_tail()}")
        try:
            response = httpx.get(f"{service.base_url}/health/ready", timeout=2, verify=verify)
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the service was not ready in time:\n{service.log_tail()}")


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def running_service(root: Path, variables: dict[str, str],
                    ca: Path | None = None) -> Iterator[Service]:  # fmt: skip
    """`cdb-service serve` with `variables`; HTTPS (trusting `ca`) if given, else HTTP."""
    root.mkdir(parents=True, exist_ok=True)
    data_dir, port, log = root / "var", free_port(), root / "serve.log"
    data_dir.mkdir(exist_ok=True)
    env = service_env(data_dir, port, **variables)
    with log.open("wb") as out:
        process = subprocess.Popen([executable(), "serve"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    service = Service(process, port, data_dir, log, "https" if ca else "http")
    try:
        wait_ready(service, client_context(ca) if ca else False)
        yield service
    finally:
        stop(process)
