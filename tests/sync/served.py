"""A served registry for the agent's tests, and agents configured against it.

The registry is a real `cdb-service serve` (dev profile: its own PKI, its dev issuer, which
gives client-credentials tokens to a client authenticated by its certificate, RFC 8705
`tls_client_auth`), over TLS on 127.0.0.1, on SQLite or on a PostgreSQL database of its
own. An agent authenticates as FR's administrator (`admin-fr`: its certificate, and
tokens it fetches from the issuer and renews), who may acknowledge FR's access points.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cdb_service.security.dev import DevPki, token_for
from cdb_service.settings import Settings
from tests.support import factories
from tests.support.nginx import free_port
from tests.support.service_process import executable, service_env, stop
from tests.support.tls import client_context

V1 = "/api/v1"
SERVICE = "urn:cdb-sync-test"  # a service of these tests' parties only: no seeded partner
# The restart command of a connector 4.x directory target: counts its runs in a file, and
# fails (exit 3) while a file named `<counter>.fail` exists.
RESTART = textwrap.dedent("""
    import pathlib, sys
    counter = pathlib.Path(sys.argv[1])
    if pathlib.Path(str(counter) + ".fail").exists():
        sys.exit("the connector did not come back")
    with counter.open("a") as out:
        out.write("restarted\\n")
""")


@dataclass
class Registry:
    process: subprocess.Popen[bytes]
    port: int
    root: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pki(self) -> DevPki:
        return DevPki(self.root / "var" / "pki")

    def client(self, name: str) -> httpx.Client:
        pki = self.pki
        token = token_for(pki, name, Settings(port=self.port).dev_issuer_url(), "cdb-api",
                          "cdb_owner")  # fmt: skip
        return httpx.Client(base_url=self.url, timeout=60,
                            verify=client_context(pki.ca, pki.client_cert(name),
                                                  pki.client_key(name)),
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip

    def create_party(self, name: str, certificates: list[dict[str, Any]],
                     service: str = SERVICE) -> dict[str, Any]:  # fmt: skip
        """FR's party `name`, offering `service` (another one than the others': a package
        of its own, that no other party's change alters)."""
        services = [{"service": service, "actions": ["Submit"]}]
        body = factories.routing_party(owner="FR", name=name, certificates=certificates,
                                       services=services)  # fmt: skip
        with self.client("admin-fr") as fr:
            made = fr.post(f"{V1}/routing-parties", json=body)
        assert made.status_code == 201, made.text
        return dict(made.json())

    def plain_party(self, name: str) -> dict[str, Any]:
        """FR's party `name` with one encryption certificate (300 days): one current
        package, and a next one at the certificate's end."""
        return self.create_party(name, [{"use": "encryption",
                                         "pem": factories.certificate_pem(300, name)}])  # fmt: skip

    def update_party(self, party: dict[str, Any], certificates: list[dict[str, Any]]) -> None:
        url = f"{V1}/routing-parties/{party['id']}"
        with self.client("admin-fr") as fr:
            current = fr.get(url)
            document = current.json() | {"certificates": certificates}
            done = fr.put(url, json=document, headers={"If-Match": current.headers["etag"]})
        assert done.status_code == 200, done.text

    def jwks(self) -> dict[str, Any]:
        with self.client("reader") as reader:
            return dict(reader.get("/.well-known/jwks.json").json())

    def package(self, party: str, **params: str) -> httpx.Response:
        with self.client("reader") as reader:
            return reader.get(f"{V1}/packages/{party}", params=params)

    def rollouts(self) -> list[dict[str, Any]]:
        with self.client("admin-fr") as fr:
            got = fr.get(f"{V1}/rollouts")
        assert got.status_code == 200, got.text
        return list(got.json()["items"])

    def acknowledgements(self, party: str) -> list[dict[str, Any]]:
        with self.client("admin-fr") as fr:
            got = fr.get(f"{V1}/access-points/{party}/acknowledgements", params={"limit": 200})
        assert got.status_code == 200, got.text
        return list(got.json()["items"])

    def agent_config(self, folder: Path, party: str, targets: str, **top: Any) -> Path:
        """A TOML file for an agent of `party` in `folder`, with `targets` (TOML)."""
        folder.mkdir(parents=True, exist_ok=True)
        pki = self.pki
        settings = {"poll_seconds": 1, "wake_early_seconds": 2, "retry_base_seconds": 0.05,
                    "retry_max_seconds": 0.2} | top  # fmt: skip
        lines = [f'registry = "{self.url}"', f'party = "{party}"',
                 f'state_file = "{folder / "state.json"}"']  # fmt: skip
        lines += [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"'
                  for k, v in settings.items()]  # fmt: skip
        lines += ["[tls]", f'ca = "{pki.ca}"', f'cert = "{pki.client_cert("admin-fr")}"',
                  f'key = "{pki.client_key("admin-fr")}"', "[credentials]",
                  f'issuer = "{Settings(port=self.port).dev_issuer_url()}"',
                  'client_id = "admin-fr"', targets]  # fmt: skip
        path = folder / "connector-sync.toml"
        path.write_text("\n".join(lines) + "\n")
        return path


