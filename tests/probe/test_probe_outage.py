"""The probe against a real `cdb-service serve` over TLS: a real outage, kill -9, the report."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from cdb_service.probe.config import ProbeConfig
from cdb_service.probe.runner import Prober
from cdb_service.probe.store import Store
from cdb_service.security.dev import DevPki, token_for
from cdb_service.security.pki import make_ca
from cdb_service.settings import Settings
from tests.support.nginx import free_port
from tests.support.service_process import executable, service_env, stop
from tests.support.tls import client_context

pytestmark = pytest.mark.serial  # measures time under load: runs alone

INTERVAL = 0.5
POSTAL_CODE = "10115"  # seed/countries/DE.json, region 0 (Berlin)
LOOKUP = f"/api/v1/resolve?country=DE&instrument=eio&competence=execute&postal_code={POSTAL_CODE}"


def _serve(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([executable(), "serve"], env=service_env(data_dir, port),
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except sqlite3.OperationalError:  # the probe's store exists before its tables do
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _ready(port: int, ca: Path) -> bool:
    if not ca.exists():
        return False
    try:
        url = f"https://localhost:{port}/health/ready"
        return httpx.get(url, timeout=2, verify=client_context(ca)).status_code == 200
    except httpx.TransportError:
        return False


def _rows(store: Path, sql: str) -> list[Any]:
    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        return list(db.execute(sql).fetchall())


def _probe(root: Path, port: int, store: Path, status_port: int) -> subprocess.Popen[bytes]:
    """The probe as the operator client: its token (bound to that certificate) posts incidents."""
    pki = root / "var" / "pki"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDB_")}
    with (root / "probe.log").open("ab") as out:
        return subprocess.Popen(
            [executable(), "probe", "--target", f"https://localhost:{port}",
             "--ca", str(pki / "ca.pem"), "--cert", str(pki / "client-operator.pem"),
             "--key", str(pki / "client-operator-key.pem"), "--token-file", str(root / "token"),
             "--incident-token-file", str(root / "token"),
             "--store", str(store), "--interval", str(INTERVAL), "--timeout", str(INTERVAL),
             "--windows-every", "1", "--lookup", LOOKUP, "--listen", f"127.0.0.1:{status_port}"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.mark.slow
def test_a_real_outage_is_measured_opened_closed_reported_and_survives_kill_9(
    tmp_path: Path,
) -> None:
    data_dir, port, log = tmp_path / "var", free_port(), tmp_path / "serve.log"
    ca = data_dir / "pki" / "ca.pem"
    store, status_port = tmp_path / "probe" / "probe.sqlite3", free_port()
    service = _serve(data_dir, port, log)
    probe: subprocess.Popen[bytes] | None = None
    try:
        _wait(lambda: _ready(port, ca), 90, "the service")
        token = token_for(DevPki(data_dir / "pki"), "operator",
                          Settings(port=port).dev_issuer_url(), "cdb-api", "cdb_owner")  # fmt: skip
        (tmp_path / "token").write_text(token)
        probe = _probe(tmp_path, port, store, status_port)
        _wait(lambda: store.exists() and len(_rows(store, "SELECT 1 FROM samples WHERE ok = 1"))
              >= 6, 30, "good samples")  # fmt: skip
        assert _rows(store, "SELECT count(*) FROM samples WHERE ok = 0") == [(0,)], _rows(
            store, "SELECT error, detail FROM samples WHERE ok = 0"
        )

        # The outage: stop the service, keep it down for N seconds, start it again.
        stopped_at = time.time()
        stop(service)
        time.sleep(3)
        service = _serve(data_dir, port, log)
        _wait(lambda: _ready(port, ca), 90, "the service again")
        back_at = time.time()
        real_downtime = back_at - stopped_at
        _wait(lambda: _rows(store, "SELECT count(*) FROM incidents WHERE ended_at IS NOT NULL")
              == [(1,)], 20, "the incident to close")  # fmt: skip
        started, detected, ended, error = _rows(
            store, "SELECT started_at, detected_at, ended_at, error FROM incidents"
        )[0]
        assert error in ("connect", "transport", "timeout", "http-5xx", "health-fail")
        # Counted from the first failed sample, ended at the first good one: N s ± one interval.
        assert started - INTERVAL <= stopped_at + 0.2
        measured = ended - started
        assert abs(measured - real_downtime) <= INTERVAL + 0.3, (measured, real_downtime)
        assert started < detected < ended  # confirmed by the second failure, not the first
        # The service's copy (best effort: posted once the service answers again).
        _wait(lambda: [c["status"] for c in _service_incidents(data_dir, port, token)]
              == ["closed"], 20, "the service's copy")  # fmt: skip
        copy = _service_incidents(data_dir, port, token)
        assert _rows(store, "SELECT remote_id FROM incidents") == [(copy[0]["id"],)]
        assert [(c["source"], c["status"], c["owner"]) for c in copy] == [("probe", "closed", "EC")]
        assert _instant(copy[0]["started_at"]) == pytest.approx(started, abs=1e-3)
        assert _instant(copy[0]["detected_at"]) == pytest.approx(detected, abs=1e-3)
        assert _instant(copy[0]["ended_at"]) == pytest.approx(ended, abs=1e-3)
        failures = _rows(store, "SELECT count(*) FROM samples WHERE ok = 0")[0][0]
        assert failures >= 2

        # kill -9 the probe: nothing it recorded is lost, the store is intact and reusable.
        _wait(lambda: len(_rows(store, "SELECT 1 FROM samples")) > failures + 4, 20, "more samples")
        before = _rows(store, "SELECT count(*) FROM samples")[0][0]
        os.kill(probe.pid, signal.SIGKILL)
        probe.wait(timeout=10)
        with closing(sqlite3.connect(store)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            after = db.execute("SELECT count(*) FROM samples").fetchone()[0]
            assert after >= before
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        probe = _probe(tmp_path, port, store, status_port)
        _wait(lambda: _rows(store, "SELECT count(*) FROM samples")[0][0] > after + 2, 20,
              "the restarted probe")  # fmt: skip

        # The report shows the outage (JSON, table, CSV, metrics) and the status page answers,
        # once the restarted probe's latest sample is good (on a loaded machine one of its
        # first may time out, and the state is then rightly "suspect").
        _wait(lambda: json.loads(_report(store, "json"))["state"] == "up", 20, "state up")
        report = _report(store, "json")
        picture = json.loads(report)
        assert len(picture["incidents"]) == 1
        incident = picture["incidents"][0]
        assert abs(incident["duration_s"] - real_downtime) <= INTERVAL + 0.3
        year = picture["periods"][f"year_{dt.datetime.now(dt.UTC).year}"]
        assert year["down_s"] == pytest.approx(incident["duration_s"], abs=0.01)
        assert year["availability"] < 1
        assert picture["state"] == "up"
        table = _report(store, "table")
        assert "incident" in table and f"{incident['duration_s']:.1f}" in table
        assert "UP" in table
        csv_text = _report(store, "csv")
        assert csv_text.splitlines()[0].startswith("date,availability")
        metrics = _report(store, "prometheus")
        assert 'cdb_probe_availability_ratio{period="rolling_30d"}' in metrics
        assert "cdb_probe_up 1.0" in metrics
        page = httpx.get(f"http://127.0.0.1:{status_port}/status", timeout=10)
        assert page.status_code == 200 and page.text.count('class="day"') == 90
        assert "CDB is UP" in page.text
    finally:
        if probe is not None:
            stop(probe)
        stop(service)


def _service_incidents(data_dir: Path, port: int, token: str) -> list[dict[str, Any]]:
    pki = data_dir / "pki"
    context = client_context(pki / "ca.pem", pki / "client-operator.pem",
                             pki / "client-operator-key.pem")  # fmt: skip
    response = httpx.get(f"https://localhost:{port}/api/v1/incidents", params={"source": "probe"},
                         headers={"Authorization": f"Bearer {token}"}, verify=context,
                         timeout=10)  # fmt: skip
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def _instant(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _report(store: Path, fmt: str) -> str:
    done = subprocess.run([executable(), "probe", "report", "--store", str(store), "--format", fmt],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_tls_failures_and_wrong_answers_are_down(tmp_path: Path) -> None:
    data_dir, port, log = tmp_path / "var", free_port(), tmp_path / "serve.log"
    pki = data_dir / "pki"
    service = _serve(data_dir, port, log)
    try:
        _wait(lambda: _ready(port, pki / "ca.pem"), 90, "the service")
        token = token_for(DevPki(pki), "reader", Settings(port=port).dev_issuer_url(),
                          "cdb-api", "cdb_owner")  # fmt: skip
        other = tmp_path / "other-ca.pem"
        other.write_text(make_ca("not the service's CA", organisation="elsewhere").cert_pem)

        def sample(**changes: Any) -> Any:
            config = ProbeConfig(
                target=f"https://localhost:{port}", store=tmp_path / "p.sqlite3",
                ca=pki / "ca.pem", cert=pki / "client-reader.pem",
                key=pki / "client-reader-key.pem", token=token, lookup=LOOKUP, timeout_s=5,
            )  # fmt: skip
            for name, value in changes.items():
                setattr(config, name, value)
            with closing(Store(config.store)) as store:
                return Prober(config, store).take_sample()

        good = sample()
        assert good.ok, good.detail
        assert sample(ca=other).error == "tls"  # bad chain
        assert sample(target=f"https://localhost:{free_port()}").error == "connect"
        nothing = LOOKUP.replace(POSTAL_CODE, "99999").replace("country=DE", "country=LU")
        assert not sample(lookup=nothing).ok  # no match for the known-good lookup
        assert sample(token=None).error == "lookup-http-401"
        slow = sample(latency_objective_ms=0.001)
        assert slow.ok and slow.slow  # over the latency objective: not down
    finally:
        stop(service)
