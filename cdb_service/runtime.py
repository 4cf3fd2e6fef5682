"""What a running app holds: settings, the engine, the session factory and the services."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cdb_service.db.engine import create_engine, session_factory
from cdb_service.distribution.signing import SigningKeys
from cdb_service.lookup.index import IndexFollower
from cdb_service.registry.service import RegistryService
from cdb_service.security.certificates import ChainVerifier, ProxyAllowList
from cdb_service.security.dev import DevPki
from cdb_service.security.gate import SecurityGate
from cdb_service.security.tokens import DiscoveredKeys, KeySource, StaticKeys, TokenValidator
from cdb_service.settings import Profile, Settings


def dev_defaults(settings: Settings) -> Settings:
    """Dev profile: fill what is not configured with the generated local PKI."""
    if not settings.uses_dev_issuer:
        return settings
    pki = DevPki(settings.pki_dir).ensure()
    updates: dict[str, object] = {}
    if not settings.client_ca_files:
        updates["client_ca_files"] = [pki.ca]
    if settings.tls_cert_file is None:
        updates |= {"tls_cert_file": pki.server_cert, "tls_key_file": pki.server_key}
    if not settings.oidc_issuer:
        updates["oidc_issuer"] = settings.dev_issuer_url()
    return settings.model_copy(update=updates)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    registry: RegistryService
    gate: SecurityGate
    http: httpx.AsyncClient
    lookup: IndexFollower
    signing: SigningKeys
    dev_pki: DevPki | None = field(default=None)

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        settings = dev_defaults(settings)
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
        gate = SecurityGate(
            settings, validator, ChainVerifier(settings.client_ca_files),
            ProxyAllowList(settings.trusted_proxies),
        )  # fmt: skip
        return cls(
            settings, engine, sessions, RegistryService(sessions), gate, http,
            IndexFollower(sessions),
            SigningKeys.load(settings.signing_keys_path, create=settings.profile is Profile.DEV),
            dev_pki,
        )  # fmt: skip

    async def close(self) -> None:
        await self.lookup.stop()
        await self.http.aclose()
        await self.engine.dispose()
