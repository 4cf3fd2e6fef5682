"""The agent's configuration: one TOML file an access point's operator writes.

    registry = "https://cdb.example.eu"
    party = "fr-ap"                      # the routing party (Domibus party name)
    state_file = "/var/lib/cdb-connector-sync/state.json"
    store_password_file = "/etc/cdb/connector-sync/store-password"   # or store_password
    jwks = "/etc/cdb/connector-sync/jwks.json"   # default: the registry's JWKS URL
    poll_seconds = 300

    [tls]          # mutual TLS: the CA of the registry (and issuer), this agent's identity
    ca = "…/ca.pem"
    cert = "…/client.pem"
    key = "…/client-key.pem"

    [credentials]  # tokens: from the issuer (client credentials, RFC 8705), or a file
    issuer = "https://idp.example.eu/realms/cdb"
    client_id = "fr-ap-sync"

    [[targets]]
    kind = "connector4-dir"
    name = "c4"
    directory = "/opt/connector/conf/cdb"

A mistake in it is one line naming the file and the key (`UserMistake`), never a
traceback. Target kinds are looked up in `kinds.TARGET_KINDS`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdb_service import outbound
from cdb_service.mistakes import UserMistake
from cdb_service.sync.target import Target

DEFAULT_POLL_S = 300.0
DEFAULT_WAKE_EARLY_S = 30.0
DEFAULT_RETRY_BASE_S = 5.0
DEFAULT_RETRY_MAX_S = 600.0
JWKS_PATH = "/.well-known/jwks.json"
# The registry's rule for a target's name (rollouts_controller.TargetIn).
TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,99}$")
# kind -> (the target's name, its settings) -> the target; kinds.TARGET_KINDS is the one.
TargetFactory = Callable[[str, Mapping[str, Any]], Target]
TOP_KEYS = {"registry", "party", "state_file", "store_password", "store_password_file", "jwks",
            "poll_seconds", "wake_early_seconds", "retry_base_seconds", "retry_max_seconds",
            "scope", "tls", "credentials", "targets"}  # fmt: skip


@dataclass(frozen=True)
class Scope:
    """Which parties the packages carry (as `GET /packages/{party}`'s query): by default
    those the party exchanges messages with; `owner` or the whole network instead."""

    owner: str | None = None
    whole_network: bool = False

    def params(self) -> dict[str, str]:
        if self.whole_network:
            return {"whole_network": "true"}
        return {"owner": self.owner} if self.owner else {}


@dataclass(frozen=True)
class AgentConfig:
    registry: str
    party: str
    tls: outbound.TlsIdentity
    credentials: outbound.Credentials
    jwks: str  # an https URL (fetched over the mutual-TLS client) or a file
    store_password: str
    state_file: Path
    targets: tuple[Target, ...]
    scope: Scope = Scope()
    poll_s: float = DEFAULT_POLL_S
    wake_early_s: float = DEFAULT_WAKE_EARLY_S
    retry_base_s: float = DEFAULT_RETRY_BASE_S
    retry_max_s: float = DEFAULT_RETRY_MAX_S


class Reader(Mapping[str, Any]):
    """One table of the file, with typed reads; every mistake names the file and the key.
    A mapping itself: a target kind's factory may read it as a plain one."""

    def __init__(self, file: Path, table: Mapping[str, Any], where: str = "") -> None:
        self.file, self.table, self.where = file, table, where

    def __getitem__(self, key: str) -> Any:
        return self.table[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def mistake(self, key: str, what: str) -> UserMistake:
        return UserMistake(f"{self.file}: {self.where}{key} {what}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.table.get(key, default)
        if value is None:
            raise self.mistake(key, "is missing")
        if not isinstance(value, str) or not value.strip():
            raise self.mistake(key, "must be a non-empty string")
        return value

    def optional_text(self, key: str) -> str | None:
        return None if self.table.get(key) is None else self.text(key)

    def path(self, key: str, default: str | None = None) -> Path:
        return Path(self.text(key, default)).expanduser()

    def optional_path(self, key: str) -> Path | None:
        return None if self.table.get(key) is None else self.path(key)

    def seconds(self, key: str, default: float, low: float = 0.0) -> float:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
            raise self.mistake(key, f"must be a number of seconds, at least {low:g}")
        return float(value)

    def flag(self, key: str) -> bool:
        value = self.table.get(key, False)
        if not isinstance(value, bool):
            raise self.mistake(key, "must be true or false")
        return value

    def words(self, key: str) -> tuple[str, ...] | None:
        """A command as a list of words (no shell)."""
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not value or not all(
                isinstance(w, str) and w for w in value):  # fmt: skip
            raise self.mistake(key, 'must be a list of words, e.g. ["systemctl", "restart", "x"]')
        return tuple(value)

    def unknown(self, allowed: set[str]) -> None:
        extra = sorted(set(self.table) - allowed)
        if extra:
            known = ", ".join(sorted(allowed))
            raise self.mistake(extra[0], f"is not a setting here (known: {known})")


def load(file: Path) -> AgentConfig:
    """The configuration in `file`; raises `UserMistake` (one line) when it is wrong."""
    from cdb_service.sync.kinds import TARGET_KINDS

    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise UserMistake(f"{file}: not TOML ({error})") from None
    top = Reader(file, raw)
    top.unknown(TOP_KEYS)
    registry = top.text("registry").rstrip("/")
    if not registry.startswith(("https://", "http://")):
        raise top.mistake("registry", "must be the registry's https:// base URL")
    party = top.text("party")
    tls = _tls(file, raw.get("tls", {}))
    credentials = _credentials(file, raw.get("credentials", {}), tls)
    password = _password(top)
    scope = _scope(top)
    targets = _targets(file, raw.get("targets"), TARGET_KINDS)
    return AgentConfig(
        registry=registry, party=party, tls=tls, credentials=credentials,
        jwks=top.text("jwks", registry + JWKS_PATH), store_password=password,
        state_file=top.path("state_file"), targets=targets, scope=scope,
        poll_s=top.seconds("poll_seconds", DEFAULT_POLL_S, 1.0),
        wake_early_s=top.seconds("wake_early_seconds", DEFAULT_WAKE_EARLY_S),
        retry_base_s=top.seconds("retry_base_seconds", DEFAULT_RETRY_BASE_S, 0.01),
        retry_max_s=top.seconds("retry_max_seconds", DEFAULT_RETRY_MAX_S, 0.01),
    )  # fmt: skip


def _table(file: Path, value: Any, name: str) -> Reader:
    if not isinstance(value, dict):
        raise UserMistake(f"{file}: [{name}] must be a table")
    return Reader(file, value, f"{name}.")


def _tls(file: Path, value: Any) -> outbound.TlsIdentity:
    tls = _table(file, value, "tls")
    tls.unknown({"ca", "cert", "key"})
    identity = outbound.TlsIdentity(tls.optional_path("ca"), tls.optional_path("cert"),
                                    tls.optional_path("key"))  # fmt: skip
    if (identity.cert is None) != (identity.key is None):
        raise tls.mistake("cert", "and tls.key go together")
    for key, path in (("ca", identity.ca), ("cert", identity.cert), ("key", identity.key)):
        if path is not None and not path.is_file():
            raise tls.mistake(key, f"names no readable file: {path}")
    return identity


def _credentials(file: Path, value: Any, tls: outbound.TlsIdentity) -> outbound.Credentials:
    given = _table(file, value, "credentials")
    given.unknown({"issuer", "client_id", "scope", "token_file"})
    issuer, token_file = given.optional_text("issuer"), given.optional_path("token_file")
    if issuer and token_file:
        raise given.mistake("issuer", "or credentials.token_file, not both")
    if issuer:
        if not issuer.startswith("https://"):
            raise given.mistake("issuer", "must be an https:// URL")
        if tls.cert is None:
            raise given.mistake("issuer", "authenticates with the client certificate: give "
                                "tls.cert and tls.key")  # fmt: skip
        return outbound.ClientCredentials(issuer, given.text("client_id"), tls,
                                          given.optional_text("scope"))  # fmt: skip
    if given.table.get("client_id") is not None:
        raise given.mistake("client_id", "needs credentials.issuer")
    if token_file is not None and not token_file.is_file():
        raise given.mistake("token_file", f"names no readable file: {token_file}")
    return outbound.BearerToken(token_file=token_file)


def _password(top: Reader) -> str:
    if top.table.get("store_password") is not None and top.table.get("store_password_file"):
        raise top.mistake("store_password", "or store_password_file, not both")
    file = top.optional_path("store_password_file")
    if file is not None:
        try:
            password = file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise top.mistake("store_password_file", f"cannot be read ({error.strerror})") from None
    else:
        password = top.text("store_password", "changeit")
    if not 6 <= len(password) <= 128:  # the registry's bounds (distribution/stores.py)
        raise top.mistake("store_password", "must be 6 to 128 characters")
    return password


def _scope(top: Reader) -> Scope:
    value = top.table.get("scope", "partners")
    if value in ("partners", "whole_network"):
        return Scope(whole_network=value == "whole_network")
    if isinstance(value, str) and len(value) == 2 and value.isalpha():
        return Scope(owner=value.upper())
    raise top.mistake("scope", 'must be "partners", "whole_network" or an owner code (e.g. "FR")')


def _targets(file: Path, value: Any, kinds: Mapping[str, TargetFactory]) -> tuple[Target, ...]:
    if not isinstance(value, list) or not value:
        raise UserMistake(f"{file}: give at least one [[targets]] (kind, name and its settings)")
    made: list[Target] = []
    for number, table in enumerate(value, 1):
        target = _table(file, table, f"targets[{number}]")
        kind, name = target.text("kind"), target.text("name")
        if kind not in kinds:
            raise target.mistake("kind", f"{kind!r} is not one of: {', '.join(sorted(kinds))}")
        if not TARGET_NAME.match(name):
            raise target.mistake("name", "must be 1 to 100 letters, digits or . _ : @ / - "
                                 "(the registry's rule)")  # fmt: skip
        if any((t.kind, t.name) == (kind, name) for t in made):
            raise target.mistake("name", f"{name!r} is given twice for kind {kind}")
        settings = {k: v for k, v in target.table.items() if k not in ("kind", "name")}
        made.append(kinds[kind](name, Reader(file, settings, f"targets[{number}].")))
    return tuple(made)
