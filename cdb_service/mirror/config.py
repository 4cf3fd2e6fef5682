"""What a mirror is told: its source, its database, its credentials, how it follows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cdb_service import outbound
from cdb_service.settings import Settings

# The mirror writes its revisions as `mirror:<source URL>`: how it recognises its own
# database (and one that is someone else's registry).
ACTOR_PREFIX = "mirror:"
# The longest extract line accepted. A line is one entry; the service takes documents
# of up to 10 MB through its API, so this leaves room while a hostile or broken source
# still cannot make the mirror buffer without end.
MAX_LINE_BYTES = 16 * 1024 * 1024
# Versions per feed page; a larger revision comes in several pages and is applied once whole.
FEED_PAGE = 1000


@dataclass
class MirrorConfig:
    source: str
    into: str
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    token: str | None = None
    token_file: Path | None = None
    poll_s: float = 10.0
    serve_port: int | None = None
    seed_gazetteer: bool = False
    max_line_bytes: int = MAX_LINE_BYTES
    feed_page: int = FEED_PAGE
    # Tokens fetched from the issuer and renewed (instead of `token` / `token_file`).
    credentials: outbound.ClientCredentials | None = None
    # Test aid: a pause after each applied revision, so that a test can kill the mirror mid-feed.
    apply_delay_s: float = 0.0

    @property
    def actor(self) -> str:
        return (ACTOR_PREFIX + self.source.rstrip("/"))[:200]

    @property
    def tls(self) -> outbound.TlsIdentity:
        return outbound.TlsIdentity(self.ca, self.cert, self.key)

    @property
    def bearer(self) -> outbound.Credentials:
        if self.credentials is not None:
            return self.credentials
        return outbound.BearerToken(self.token, self.token_file)

    def settings(self) -> Settings:
        return Settings(database_url=self.into, auto_migrate=True, auto_seed=False)
