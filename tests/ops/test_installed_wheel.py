"""The release as an operator installs it: the built wheel, no extras, no checkout.

The wheel and the sdist are built from this checkout (`python -m build`, as `make dist`
does: the wheel is built from the unpacked sdist, so both must carry everything), then
`deploy/image/install.sh` -- the script the image runs -- installs the wheel into a
fresh virtual environment. Every command then runs from a scratch folder outside the
checkout, with an environment holding no PYTHONPATH, so nothing can come from here.
Then the runbook (docs/operations.md): create the signing keys, migrate a fresh
PostgreSQL database, load the seed, serve in the production profile behind the shipped
nginx (deploy/nginx), resolve, extract, and verify the extract with `verify-extract`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tarfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import _pg_admin, _pg_url
from tests.support.issuer import Issuer
from tests.support.nginx import free_port, requires_nginx, running_nginx, stop
from tests.support.service_process import Pki, make_pki

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "deploy" / "image" / "install.sh"


@dataclass
class Installed:
    prefix: Path
    wheel: Path
    sdist: Path
    seconds: dict[str, float]

    def command(self, name: str = "cdb-service") -> str:
        return str(self.prefix / "bin" / name)


def _clean_env(**variables: str) -> dict[str, str]:
    """No CDB_*, no PYTHON* from the caller: the installed environment stands alone."""
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT"}
    return {k: v for k, v in os.environ.items() if k in keep} | variables


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("release")
    seconds: dict[str, float] = {}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(root / "dist"),
                    str(ROOT)], check=True, capture_output=True, cwd=root)  # fmt: skip
    seconds["build"] = time.monotonic() - started
    (wheel,) = (root / "dist").glob("cdb_service-*.whl")
    (sdist,) = (root / "dist").glob("cdb_service-*.tar.gz")
    started = time.monotonic()
    script = ["sh", str(INSTALL), str(wheel), str(root / "venv")]
    done = subprocess.run(script, cwd=root, env=_clean_env(), capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    seconds["install"] = time.monotonic() - started
    return Installed(root / "venv", wheel, sdist, seconds)


def test_the_wheel_and_the_sdist_carry_every_file_the_package_reads(installed: Installed) -> None:
    in_wheel = set(zipfile.ZipFile(installed.wheel).namelist())
    shipped = {
        "migrations": "cdb_service/_migrations",
        "seed": "cdb_service/_seed",
        "cdb_service": "cdb_service",
    }
    for folder, inside in shipped.items():
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                name = f"{inside}/{path.relative_to(ROOT / folder).as_posix()}"
                assert name in in_wheel, f"{name} is not in {installed.wheel.name}"
    # The console's catalogues, compiled in the build (setup.py), beside their sources.
    for language in ("en", "de", "fr"):
        assert f"cdb_service/console/locale/{language}/LC_MESSAGES/messages.mo" in in_wheel
    with tarfile.open(installed.sdist) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {
        "migrations/env.py",
        "seed/holidays/eu-institutions.json",
        "setup.py",
        "deploy/image/install.sh",
        "deploy/nginx/cdb-service.conf",
        "alembic.ini",
    } <= names
    # Installed, the package finds them inside itself, never in a checkout.
    found = subprocess.run(
        [installed.command("python"), "-c",
         "from cdb_service.kernel import resources, calendar; "
         "print(resources.migrations_dir()); print(calendar.HOLIDAYS_FILE)"],
        env=_clean_env(), cwd=installed.prefix, capture_output=True, text=True, check=True,
    )  # fmt: skip
    for line in found.stdout.splitlines():
        assert line.startswith(str(installed.prefix / "lib")), found.stdout
    # Installed, the console speaks German from the compiled catalogue.
    german = subprocess.run(
        [installed.command("python"), "-c",
         "from cdb_service.console import i18n; i18n.speaking('de'); "
         "print(i18n.gettext('Authorities'), i18n.gettext('Postal code'))"],
        env=_clean_env(), cwd=installed.prefix, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert german.stdout.split() == ["Behörden", "Postleitzahl"], german.stdout + german.stderr
    pip_list = [installed.command("python"), "-m", "pip", "list", "--format=json"]
    extras = subprocess.run(pip_list, env=_clean_env(), capture_output=True, text=True, check=True)
    packages = {p["name"].lower() for p in json.loads(extras.stdout)}
    assert "lxml" in packages and "pytest" not in packages
    # Every module imports with the runtime dependencies alone (no dev extra); the
    # migrations' env.py only runs inside alembic (`cdb-service migrate`, below).
    every = ("import importlib, pkgutil, cdb_service\n"
             "for m in pkgutil.walk_packages(cdb_service.__path__, 'cdb_service.'):\n"
             "    if not m.name.startswith('cdb_service._migrations.'):\n"
             "        importlib.import_module(m.name)")  # fmt: skip
    imported = subprocess.run([installed.command("python"), "-c", every], env=_clean_env(),
                              cwd=installed.prefix, capture_output=True, text=True,
                              check=False)  # fmt: skip
    assert imported.returncode == 0, imported.stderr[-2000:]


@pytest.fixture(scope="module")
def fresh_database() -> Iterator[str]:
    """An empty PostgreSQL database: the installed `cdb-service migrate` makes its schema."""
    name = f"cdb_install_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_url(name)
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _run(installed: Installed, args: list[str], env: dict[str, str], cwd: Path,
         ok: int = 0) -> subprocess.CompletedProcess[str]:  # fmt: skip
    done = subprocess.run([installed.command(), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == ok, f"cdb-service {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


def _wait_ready(installed: Installed, env: dict[str, str], process: subprocess.Popen[bytes],
                log: Path) -> None:  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the service exited:\n{log.read_text()[-4000:]}")
        check = subprocess.run([installed.command("cdb-healthcheck"), "ready"], env=env,
                               capture_output=True, check=False)  # fmt: skip
        if check.returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError(f"the service was not ready in time:\n{log.read_text()[-4000:]}")


@requires_nginx
def test_the_runbook_runs_from_the_installed_wheel(
    installed: Installed, fresh_database: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    work = tmp_path / "operator"
    (work / "data").mkdir(parents=True)
    pki: Pki = make_pki(tmp_path / "pki", ("reader",))
    keys = work / "signing-keys.json"
    port = free_port()
    with Issuer(pki.server_cert, pki.server_key).running() as issuer:
        env = _clean_env(
            CDB_PROFILE="prod", CDB_DATA_DIR=str(work / "data"), CDB_DATABASE_URL=fresh_database,
            CDB_SIGNING_KEYS_FILE=str(keys), CDB_TLS_MODE="proxy", CDB_HOST="127.0.0.1",
            CDB_PORT=str(port), CDB_OIDC_ISSUER=issuer.url, CDB_OIDC_CA_FILE=str(pki.ca),
            CDB_CLIENT_CA_FILES=json.dumps([str(pki.ca)]), CDB_AUTO_MIGRATE="false",
            CDB_LOG_LEVEL="WARNING", CDB_PUBLIC_URL="https://cdb.example.eu",
        )  # fmt: skip
        # The runbook's first command makes the key set; the second run rotates it.
        first = _run(installed, ["rotate-signing-key"], env, work)
        assert json.loads(first.stdout)["created"] is True and keys.exists()
        assert "created" in first.stderr
        _run(installed, ["migrate"], env, work)
        _run(installed, ["seed"], env, work)
        log = work / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen([installed.command(), "serve"], env=env, cwd=work,
                                       stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            _wait_ready(installed, env, process, log)
            live = subprocess.run([installed.command("cdb-healthcheck"), "live"], env=env,
                                  capture_output=True, check=False)  # fmt: skip
            assert live.returncode == 0
            with running_nginx(tmp_path / "nginx", upstream=f"unix:{work / 'data' / 'cdb.sock'}",
                               cert=pki.server_cert, key=pki.server_key) as nginx:  # fmt: skip
                token = issuer.token("reader", "cdb.read", thumbprint=pki.thumbprint("reader"))
                with httpx.Client(base_url=nginx.base_url, verify=pki.context("reader"),
                                  headers={"Authorization": f"Bearer {token}"},
                                  timeout=30) as client:  # fmt: skip
                    resolved = client.get("/api/v1/resolve", params={
                        "country": "DE", "instrument": "eio", "competence": "execute",
                        "postal_code": "10115"})  # fmt: skip
                    assert resolved.status_code == 200, resolved.text
                    assert resolved.json()["matches"], resolved.text
                    extract = work / "extract.ndjson"
                    with client.stream("GET", "/api/v1/extract") as answer:
                        assert answer.status_code == 200
                        with extract.open("wb") as saved:
                            for chunk in answer.iter_bytes():
                                saved.write(chunk)
                jwks = f"{nginx.base_url}/.well-known/jwks.json"
                verified = _run(installed, ["verify-extract", str(extract), "--jwks", jwks,
                                            "--cacert", str(pki.ca)], env, work)  # fmt: skip
                assert json.loads(verified.stdout)["entries"] > 100, verified.stdout
        finally:
            stop(process)
        # A second run of the first command rotates: two keys listed, a new current one.
        second = json.loads(_run(installed, ["rotate-signing-key"], env, work).stdout)
        assert second["created"] is False and len(second["listed"]) == 2
    installed.seconds["runbook"] = time.monotonic() - started
    print(f"\ninstall test seconds: {installed.seconds}")


def test_the_install_script_refuses_to_run_without_its_arguments(tmp_path: Path) -> None:
    done = subprocess.run(["sh", str(INSTALL)], capture_output=True, text=True, check=False,
                          cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "usage" in done.stderr
