"""One typed settings object, read from `CDB_*` environment variables."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cdb_service.settings import production
from cdb_service.settings.sections import ConsoleSettings, EdgeSettings, NotificationSettings

# DESIGN.md's promise: a retired API version is announced at least this long before it goes.
MIN_DEPRECATION_NOTICE = dt.timedelta(days=365)


class Profile(StrEnum):
    DEV = "dev"
    PROD = "prod"


class TlsMode(StrEnum):
    DIRECT = "direct"
    PROXY = "proxy"


class ApiDeprecation(BaseModel):
    """A retired API version's announcement (RFC 9745 `Deprecation`, RFC 8594 `Sunset`)."""

    deprecated_at: AwareDatetime
    sunset_at: AwareDatetime
    successor: str = Field(min_length=1, description="the successor version's URL or path")
    info: str | None = Field(default=None, description="a page that explains the change")

    @model_validator(mode="after")
    def _notice(self) -> ApiDeprecation:
        if self.sunset_at - self.deprecated_at < MIN_DEPRECATION_NOTICE:
            raise ValueError(
                "sunset_at must be at least 12 months after deprecated_at (DESIGN.md promises "
                "clients a year's notice)"
            )
        return self


class Settings(ConsoleSettings, EdgeSettings, NotificationSettings, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDB_", extra="ignore")

    profile: Profile = Profile.DEV
    data_dir: Path = Path("var")
    # Empty means the embedded default: a SQLite file under `data_dir`.
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=1, le=65535)
    log_level: str = "INFO"
    # Where the uptime probe publishes its status page; the landing page links to it.
    status_page_url: str = ""
    # Apply migrations and load the seed data on start (dev convenience; off in prod).
    auto_migrate: bool | None = None
    auto_seed: bool | None = None
    db_pool_size: int = Field(default=10, ge=1)
    # Bounded waits on the database (both drivers); a wait that runs out is a 503 problem.
    # Connect: opening a connection, and waiting for a free one in the pool.
    db_connect_timeout_s: float = Field(default=5.0, gt=0)
    # One host of a multi-host URL: how long a host that does not answer (hung, partitioned)
    # is waited for before the next is tried, and a pooled connection's check at checkout.
    db_host_timeout_s: float = Field(default=2.0, gt=0)
    # One statement (asyncpg's command timeout client-side, statement_timeout server-side;
    # an interrupt on SQLite): also what a silently lost connection costs at most.
    db_statement_timeout_s: float = Field(default=10.0, gt=0)
    # Waiting for a row or table lock (PostgreSQL lock_timeout, SQLite busy_timeout).
    db_lock_timeout_s: float = Field(default=10.0, gt=0)
    # /health/ready answers within this, whatever the database does (checks that have not
    # finished by then fail as timeouts).
    ready_budget_s: float = Field(default=2.0, gt=0)
    # Look-up readiness fails when the lookup index has left a seen revision unapplied
    # this long (the database answers, yet the index does not follow it).
    lookup_max_lag_s: float = Field(default=10.0, gt=0)
    # Look-up readiness (/health/ready) stays 200 while the index last synced with the
    # database at most this long ago, whatever the database does (an outage: look-ups
    # answer from memory, marked degraded); beyond it, 503.
    lookup_max_stale_s: float = Field(default=3600.0, gt=0)
    # Write readiness (/health/ready/write): how long its probe waits for a pooled
    # connection and for the registry's head lock. A writer holding the lock longer, or
    # a pool with no connection free, makes it 503.
    ready_lock_wait_s: float = Field(default=1.5, gt=0)
    # The lookup index is built once per host into an immutable snapshot file in
    # `runtime_dir` (lookup-index.snap), which every worker maps read-only (one copy of
    # its pages in memory) and follows the change feed from. One worker of the host
    # writes a new one at most this often (0: only when it is missing or unusable); a
    # service started while the database is down answers look-ups from the last one.
    lookup_snapshot_interval_s: float = Field(default=300.0, ge=0)
    # Where the snapshot is built: a child process (the default: the build's memory and
    # time never touch a worker) or a thread of the worker (for a process that starts
    # many apps in a row, such as the test suite's in-process clients, where starting
    # an interpreter for each build costs more than the build of a small registry).
    lookup_snapshot_builder: Literal["process", "thread"] = "process"
    # Files the workers of one host share while they run (the lookup snapshot and its
    # lock file); empty means data_dir/run. Local disk, not a network share: the lock
    # is `flock`.
    runtime_dir: Path | None = None
    # Started while the database does not answer, the service waits for it, trying
    # again after 1 s, 2 s, 4 s, ... up to this long between attempts.
    db_wait_max_s: float = Field(default=30.0, gt=0)
    # `min_revision=R` waits at most this long for this worker to reach R, then 503.
    min_revision_wait_s: float = Field(default=5.0, ge=0)
    # What a 503 tells clients to wait before retrying (Retry-After, seconds).
    retry_after_s: int = Field(default=5, ge=1)
    # After SIGTERM: long polls answer at once, new requests get 503, and the work in
    # flight (imports, extracts) gets this long to finish before it is cancelled (an
    # import then rolls back whole). Below the unit's TimeoutStopSec and the pod's
    # terminationGracePeriodSeconds (tests/ops/test_deploy.py checks that they agree).
    drain_budget_s: int = Field(default=20, ge=1)
    # Who may scrape GET /metrics without credentials (addresses or networks).
    metrics_allowed: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    # Readiness warns when the oldest country of the gazetteer was loaded longer ago.
    gazetteer_max_age_days: int = Field(default=400, ge=1)

    # --- security -------------------------------------------------------------------
    # How client certificates arrive: the service terminates TLS itself ("direct"),
    # or a reverse proxy did and forwards the certificate in a header ("proxy").
    tls_mode: TlsMode = TlsMode.DIRECT
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # CA bundle(s) that client certificates must chain to (both modes).
    client_ca_files: list[Path] = Field(default_factory=list)
    # Proxy mode: nginx reaches the service on this Unix socket (default
    # data_dir/cdb.sock), created 0660 and given this group, so that only nginx may
    # connect. Certificate headers are believed on this channel alone...
    proxy_socket: Path | None = None
    proxy_socket_group: str | None = None
    # ... and from these addresses (or networks), for a proxy on another host only. Empty
    # by default: any local process can reach a TCP port, so loopback proves nothing.
    trusted_proxies: list[str] = Field(default_factory=list)
    oidc_issuer: str = ""
    oidc_audience: str = "cdb-api"
    oidc_algorithms: list[str] = Field(default_factory=lambda: ["ES256", "ES384", "RS256", "PS256"])
    oidc_leeway_s: int = Field(default=30, ge=0, le=300)
    oidc_jwks_ttl_s: float = Field(default=300, gt=0)
    oidc_jwks_refetch_interval_s: float = Field(default=30, ge=0)
    # CA bundle to trust for the issuer's own HTTPS (discovery, JWKS); empty: system CAs.
    oidc_ca_file: Path | None = None
    scope_claim: str = "scope"
    owner_claim: str = "cdb_owner"
    # RFC 8705: refuse tokens without `cnf`. Defaults to on in prod, off in dev.
    require_bound_tokens: bool | None = None
    # The local token issuer of the dev profile (never in prod), and its tokens' lifetime.
    dev_issuer: bool | None = None
    dev_token_lifetime_s: int = Field(default=3600, ge=10, le=86_400)

    # --- limits (documented in the README) -------------------------------------------
    # Requests per second (and burst) per client certificate, per worker.
    rate_limit_per_client: float = Field(default=1000, gt=0)
    rate_limit_burst: int = Field(default=2000, ge=1)
    # Failed authentications per second (and burst) per source address (an IPv6 one by
    # its /64; behind the trusted proxy, the address it forwards), per worker: a source
    # that has failed `burst` times is answered 429 with Retry-After, whatever
    # certificate, token or path it sends next, until the rate has refilled its bucket.
    rate_limit_anonymous: float = Field(default=5, gt=0)
    rate_limit_anonymous_burst: int = Field(default=50, ge=1)
    rate_limits: bool = True
    # Refusals of one source (address; an authenticated caller's subject too) within this
    # window are counted into one audit event, after the first (an authenticated
    # caller's first ten distinct attempts) written at once; 0 writes every refusal as
    # it happens.
    audit_refusal_window_s: float = Field(default=60, ge=0)
    # Sources whose refusals are held apart per window and worker; the refusals of
    # further sources in that window are counted in one event (bounds the trail's growth
    # when a flood comes from many addresses).
    audit_refusal_sources: int = Field(default=100, ge=1, le=100_000)
    # Expensive work at once, per worker: in all, and per client.
    max_extracts: int = Field(default=4, ge=1)
    max_extracts_per_client: int = Field(default=2, ge=1)
    max_long_polls: int = Field(default=500, ge=1)
    max_long_polls_per_client: int = Field(default=20, ge=1)
    max_imports: int = Field(default=2, ge=1)
    max_imports_per_client: int = Field(default=1, ge=1)
    import_read_budget_s: float = Field(
        default=60.0, gt=0,
        description="the longest a CSV or XLSX upload may take to read (in a worker thread, "
        "beside the event loop); past it the upload is refused with 413",
    )  # fmt: skip

    # --- extracts and the change feed -------------------------------------------------
    # The ES256 key set that signs extracts; dev generates one under data_dir/keys.
    signing_keys_file: Path | None = None
    # After a rotation, the old key stays in the JWKS this long.
    retired_key_listed_days: int = Field(default=30, ge=1)
    # How far back `GET /changes?since=` reaches; older clients re-extract (410).
    changes_retention_days: int = Field(default=90, ge=1)

    # Retired API versions by path prefix (e.g. {"/api/v1": {...}}): every answer under
    # the prefix carries Deprecation, Sunset and a Link to the successor.
    api_deprecations: dict[str, ApiDeprecation] = Field(default_factory=dict)

    # Reads of named persons by administrators and operators (Annex I 5.1(d)) are kept this
    # long after the last; 3 years: Regulation (EU) 2018/1725 art. 88 keeps such logs.
    consultation_retention_days: int = Field(default=1095, ge=1)
    # Named persons of entries deleted or replaced longer ago than this are erased by
    # `cdb-service erase --expired` (the reports timer runs it daily): storage limitation,
    # Regulation (EU) 2018/1725 art. 4(1)(e). The current entries' persons stay.
    personal_data_retention_days: int = Field(default=90, ge=1)

    # --- data quality (Annex I 7.6) ---------------------------------------------------
    # An entry unchanged for longer than this is listed for review ("current").
    quality_review_days: int = Field(default=365, ge=1, le=36_500)
    # A certificate rollover's notice to access points, in working days (Annex I 6.4's
    # shortest): the new certificate accepted that long before it is used, the old one
    # accepted that long after the new one is (quality/rollovers.py).
    rollover_min_overlap_working_days: int = Field(default=5, ge=0, le=60)
    # Rollout status (distribution/rollouts.py): access points that have not confirmed a
    # change of trust material this many working days before its use_from are alerted on
    # (`cdb_rollout_unconfirmed_access_points`, deploy/prometheus) and listed by the
    # quality report; changes this many days past stay listed as recent; the gauges are
    # recomputed this often.
    rollout_alert_working_days: int = Field(default=2, ge=0, le=30)
    rollout_recent_days: int = Field(default=14, ge=0, le=366)
    rollout_metrics_interval_s: float = Field(default=300.0, ge=5.0, le=86_400.0)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str) -> str:
        if value and not value.startswith(("smtp://", "smtps://")):
            raise ValueError("must be an smtp:// or smtps:// URL")
        return value

    @field_validator("api_deprecations")
    @classmethod
    def _api_prefixes(cls, value: dict[str, ApiDeprecation]) -> dict[str, ApiDeprecation]:
        for prefix in value:
            if not prefix.startswith("/api/") or prefix.endswith("/"):
                raise ValueError(f"{prefix!r}: an API version's prefix, such as /api/v1")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if value and not value.startswith(("postgresql", "sqlite")):
            raise ValueError("must be a postgresql:// or sqlite:// URL")
        return value

    @cached_property
    def effective_database_url(self) -> str:
        """The SQLAlchemy async URL: asyncpg for PostgreSQL, aiosqlite for SQLite."""
        url = self.database_url or f"sqlite:///{self.data_dir / 'cdb.sqlite3'}"
        scheme, _, rest = url.partition("://")
        if scheme in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
            return f"postgresql+asyncpg://{multi_host(rest)}"
        if scheme == "sqlite":
            scheme = "sqlite+aiosqlite"
        return f"{scheme}://{rest}"

    @property
    def db_budget_s(self) -> float:
        """How long a request waits on a database that has stopped answering, at most.

        The first wait that runs out ends the request: a pooled connection that has
        stalled costs its check at checkout (the host timeout, at most a statement
        timeout), a fresh one a connect timeout. A database that is slow but answering
        is bounded per statement.
        """
        return self.db_connect_timeout_s + self.db_statement_timeout_s

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def should_migrate(self) -> bool:
        return self.auto_migrate if self.auto_migrate is not None else self.profile is Profile.DEV

    @property
    def should_seed(self) -> bool:
        return self.auto_seed if self.auto_seed is not None else self.profile is Profile.DEV

    @property
    def proxy_socket_path(self) -> Path:
        return self.proxy_socket or self.data_dir / "cdb.sock"

    @property
    def effective_runtime_dir(self) -> Path:
        return self.runtime_dir or self.data_dir / "run"

    @property
    def lookup_snapshot_path(self) -> Path:
        return self.effective_runtime_dir / "lookup-index.snap"

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def signing_keys_path(self) -> Path:
        return self.signing_keys_file or self.data_dir / "keys" / "signing-keys.json"

    @property
    def uses_dev_issuer(self) -> bool:
        return self.dev_issuer if self.dev_issuer is not None else self.profile is Profile.DEV

    @property
    def bound_tokens_required(self) -> bool:
        if self.require_bound_tokens is not None:
            return self.require_bound_tokens
        return self.profile is Profile.PROD

    def dev_issuer_url(self) -> str:
        return f"https://localhost:{self.port}/dev-issuer"

    def prod_problems(self) -> list[str]:
        """Why this configuration must not run as `prod` (empty when it may)."""
        if self.profile is not Profile.PROD:
            return []
        problems = []
        if self.uses_dev_issuer:
            problems.append("the dev token issuer is enabled (CDB_DEV_ISSUER)")
        if not self.oidc_issuer:
            problems.append("no OIDC issuer is configured (CDB_OIDC_ISSUER)")
        if not self.database_url:
            problems.append("the database is the embedded SQLite default (set CDB_DATABASE_URL)")
        elif self.is_sqlite:
            problems.append("the database is SQLite; production runs on PostgreSQL")
        if self.should_seed:
            problems.append("seeding on start is enabled (CDB_AUTO_SEED)")
        if not self.client_ca_files:
            problems.append("no client CA bundle is configured (CDB_CLIENT_CA_FILES)")
        dev_pki = self.pki_dir.resolve()
        files = [("CDB_TLS_CERT_FILE", self.tls_cert_file), ("CDB_TLS_KEY_FILE", self.tls_key_file)]
        files += [("CDB_CLIENT_CA_FILES", p) for p in self.client_ca_files]
        for name, path in files:
            if path is not None and dev_pki in path.resolve().parents:
                problems.append(f"{name} points into the dev PKI ({path})")
        if self.signing_keys_file is None:
            problems.append("no signing key set is configured (CDB_SIGNING_KEYS_FILE)")
        if self.tls_mode is TlsMode.DIRECT and not (self.tls_cert_file and self.tls_key_file):
            problems.append("direct TLS needs CDB_TLS_CERT_FILE and CDB_TLS_KEY_FILE")
        return problems + self.console_session_problems() + self.risky_edge_settings()

    def console_session_problems(self) -> list[str]:
        return production.console_session_problems(self)

    def risky_edge_settings(self) -> list[str]:
        return production.risky_edge_settings(self)


def multi_host(rest: str) -> str:
    """libpq's multi-host form (`user@h1:5432,h2:5432/db`) in SQLAlchemy's (`user@/db?host=h1:5432&
    host=h2:5432`), aimed at whichever host accepts writes unless the URL says otherwise.

    High availability on PostgreSQL replication: each new connection tries the hosts
    in order and keeps the first that is the primary (`target_session_attrs`), so after
    a failover the pool finds the promoted standby by itself.
    """
    authority, _, tail = rest.partition("/")
    credentials, at, hosts = authority.rpartition("@")
    if "," not in hosts:
        return rest
    database, _, query = tail.partition("?")
    params = [f"host={h}" for h in hosts.split(",") if h]
    if "target_session_attrs=" not in query:
        params.append("target_session_attrs=read-write")
    joined = "&".join([p for p in (query,) if p] + params)
    return f"{credentials}{at}/{database}?{joined}"
