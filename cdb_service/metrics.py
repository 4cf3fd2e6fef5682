"""The Prometheus instruments every layer records into, and how they are read out.

Declared once here, at the bottom of the import layers, so that the database layer
(pool, write lock), the lookup index, the distribution endpoints and the web
middleware record into the same names; `ops/metrics.py` serves them.

Several workers (`serve --workers N`) are several processes: prometheus-client's
multiprocess mode keeps each worker's values in files under
`PROMETHEUS_MULTIPROC_DIR` and sums (or takes the min / max of) them at scrape
time, so whichever worker answers `/metrics` reports the whole service. The mode is
chosen when prometheus-client is first imported, as the library itself does:
`serve` sets the variable before anything imports it (`ops/supervisor.share_metrics`),
and the workers, forks of that process, inherit the mode.

Gauges count live workers only (`live*` modes): a worker that stopped takes its
last values with it (`worker_exited`, or `process_gone` from the supervisor when it
was killed), so a restarted worker's stale index revision does not linger in the
minimum.

Ages are exported as timestamps (`..._timestamp_seconds`) rather than seconds:
a worker records when something happened, and `time() - metric` in PromQL is the
age at any scrape, whichever worker answers it.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))

# Latency buckets around the lookup objective (the probe's is 1 s): fine below 100 ms.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUEST_SECONDS = Histogram(
    "cdb_http_request_duration_seconds",
    "HTTP requests by route template, method and status class; _count is the request count",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
REFUSED = Counter(
    "cdb_http_refused_requests_total",
    "Requests refused for the caller's credentials or rate (401, 403, 429)",
    ["status"],
)
INDEX_REVISION = Gauge(
    "cdb_lookup_index_revision",
    "Registry revision the lookup index answers from (lowest across workers)",
    multiprocess_mode="livemin",
)
LOOKUP_SNAPSHOTS = Counter(
    "cdb_lookup_snapshots_total",
    "Lookup snapshot files: built (by this host's builder), mapped (a worker answers from "
    "one; it did not build the index itself), refused (damaged, truncated or of another "
    "release: built again)",
    ["outcome"],
)
INDEX_SYNCED = Gauge(
    "cdb_lookup_index_synced_timestamp_seconds",
    "When the lookup index last caught up with the database (oldest across workers)",
    multiprocess_mode="livemin",
)
HEAD_REVISION = Gauge(
    "cdb_registry_head_revision",
    "The database's head revision as last seen by a worker; minus the index revision "
    "it is the feed lag",
    multiprocess_mode="livemax",
)
GAZETTEER_LOADED = Gauge(
    "cdb_gazetteer_loaded_timestamp_seconds",
    "When the newest gazetteer load the index holds was made",
    multiprocess_mode="livemin",
)
POOL_CONNECTIONS = Gauge(
    "cdb_db_pool_connections",
    "Database connections held by the pools, by state (in_use, open)",
    ["state"],
    multiprocess_mode="livesum",
)
DB_ERRORS = Counter(
    "cdb_db_errors_total",
    "Database errors seen by the service, by exception class",
    ["error"],
)
LOCK_WAIT_SECONDS = Histogram(
    "cdb_registry_lock_wait_seconds",
    "Time a write waited for the registry-wide write lock",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
LAG_FINE_S = (0.001, 0.002, 0.003, 0.004, 0.005)
EVENT_LOOP_LAG = Histogram(
    "cdb_event_loop_lag_seconds",
    "How late a worker's event loop ran a timer (sampled every 0.1 s): time spent on work "
    "that held the loop, which every request in that worker waited out",
    # Fine around the 5 ms a worker is meant to stay under, so that a p99 of 6 ms is not
    # read as 10.
    buckets=(*LAG_FINE_S, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
IN_FLIGHT = Gauge(
    "cdb_in_flight",
    "Long-running requests in flight, by kind (extract, long_poll)",
    ["kind"],
    multiprocess_mode="livesum",
)
AUDIT_EVENTS = Counter(
    "cdb_audit_events_total",
    "Audit events written, by outcome",
    ["outcome"],
)
READY = Gauge(
    "cdb_ready",
    "1 when the latest readiness check passed (or warned), 0 when it failed",
    multiprocess_mode="livemin",
)
CERTIFICATES_EXPIRED = Gauge(
    "cdb_routing_party_certificates_expired",
    "Routing-party certificates in the registry whose not-after has passed",
    multiprocess_mode="livemax",
)
CERTIFICATE_NEXT_EXPIRY = Gauge(
    "cdb_routing_party_certificate_next_expiry_timestamp_seconds",
    "The soonest not-after of a routing-party certificate still valid",
    multiprocess_mode="livemin",
)
SERVER_CERTIFICATE_NOT_AFTER = Gauge(
    "cdb_server_certificate_not_after_timestamp_seconds",
    "When the TLS server certificate the service presents (direct mode) expires",
    multiprocess_mode="livemin",
)
QUALITY_FINDINGS = Gauge(
    "cdb_quality_findings",
    "Findings of an owner's latest data-quality report (GET /quality, cdb-service quality)",
    ["owner", "severity"],
    multiprocess_mode="livemax",
)
ROLLOUT_UNCONFIRMED = Gauge(
    "cdb_rollout_unconfirmed_access_points",
    "Access points (targets) that have not acknowledged the package carrying a pending "
    "switch of a routing party's certificate into use (distribution/rollouts.py)",
    ["owner", "party", "use", "certificate"],
    multiprocess_mode="livemax",
)
ROLLOUT_ALERT_FROM = Gauge(
    "cdb_rollout_alert_from_timestamp_seconds",
    "When unconfirmed access points of that switch become an alert: its use_from less "
    "CDB_ROLLOUT_ALERT_WORKING_DAYS working days (Brussels)",
    ["owner", "party", "use", "certificate"],
    multiprocess_mode="livemax",
)
SIGNING_KEY_CREATED = Gauge(
    "cdb_signing_key_created_timestamp_seconds",
    "When the current extract-signing key was made (absent when the key file does not say)",
    multiprocess_mode="livemax",
)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def worker_exited() -> None:
    """A worker's live gauges (pool, in flight) stop counting when it stops."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def process_gone(pid: int) -> None:
    """A worker that was killed had no time to say `worker_exited`: its supervisor does."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def exposition() -> bytes:
    """The text exposition of every worker (multiprocess) or of this process."""
    if not MULTIPROCESS:
        return generate_latest(PROCESS_REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
