"""`/metrics` of a real two-worker service behind the deployed nginx configuration.

`cdb-service serve --workers 2` (proxy mode, migrated and seeded beforehand, as in
production) behind nginx; a short concurrent load of resolves through nginx over
mutual TLS (and straight at the app, as nginx sends them); then `/metrics`, scraped
at the service's own port, must parse with prometheus-client's parser and count
exactly the resolves sent, whichever worker answers the scrape and although both
workers served them.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from cdb_service.security.dev import DevPki, token_for
from cdb_service.settings import Settings
from tests.support.nginx import Nginx, free_port, requires_nginx, running_nginx
from tests.support.service_process import executable, service_env, stop
from tests.support.tls import client_context

pytestmark = [requires_nginx, pytest.mark.slow]

RESOLVE = "/api/v1/resolve"
QUERY = {"country": "DE", "instrument": "eio", "competence": "execute", "postal_code": "10115"}
SENT = 60
ROUNDS = 10


@dataclass
class TwoWorkers:
    port: int
    data_dir: Path
    pki: DevPki
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoWorkers]:
    root = tmp_path_factory.mktemp("metrics")
    data_dir, port, log = root / "var", free_port(), root / "serve.log"
    env = service_env(data_dir, port, CDB_TLS_MODE="proxy",
                      CDB_TRUSTED_PROXIES='["127.0.0.1/32"]', CDB_AUTO_MIGRATE="false",
                      CDB_AUTO_SEED="false")  # fmt: skip
    for step in (["migrate"], ["seed"]):
        subprocess.run([executable(), *step], env=env, check=True, capture_output=True)
    with log.open("wb") as out:
        process = subprocess.Popen([executable(), "serve", "--workers", "2"], env=env,
                                   stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    service = TwoWorkers(port, data_dir, DevPki(data_dir / "pki"), log)
    try:
        _wait_ready(service, process)
        yield service
    finally:
        stop(process)


def _wait_ready(service: TwoWorkers, process: subprocess.Popen[bytes]) -> None:
    import time

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, service.log.read_text()[-3000:]
        try:
            if httpx.get(f"{service.base_url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready:\n{service.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def nginx(service: TwoWorkers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    pki = service.pki
    with running_nginx(tmp_path_factory.mktemp("nginx"), upstream=f"127.0.0.1:{service.port}",
                       cert=pki.server_cert, key=pki.server_key) as running:  # fmt: skip
        yield running


def _resolve_count(exposition: str) -> float:
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    histogram = families.get("cdb_http_request_duration_seconds")
    if histogram is None:  # a process that served no request (the supervisor)
        return 0.0
    return sum(
        s.value
        for s in histogram.samples
        if s.name.endswith("_count") and s.labels["route"] == RESOLVE
        and s.labels["status"] == "2xx"
    )  # fmt: skip


def _shares(directory: Path) -> list[float]:
    """Resolves counted by each process, from its own histogram file alone."""
    shares = []
    for path in sorted(directory.glob("histogram_*.db")):
        alone = directory.parent / f"one-{path.stem}"
        alone.mkdir(exist_ok=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        shares.append(_resolve_count(generate_latest(registry).decode()))
    return shares


def test_metrics_count_every_resolve_sent_across_two_workers(
    service: TwoWorkers, nginx: Nginx
) -> None:
    pki = service.pki
    token = token_for(pki, "reader", Settings(port=service.port).dev_issuer_url(), "cdb-api",
                      "cdb_owner")  # fmt: skip
    tls = client_context(pki.ca, pki.client_cert("reader"), pki.client_key("reader"))

    certificate = quote(pki.client_cert("reader").read_text(), safe="")
    headers = {"Authorization": f"Bearer {token}", "Connection": "close",
               "X-SSL-Client-Cert": certificate}  # fmt: skip

    def resolve(number: int) -> int:
        # Every other call through nginx over mutual TLS; the rest straight at the app
        # as nginx would send it, on a fresh connection each, which either worker may
        # accept (nginx keeps its upstream connections, so it alone may feed one worker).
        if number % 2:
            with httpx.Client(base_url=nginx.base_url, verify=tls, timeout=10) as client:
                return client.get(RESOLVE, params=QUERY, headers=headers).status_code
        url = f"{service.base_url}{RESOLVE}"
        return httpx.get(url, params=QUERY, headers=headers, timeout=10).status_code

    # A busy worker accepts whatever is queued, so one round may land on one worker
    # alone: send rounds until each worker has served a share (its own file says).
    sent, shares = 0, [0.0]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(ROUNDS):
            statuses = list(pool.map(resolve, range(SENT)))
            assert statuses == [200] * SENT
            sent += SENT
            shares = _shares(service.data_dir / "metrics")
            if len([s for s in shares if s > 0]) == 2:
                break
    assert sum(shares) == sent
    assert len([s for s in shares if s > 0]) == 2, f"one worker served everything: {shares}"

    # Whichever worker answers the scrape, it reports the whole service.
    for _ in range(6):
        scraped = httpx.get(
            f"{service.base_url}/metrics", timeout=10, headers={"Connection": "close"}
        )
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        assert _resolve_count(scraped.text) == sent
    names = {f.name for f in text_string_to_metric_families(scraped.text)}
    assert {"cdb_lookup_index_revision", "cdb_lookup_index_synced_timestamp_seconds",
            "cdb_registry_head_revision", "cdb_db_pool_connections",
            "cdb_registry_lock_wait_seconds",
            "cdb_signing_key_created_timestamp_seconds"} <= names  # fmt: skip


def test_metrics_refused_to_other_addresses_and_through_the_proxy(
    service: TwoWorkers, nginx: Nginx
) -> None:
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=service.base_url, transport=transport, timeout=10) as other:
        refused = other.get("/metrics")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "CDB_METRICS_ALLOWED" in refused.json()["detail"]
    via_proxy = httpx.get(f"{nginx.base_url}/metrics", verify=client_context(service.pki.ca))
    assert via_proxy.status_code == 403
    assert via_proxy.headers["content-type"] == "application/problem+json"


async def test_the_server_certificate_expiry_is_exported_in_direct_mode(tmp_path: Path) -> None:
    from cryptography import x509

    from cdb_service import metrics
    from cdb_service.app import create_app
    from tests.support.in_loop import app_client

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", auto_seed=False,
                        data_dir=tmp_path)  # fmt: skip
    async with app_client(create_app(settings)):
        exposition = metrics.exposition().decode()
    served = x509.load_pem_x509_certificate(DevPki(tmp_path / "pki").server_cert.read_bytes())
    (family,) = [f for f in text_string_to_metric_families(exposition)
                 if f.name == "cdb_server_certificate_not_after_timestamp_seconds"]  # fmt: skip
    assert family.samples[0].value == served.not_valid_after_utc.timestamp()
