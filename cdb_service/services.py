"""What a running service holds, built once from the settings by the composition root.

Every part is built here, at start-up; none is born later inside a handler.
`create_app` puts each part in the app state under its field name; handlers never
see this class: each context's `deps.py` hands them the parts they ask for. The
command line and the tests build it the same way to work on a database directly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cdb_service.console.deps import ConsoleParts
from cdb_service.db.engine import create_engine, session_factory
from cdb_service.distribution.rollouts import RolloutWatch
from cdb_service.distribution.routing_table import TableDigests
from cdb_service.lookup.follower import IndexFollower
from cdb_service.lookup.shared import SharedSnapshot
from cdb_service.notifications.delivery import Notifier
from cdb_service.ops.write_ready import WriteReadiness
from cdb_service.registry.store.batches import Batches
from cdb_service.registry.store.reads import EntryReads
from cdb_service.registry.store.writes import EntryWrites
from cdb_service.security.certificates import ChainVerifier, ProxyAllowList
from cdb_service.security.consultations import ConsultationLog
from cdb_service.security.dev import DevPki, with_dev_defaults
from cdb_service.security.gate import SecurityGate
from cdb_service.security.rate_limits import Buckets, RateLimits
from cdb_service.security.receipts import Receipts
from cdb_service.security.refusals import RefusalTrail
from cdb_service.security.signing_keys import SigningKeys
from cdb_service.security.tokens import DiscoveredKeys, KeySource, StaticKeys, TokenValidator
from cdb_service.settings import Profile, Settings
from cdb_service.web.ceilings import Ceiling, Ceilings
from cdb_service.web.consistency import ReadYourWrites
from cdb_service.web.draining import Drain
from cdb_service.web.loop_lag import LoopLag


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    reads: EntryReads
    writes: EntryWrites
    batches: Batches
    gate: SecurityGate
    http: httpx.AsyncClient
    lookup: IndexFollower
    signing: SigningKeys
    ceilings: Ceilings
    read_your_writes: ReadYourWrites
    routing_digests: TableDigests
    console: ConsoleParts
    drain: Drain
    receipts: Receipts
    loop_lag: LoopLag
    notifier: Notifier
    write_readiness: WriteReadiness
    consultations: ConsultationLog
    rollouts: RolloutWatch
    dev_pki: DevPki | None = None

    @classmethod
    def open(cls, settings: Settings) -> Services:
        settings = with_dev_defaults(settings)
        engine = create_engine(settings)
        sessions = session_factory(engine)
        verify: str | bool = str(settings.oidc_ca_file) if settings.oidc_ca_file else True
        http = httpx.AsyncClient(timeout=5.0, verify=verify)
        dev_pki = DevPki(settings.pki_dir) if settings.uses_dev_issuer else None
        source: KeySource
        if dev_pki is not None and settings.oidc_issuer == settings.dev_issuer_url():
            source = StaticKeys(dev_pki.signing_keys())
        else:
            source = DiscoveredKeys(
                settings.oidc_issuer, http, settings.oidc_jwks_ttl_s,
                settings.oidc_jwks_refetch_interval_s,
            )  # fmt: skip
        validator = TokenValidator(
            settings.oidc_issuer, settings.oidc_audience, source,
            settings.oidc_algorithms, settings.oidc_leeway_s,
        )  # fmt: skip
        if settings.uses_dev_issuer:
            validator.renew_hint = (
                "get one from this service with `cdb-service dev-token --client NAME`"
                " (it finds the running dev service by itself)"
            )
        limits = RateLimits(
            Buckets(settings.rate_limit_per_client, settings.rate_limit_burst),
            Buckets(settings.rate_limit_anonymous, settings.rate_limit_anonymous_burst),
            enabled=settings.rate_limits,
        )
        gate = SecurityGate(
            settings, validator, ChainVerifier(settings.client_ca_files),
            ProxyAllowList(settings.trusted_proxies), limits,
            RefusalTrail(settings.audit_refusal_window_s, settings.audit_refusal_sources),
        )  # fmt: skip
        ceilings = Ceilings(
            Ceiling("full extracts", settings.max_extracts, settings.max_extracts_per_client),
            Ceiling("long polls", settings.max_long_polls, settings.max_long_polls_per_client),
            Ceiling("imports", settings.max_imports, settings.max_imports_per_client),
        )
        reads = EntryReads(sessions)
        # `min_revision` on look-ups: checked against the database's head, waited for in
        # this worker's index.
        read_your_writes = ReadYourWrites(reads.head, settings.min_revision_wait_s,
                                          settings.retry_after_s)  # fmt: skip
        signing = SigningKeys.load(settings.signing_keys_path,
                                   create=settings.profile is Profile.DEV)  # fmt: skip
        shared = SharedSnapshot(settings.lookup_snapshot_path, settings,
                                dt.timedelta(days=settings.changes_retention_days))  # fmt: skip
        lookup = IndexFollower(settings, shared=shared,
                               renew_every_s=settings.lookup_snapshot_interval_s)  # fmt: skip
        return cls(
            settings, engine, sessions, reads, EntryWrites(sessions),
            Batches(sessions), gate, http, lookup, signing,
            ceilings, read_your_writes, TableDigests(),
            ConsoleParts.build(settings, sessions, gate), Drain(settings.retry_after_s),
            Receipts(signing, sessions), LoopLag(), Notifier(sessions, settings),
            WriteReadiness(settings, engine),
            ConsultationLog(sessions, settings.consultation_retention_days),
            RolloutWatch(sessions, settings.rollout_metrics_interval_s,
                         settings.rollout_alert_working_days), dev_pki,
        )  # fmt: skip

    def as_state(self) -> dict[str, Any]:
        """Every part under its own name: the keys the contexts' `deps.py` read."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    async def close(self) -> None:
        await self.loop_lag.stop()
        await self.consultations.stop()
        await self.notifier.stop()
        await self.rollouts.stop()
        await self.gate.refusals.stop(self.sessions)
        await self.lookup.stop()
        await self.http.aclose()
        await self.engine.dispose()
