"""While the registry is down, the probe's incident still reaches its subscribers: the probe
copies the subscriptions while the registry answers, and sends the signed notice itself."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from cdb_service.probe.config import ProbeConfig
from cdb_service.probe.runner import Prober
from cdb_service.probe.store import Store
from cdb_service.security.dev import DevPki, token_for
from cdb_service.settings import Settings
from tests.support.nginx import free_port
from tests.support.receivers import start_receiver
from tests.support.service_process import executable, service_env, stop
from tests.support.tls import client_context

LOOKUP = "/api/v1/resolve?country=DE&instrument=eio&competence=execute&postal_code=10115"


def _ready(port: int, ca: Path) -> bool:
    try:
        url = f"https://localhost:{port}/health/ready"
        return (
            ca.exists() and httpx.get(url, timeout=2, verify=client_context(ca)).status_code == 200
        )
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_the_probe_notifies_subscribers_of_its_incident_while_the_service_is_stopped(
    tmp_path: Path,
) -> None:
    receiver_dir = tmp_path / "receiver"
    receiver_dir.mkdir()
    receiver, server = start_receiver(receiver_dir)
    data_dir, port = tmp_path / "var", free_port()
    pki = data_dir / "pki"
    env = service_env(data_dir, port, CDB_WEBHOOK_ALLOWED_NETWORKS='["127.0.0.0/8"]')
    with (tmp_path / "serve.log").open("ab") as log:
        service = subprocess.Popen(
            [executable(), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    store = Store(tmp_path / "probe.sqlite3")
    try:
        deadline = time.monotonic() + 90
        while not _ready(port, pki / "ca.pem"):
            assert service.poll() is None and time.monotonic() < deadline, "the service"
            time.sleep(0.2)
        token = token_for(
            DevPki(pki), "operator", Settings(port=port).dev_issuer_url(), "cdb-api", "cdb_owner"
        )
        operator = client_context(
            pki / "ca.pem", pki / "client-operator.pem", pki / "client-operator-key.pem"
        )
        created = httpx.post(
            f"https://localhost:{port}/api/v1/subscriptions",
            verify=operator,
            timeout=10,
            headers={"Authorization": f"Bearer {token}"},
            json={"url": receiver.url, "events": ["incident.opened", "incident.closed"]},
        )
        assert created.status_code == 201, created.text
        receiver.secret = created.json()["secret"]

        config = ProbeConfig(
            target=f"https://localhost:{port}",
            store=store.path,
            ca=pki / "ca.pem",
            cert=pki / "client-operator.pem",
            key=pki / "client-operator-key.pem",
            token=token,
            incident_token=token,
            lookup=LOOKUP,
            interval_s=1,
            timeout_s=1,
            windows_every_s=0,
            notify=True,
            webhook_ca=receiver.ca_file,
            webhook_allowed_networks=("127.0.0.0/8",),
        )
        prober = Prober(config, store)
        assert prober.step().ok  # the registry answers: its subscriptions are copied

        stop(service)
        first, second = prober.step(), prober.step()  # two failures confirm the outage
        assert not first.ok and not second.ok
        [incident] = store.incidents()
        assert incident.ended_at is None

        [notice] = receiver.received
        assert notice.signature_ok and notice.status == 204
        event = notice.event
        assert event["type"] == "eu.judex.cdb.incident.opened"
        assert event["source"] == "/probe" and event["data"]["source"] == "probe"
        assert event["data"]["owner"] == "EC" and event["data"]["status"] == "open"
        # The id the registry gives the same incident's copy later: told once.
        assert event["id"] == notice.headers["webhook-id"]
        assert event["id"] == f"probe/{event['data']['ref']}/incident.opened"
    finally:
        stop(service)
        store.close()
        server.shutdown()
