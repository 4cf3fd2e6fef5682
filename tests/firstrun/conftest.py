"""A newcomer's checkout: a fresh `make run` on a port other than 8443.

The checkout is a directory of links to this repository's files (the virtual
environment included, so nothing is installed again) with no `var/` of its own:
`make run` generates the dev PKI, migrates, seeds and serves there, exactly as on a
fresh clone. Every `CDB_*` variable of the caller is removed first.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.nginx import free_port

REPO = Path(__file__).resolve().parents[2]
LEFT_OUT = {"var", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


@dataclass(frozen=True)
class Checkout:
    root: Path
    port: int
    printed: Path  # what `make run` printed

    @property
    def ca(self) -> Path:
        return self.root / "var" / "pki" / "ca.pem"

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def env(self) -> dict[str, str]:
        """A second terminal's environment: nothing about the port or the data directory."""
        return {k: v for k, v in os.environ.items() if not k.startswith("CDB_")}


@pytest.fixture(scope="session")
def fresh_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checkout]:
    root = tmp_path_factory.mktemp("checkout")
    for entry in REPO.iterdir():
        if entry.name not in LEFT_OUT:
            (root / entry.name).symlink_to(entry)
    port = free_port()
    while port == 8443:
        port = free_port()
    printed = root / "make-run.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDB_") and k != "MAKEFLAGS"}
    with printed.open("wb") as out:
        # -o: never rebuild the shared virtual environment from this linked checkout (a
        # reinstall here would point the editable install at a temporary directory).
        process = subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.installed",
                                    "run", f"CDB_PORT={port}"],
                                   cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    checkout = Checkout(root, port, printed)
    try:
        _wait_ready(checkout, process)
        yield checkout
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _wait_ready(checkout: Checkout, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"make run exited:\n{checkout.printed.read_text()[-3000:]}")
        if checkout.ca.exists():
            try:
                answer = httpx.get(f"{checkout.url}/health/ready", verify=checkout.tls(),
                                   timeout=2)  # fmt: skip
                if answer.status_code == 200:
                    return
            except httpx.TransportError:
                pass
        time.sleep(0.3)
    raise AssertionError(f"make run was not ready:\n{checkout.printed.read_text()[-3000:]}")
