"""Groups of settings that stand apart (the console, the edge's connection limits, pushed
notifications), declared here and mixed into `Settings`, which reads them all from `CDB_*`
environment variables like the rest. Kept apart only so that no module grows past what a
reader takes in at once; read them as `settings.console_scope`, as any other setting.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator


class ConsoleSettings(BaseModel):
    # --- the administrators' console (/console/) -----------------------------------
    # Its OpenID client at the issuer above (authorization code + PKCE); no secret: a
    # public client.
    console_client_id: str = "cdb-console"
    console_client_secret: str = ""
    console_scope: str = "openid profile cdb.read cdb.write cdb.operator"
    # RFC 8707 `resource` sent with the requests, for providers that need it to issue
    # an access token for this API (empty: not sent).
    console_resource: str = ""
    # A signed-in session ends after this long without a request, and at the latest
    # this long after sign-in (prod refuses more than 1 h idle, 12 h absolute). It writes
    # only while the provider's access token lasts, renewed with its refresh token.
    console_idle_timeout_s: int = Field(default=1800, ge=1)
    console_absolute_timeout_s: int = Field(default=12 * 3600, ge=1)
    # Also ask the browser for a client certificate of the client CAs.
    console_require_client_certificate: bool = False
    # The service's address as browsers reach it (https://cdb.example.eu, nginx's in
    # proxy mode): the console's sign-in callback and sign-out return are built from it,
    # never from the request's Host. Required in prod; dev falls back to the request's.
    public_url: str = ""


class EdgeSettings(BaseModel):
    # --- connections (docs/operations.md, "Limits at the edge": one table for both modes)
    # The request head (request line and headers) of one request, at most, in bytes and
    # in header fields; beyond either a 431 problem and the connection is closed.
    max_header_bytes: int = Field(default=32_768, ge=1024, le=1_048_576)
    max_header_fields: int = Field(default=100, ge=10, le=10_000)
    # One header field (name and value), at most; nginx's large_client_header_buffers size.
    max_header_field_bytes: int = Field(default=8192, ge=256, le=1_048_576)
    # A request head not complete this long after the connection opened, or after its
    # first byte, is answered 408 and closed (slow headers); also the TLS handshake's bound.
    header_timeout_s: float = Field(default=60, gt=0)
    # A request body of which nothing arrived for this long: the connection is closed.
    body_timeout_s: float = Field(default=60, gt=0)
    # An idle keep-alive connection (between requests) is closed after this long.
    keepalive_timeout_s: float = Field(default=60, gt=0)
    # Open connections per worker; one more is answered 503 and closed. Above
    # max_long_polls, which each hold one.
    max_connections: int = Field(default=1024, ge=1)
    # Connections the kernel queues before the worker accepts them (listen backlog).
    listen_backlog: int = Field(default=511, ge=1)


class NotificationSettings(BaseModel):
    # --- notifications pushed (Annex I 6.4–6.10; docs/operations.md) -------------------
    # Networks (CIDRs) a webhook may reach besides public addresses; empty: public only
    # (never loopback, link-local or private ranges). Checked at creation and each delivery.
    webhook_allowed_networks: list[str] = Field(default_factory=list)
    # CA bundle to trust for receivers' HTTPS besides the system's; empty: system CAs.
    webhook_ca_file: Path | None = None
    # One delivery's connect/read/write timeout; a receiver's answer is read up to this size.
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_max_response_bytes: int = Field(default=65_536, ge=0)
    # Attempts before a delivery becomes a dead letter; the first retry waits about
    # base seconds, each next one twice as long (with jitter), at most the cap.
    notify_max_attempts: int = Field(default=10, ge=1)
    notify_retry_base_s: float = Field(default=30.0, gt=0)
    notify_retry_cap_s: float = Field(default=3600.0, gt=0)
    # How often each worker looks for new events and due deliveries.
    notify_poll_s: float = Field(default=2.0, gt=0)
    # E-mail: the SMTP relay (smtp://[user:password@]host[:port]; smtps:// for TLS from
    # the start), STARTTLS on a plain connection, the sender address, and a CA bundle
    # for the relay's certificate (empty: system CAs). No relay: e-mail is not offered.
    smtp_url: str = ""
    smtp_starttls: bool = False
    smtp_from: str = "cdb@localhost"
    smtp_ca_file: Path | None = None

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError as error:
                raise ValueError(f"{item!r}: not a network (CIDR): {error}") from None
        return value
