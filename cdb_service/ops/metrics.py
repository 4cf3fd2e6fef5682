"""`GET /metrics`: the Prometheus text exposition, for the addresses allowed to scrape.

No token: a scraper holds no client certificate or OIDC client. Instead the peer
address must be in `CDB_METRICS_ALLOWED` (loopback by default; in Kubernetes, the
monitoring namespace's pod network). Through nginx every request comes from the
proxy's address, so the deployed nginx configuration refuses `/metrics` itself and
Prometheus scrapes each instance's own port.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency

from cdb_service import metrics
from cdb_service.kernel.problems import plain
from cdb_service.security.certificates import ProxyAllowList
from cdb_service.security.x509 import certificate_facts
from cdb_service.settings import Settings, TlsMode
from cdb_service.web.docs import problem_answers

EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"


class MetricsController(Controller):
    tags = ["health"]  # noqa: RUF012

    @get(
        "/metrics",
        summary="Prometheus metrics of every worker (allowed addresses only)",
        description="Text exposition format 0.0.4: requests by route template and status "
        "class, lookup-index revision and freshness, feed lag, pool use, database errors, "
        "write-lock waits, extracts and long polls in flight, refusals, audit events, "
        "signing-key age. 403 from any address outside CDB_METRICS_ALLOWED.",
        # Outside the gate: the perimeter's bounds and the address list only.
        responses=problem_answers(400, 403, 414),
        media_type=EXPOSITION,
    )
    async def metrics(self, request: Request[Any, Any, Any],
                      settings: NamedDependency[Settings]) -> Response[bytes]:  # fmt: skip
        peer = request.client.host if request.client else ""
        if peer not in _allow_list(settings):
            detail = (f"{peer or 'this address'} may not read /metrics; add it to "
                      "CDB_METRICS_ALLOWED, or scrape from an address in it")  # fmt: skip
            raise plain(403, detail)
        return Response(metrics.exposition(), media_type=EXPOSITION)


def record_server_certificate(settings: Settings) -> None:
    """In direct mode the service presents its own certificate: its expiry is an alert.
    (Behind nginx, the proxy's certificate is watched where nginx runs.)"""
    if settings.tls_mode is TlsMode.DIRECT and settings.tls_cert_file is not None:
        pem = settings.tls_cert_file.read_bytes()
        facts = certificate_facts(x509.load_pem_x509_certificate(pem))
        metrics.SERVER_CERTIFICATE_NOT_AFTER.set(facts.not_after.timestamp())


_lists: dict[tuple[str, ...], ProxyAllowList] = {}


def _allow_list(settings: Settings) -> ProxyAllowList:
    key = tuple(settings.metrics_allowed)
    if key not in _lists:
        _lists[key] = ProxyAllowList(key)
    return _lists[key]