def directory_target(folder: Path, name: str = "c4") -> tuple[str, Path, Path]:
    """A connector4-dir target's TOML, its directory and its restart counter."""
    directory, counter = folder / "connector", folder / "restarts.log"
    directory.mkdir(parents=True, exist_ok=True)
    script = folder / "restart.py"
    script.write_text(RESTART)
    toml = textwrap.dedent(f"""
        [[targets]]
        kind = "connector4-dir"
        name = "{name}"
        directory = "{directory}"
        restart_command = ["{sys.executable}", "{script}", "{counter}"]
        restart_timeout_seconds = 30
    """)
    return toml, directory, counter


def http_target(folder: Path, kind: str, name: str, base_url: str, username: str,
                password: str, **settings: str | float | bool) -> str:  # fmt: skip
    """A Domibus or connector-ng target's TOML, its password in a file of `folder` (as an
    operator keeps it), with `settings` (e.g. truststore_api, timeout_seconds)."""
    folder.mkdir(parents=True, exist_ok=True)
    secret = folder / f"{kind}-{name}-password"
    secret.write_text(password)
    lines = ["[[targets]]", f'kind = "{kind}"', f'name = "{name}"', f'base_url = "{base_url}"',
             f'username = "{username}"', f'password_file = "{secret}"']  # fmt: skip
    for key, value in settings.items():
        shown = ("true" if value else "false") if isinstance(value, bool) else json.dumps(value)
        lines.append(f"{key} = {shown}")
    return "\n" + "\n".join(lines) + "\n"


def run_once(path: Path) -> subprocess.CompletedProcess[str]:
    """`cdb-service connector-sync --config path --once`, as cron runs it."""
    return subprocess.run([executable(), "connector-sync", "--config", str(path), "--once"],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def restarts(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def _wait(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text(errors='replace')[-3000:]}")


def _ready(port: int, ca: Path) -> bool:
    if not ca.exists():
        return False
    try:
        answer = httpx.get(f"https://127.0.0.1:{port}/health/ready", timeout=2,
                           verify=client_context(ca))  # fmt: skip
        return answer.status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def serving(root: Path, database_url: str | None = None) -> Iterator[Registry]:
    """A registry (dev profile) in `root`; on `database_url` (PostgreSQL) when given."""
    port, log = free_port(), root / "serve.log"
    extra = {"CDB_DATABASE_URL": database_url} if database_url else {}
    with log.open("wb") as out:
        process = subprocess.Popen([executable(), "serve"],
                                   env=service_env(root / "var", port, **extra),
                                   stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    served = Registry(process, port, root)
    try:
        _wait(lambda: _ready(port, served.pki.ca), 120, "the registry", log)
        yield served
    finally:
        stop(process)
