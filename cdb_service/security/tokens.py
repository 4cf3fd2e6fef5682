"""OIDC access tokens: discovery, a cached JWKS, and strict JWT validation (joserfc).

Only asymmetric algorithms from an explicit allow-list are accepted (so `none`
and HS256-signed-with-the-public-key never get near a key); `iss` and `aud` must
match exactly; `exp` and `nbf` are checked with a small leeway. An unknown `kid`
makes the key set be fetched again, at most once per interval. A token that
validated is remembered until it expires, so the hot path does not verify a
signature on every request.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

ASYMMETRIC = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)


class TokenRejected(Exception):
    """The token is not acceptable; the message is safe to show to the client."""


def _shown(value: object) -> str:
    """A client-supplied claim, quoted and cut short, for a refusal's detail."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class KeySource(Protocol):
    async def keys(self, kid: str | None) -> KeySet: ...

    def publishes(self, kid: str) -> bool:
        """Whether the key set as last fetched still lists `kid` (no fetching)."""
        ...


@dataclass
class StaticKeys:
    """A key set known in-process (the dev issuer)."""

    key_set: KeySet

    async def keys(self, kid: str | None) -> KeySet:
        return self.key_set

    def publishes(self, kid: str) -> bool:
        return _has_kid(self.key_set, kid)


@dataclass
class DiscoveredKeys:
    """The issuer's JWKS, found through discovery, cached for `ttl` seconds."""

    issuer: str
    http: httpx.AsyncClient
    ttl: float = 300.0
    refetch_interval: float = 30.0
    fetches: int = 0
    _key_set: KeySet | None = None
    _jwks_uri: str | None = None
    _fetched_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def _discover(self) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = (await self.http.get(url)).raise_for_status().json()
        if document.get("issuer") != self.issuer:
            raise TokenRejected("the identity provider's discovery document names another issuer")
        return str(document["jwks_uri"])

    async def _fetch(self) -> None:
        self._jwks_uri = self._jwks_uri or await self._discover()
        data = (await self.http.get(self._jwks_uri)).raise_for_status().json()
        self._key_set = KeySet.import_key_set(data)
        self._fetched_at = time.monotonic()
        self.fetches += 1

    def publishes(self, kid: str) -> bool:
        return self._key_set is not None and _has_kid(self._key_set, kid)

    async def keys(self, kid: str | None) -> KeySet:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            known = self._key_set is not None and (kid is None or _has_kid(self._key_set, kid))
            if (
                self._key_set is None
                or age > self.ttl
                or (not known and age > self.refetch_interval)
            ):
                try:
                    await self._fetch()
                except (httpx.HTTPError, ValueError, KeyError) as error:
                    if self._key_set is None:
                        raise TokenRejected("the identity provider cannot be reached") from error
            assert self._key_set is not None
            return self._key_set


def _has_kid(key_set: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in key_set.keys)


def _segment(token: str, index: int) -> dict[str, Any]:
    """One JSON segment of a compact JWT, unverified (for choosing a key, or explaining)."""
    try:
        segment = token.split(".")[index]
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, IndexError, RecursionError):
        raise TokenRejected("the token is not a JWT (header.payload.signature)") from None
    if not isinstance(value, dict):
        raise TokenRejected("the token is not a JWT (header.payload.signature)")
    return value


def _header(token: str) -> dict[str, Any]:
    return _segment(token, 0)


@dataclass
class TokenValidator:
    issuer: str
    audience: str
    source: KeySource
    algorithms: Collection[str] = ("ES256", "ES384", "RS256", "PS256", "EdDSA")
    leeway: int = 30
    # What a client should do to get an acceptable token, appended to refusals it can fix.
    renew_hint: str = "ask your identity provider for a new access token"
    cache_size: int = 10_000
    # sha256(token) -> (exp, kid, claims)
    _cache: OrderedDict[str, tuple[float, str | None, dict[str, Any]]] = field(
        default_factory=OrderedDict
    )

    def __post_init__(self) -> None:
        unsafe = set(self.algorithms) - ASYMMETRIC
        if unsafe:
            raise ValueError(f"only asymmetric algorithms may be allowed, not {sorted(unsafe)}")

    async def validate(self, token: str) -> dict[str, Any]:
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(digest)
        now = time.time()
        if cached and cached[0] > now - self.leeway:
            # A remembered token stays good only while its key is still published.
            if cached[1] is None or self.source.publishes(cached[1]):
                self._cache.move_to_end(digest)
                return cached[2]
            del self._cache[digest]
        claims = await self._verify(token, now)
        kid = _header(token).get("kid")
        self._cache[digest] = (float(claims["exp"]), kid if isinstance(kid, str) else None, claims)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return claims

    async def _verify(self, token: str, now: float) -> dict[str, Any]:
        header = _header(token)
        # Another issuer's token would fail on its key; saying which issuer is more use.
        self._check_issuer(_segment(token, 1))
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise TokenRejected(f"the token's algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        key_set = await self.source.keys(kid if isinstance(kid, str) else None)
        if isinstance(kid, str) and not _has_kid(key_set, kid):
            raise TokenRejected("the token is signed with an unknown key")
        try:
            decoded = jwt.decode(token, key_set, algorithms=list(self.algorithms))
        except (JoseError, ValueError) as error:
            raise TokenRejected("the token's signature does not verify") from error
        self._explain(decoded.claims, now)
        registry = JWTClaimsRegistry(
            now=int(now),
            leeway=self.leeway,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as error:
            raise TokenRejected(
                f"the token is not valid: {error.description or error.error}"
            ) from None
        return dict(decoded.claims)

    def _check_issuer(self, claims: dict[str, Any]) -> None:
        issuer = claims.get("iss")
        if issuer != self.issuer:
            raise TokenRejected(
                f"the token was issued by {_shown(issuer)}, but this service accepts tokens "
                f"issued by {self.issuer!r}; {self.renew_hint}"
            )

    def _explain(self, claims: dict[str, Any], now: float) -> None:
        """The common refusals in plain words: which claim, what it says, what was expected."""
        self._check_issuer(claims)
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise TokenRejected(
                f"the token is meant for the audience {_shown(audience)}, but this service's "
                f"audience is {self.audience!r}; {self.renew_hint}"
            )
        expiry = claims.get("exp")
        if not isinstance(expiry, int | float) or isinstance(expiry, bool):
            raise TokenRejected("the token has no expiry time (exp)")
        if expiry < now - self.leeway:
            when = _utc(expiry)
            raise TokenRejected(
                f"the token expired at {when} ({int(now - expiry)} s ago); {self.renew_hint}"
            )
        not_before = claims.get("nbf")
        if isinstance(not_before, int | float) and not_before > now + self.leeway:
            raise TokenRejected(
                f"the token is not valid before {_utc(not_before)}; check the clocks of the "
                "issuer and this client"
            )


def _utc(timestamp: float) -> str:
    try:
        return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{timestamp!r} (not a time)"
