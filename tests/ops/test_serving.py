"""The path `make run` takes, as a real process; readiness; request ids in JSON logs."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from cdb_service.app import create_app
from cdb_service.db import migrate
from cdb_service.settings import Settings, TlsMode
from tests.support.in_loop import app_client
from tests.support.service_process import executable
from tests.support.tls import client_context


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {"CDB_DATA_DIR": str(data_dir), "CDB_PORT": str(port), "CDB_PROFILE": "dev"}
    env.pop("CDB_DATABASE_URL", None)
    exe = executable()
    return subprocess.Popen(
        [exe, "serve"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def _wait_ready(
    port: int, process: subprocess.Popen[bytes], ca: Path, timeout: float = 90
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the service exited"
        if not ca.exists():  # the service writes its dev PKI first
            time.sleep(0.3)
            continue
        try:
            response = httpx.get(
                f"https://localhost:{port}/health/ready", timeout=2, verify=client_context(ca)
            )
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("not ready in time")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.mark.slow
def test_fresh_data_directory_is_migrated_seeded_and_served_then_reused(tmp_path: Path) -> None:
    data_dir, port, log = tmp_path / "var", _free_port(), tmp_path / "serve.log"
    process = _serve(data_dir, port, log)
    pki = data_dir / "pki"
    try:
        ready = _wait_ready(port, process, pki / "ca.pem")
        assert ready.headers["content-type"].startswith("application/health+json")
        body = ready.json()
        assert body["status"] == "pass"
        assert body["checks"]["database:migrations"][0]["observedValue"] == "head"
        assert body["checks"]["registry:revision"][0]["observedValue"] == 1
        assert (data_dir / "cdb.sqlite3").exists()

        # The dev issuer hands a certificate-bound token to a dev client over mutual TLS.
        tls = client_context(
            pki / "ca.pem", pki / "client-reader.pem", pki / "client-reader-key.pem"
        )
        with httpx.Client(base_url=f"https://localhost:{port}", verify=tls) as client:
            issued = client.post("/dev-issuer/token", data={"grant_type": "client_credentials"})
            assert issued.status_code == 200, issued.text
            token = issued.json()["access_token"]
            listed = client.get(
                "/api/v1/code-lists/instruments",
                headers={"X-Request-ID": "trace-42", "Authorization": f"Bearer {token}"},
            )
            # Without the token, the same client is refused with a problem and a challenge.
            refused = client.get("/api/v1/code-lists/instruments")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert listed.status_code == 200
        # The client's id comes back under its own name; the service's id is its own.
        assert listed.headers["x-client-request-id"] == "trace-42"
        assert re.fullmatch(r"[0-9a-f]{32}", listed.headers["x-request-id"])
        assert "eio" in {item["code"] for item in listed.json()["items"]}
    finally:
        _stop(process)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [e for e in lines if e.get("event") == "request"
              and e.get("client_request_id") == "trace-42"
              and e.get("request_id") == listed.headers["x-request-id"]]  # fmt: skip
    assert access and access[0]["status"] == 200
    assert any(e.get("event") == "seeded" for e in lines)

    # A second start reuses the data: no new seeding, the same revision.
    process = _serve(data_dir, port, tmp_path / "serve2.log")
    try:
        body = _wait_ready(port, process, pki / "ca.pem").json()
        assert body["checks"]["registry:revision"][0]["observedValue"] == 1
    finally:
        _stop(process)
    assert "seeded" not in (tmp_path / "serve2.log").read_text()


async def test_ready_fails_with_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"postgresql://postgres@127.0.0.1:{_free_port()}/nowhere",
        auto_migrate=False, auto_seed=False, data_dir=tmp_path,
    )  # fmt: skip
    async with app_client(create_app(settings)) as client:
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/health+json")
        assert response.json()["status"] == "fail"
        assert "not built yet" in response.json()["output"]  # no index, nothing saved
        write = await client.get("/health/ready/write")
        assert write.status_code == 503 and write.headers["retry-after"]
        live = await client.get("/health/live")
        assert live.status_code == 200


async def test_ready_fails_when_migrations_are_not_at_head(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", auto_migrate=False, auto_seed=False
    )
    await migrate.upgrade(settings)
    await migrate.downgrade(settings, "base")
    async with app_client(create_app(settings)) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["database:migrations"][0]["status"] == "fail"


async def test_errors_are_problem_details(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", auto_seed=False,
                        data_dir=tmp_path)  # fmt: skip
    async with app_client(create_app(settings)) as client:
        missing = await client.get("/no-such-route")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["status"] == 404


async def test_an_app_started_again_serves_the_settings_of_its_start(tmp_path: Path) -> None:
    """An app starts again on other settings of its shape (`app.shape_of`: the test suite
    starts one app per test), serving the database of the start; settings of another
    shape are refused at start, not half-served."""
    first = Settings(database_url=f"sqlite:///{tmp_path / 'a.sqlite3'}", auto_seed=False,
                     data_dir=tmp_path / "a")  # fmt: skip
    app = create_app(first)
    async with app_client(app) as client:
        assert (await client.get("/health/ready")).status_code == 200
    behind = first.model_copy(
        update={
            "database_url": f"sqlite:///{tmp_path / 'b.sqlite3'}",
            "data_dir": tmp_path / "b",
            "auto_migrate": False,
        }
    )
    await migrate.upgrade(behind)
    await migrate.downgrade(behind, "base")
    app.state["settings"] = behind
    async with app_client(app) as client:
        checks = (await client.get("/health/ready")).json()["checks"]
    assert checks["database:migrations"][0]["status"] == "fail"  # b's, not a's
    app.state["settings"] = first.model_copy(update={"tls_mode": TlsMode.PROXY})
    with pytest.raises(RuntimeError, match="another shape"):
        async with app_client(app):
            pass
