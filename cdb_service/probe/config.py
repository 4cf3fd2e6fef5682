"""What a probe is told: the service, its credentials (for samples and for incidents), the
interval, the timeout and the latency objective, the lookup it asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cdb_service import outbound

DEFAULT_LOOKUP = "/api/v1/resolve?country=DE&instrument=eio&competence=execute&postal_code=10115"


@dataclass
class ProbeConfig:
    target: str
    store: Path
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    token: str | None = None
    token_file: Path | None = None
    incident_token: str | None = None
    incident_token_file: Path | None = None
    lookup: str = DEFAULT_LOOKUP
    interval_s: float = 30.0
    timeout_s: float = 10.0
    latency_objective_ms: float = 1000.0
    windows_every_s: float = 300.0
    listen: str | None = None  # host:port of the status page
    # Tokens fetched from the issuer (client credentials) instead of the static ones.
    sample_credentials: outbound.ClientCredentials | None = None
    incident_credentials: outbound.ClientCredentials | None = None
    # The certificate incidents are posted with (their token is bound to it); default: cert.
    incident_cert: Path | None = None
    incident_key: Path | None = None
    # Notices to subscribers while the registry is down (probe/notices.py): the list is
    # copied from the registry with the incident credentials (an operator's).
    notify: bool = False
    webhook_ca: Path | None = None
    webhook_allowed_networks: tuple[str, ...] = ()
    smtp: outbound.SmtpRelay | None = None

    @property
    def tls(self) -> outbound.TlsIdentity:
        return outbound.TlsIdentity(self.ca, self.cert, self.key)

    @property
    def incident_tls(self) -> outbound.TlsIdentity:
        if self.incident_cert is None:
            return self.tls
        return outbound.TlsIdentity(self.ca, self.incident_cert, self.incident_key)

    @property
    def sample_bearer(self) -> outbound.Credentials:
        if self.sample_credentials is not None:
            return self.sample_credentials
        return outbound.BearerToken(self.token, self.token_file)

    @property
    def incident_bearer(self) -> outbound.Credentials:
        if self.incident_credentials is not None:
            return self.incident_credentials
        return outbound.BearerToken(self.incident_token, self.incident_token_file)

    @property
    def posts_incidents(self) -> bool:
        return self.incident_credentials is not None or bool(
            self.incident_token or self.incident_token_file
        )
