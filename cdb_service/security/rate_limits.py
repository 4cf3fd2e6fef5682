"""Rate limits: token buckets per client certificate, and per source address for callers
that present no valid credentials.

A bucket holds `burst` tokens and refills at `rate` per second; a request takes one.
An authenticated client is limited by its certificate thumbprint, wherever it connects
from. Requests that fail authentication spend the bucket of their source address, and
once it is empty that address is answered 429 before any certificate or token is
looked at: a flood costs the service a dictionary lookup, not a signature check or an
audit row. Limits are per worker process; nginx limits in front (deploy/nginx/).
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from cdb_service.kernel.problems import RATE_LIMITED, Problem

MAX_TRACKED = 100_000  # buckets kept; the least recently used go first


@functools.lru_cache(maxsize=4096)  # asked on every request, for a few addresses
def source_key(address: str | None) -> str:
    """Whom a request's failures are counted against: its source address, an IPv6 one by
    its /64 (one host, or one site, holds a whole /64 and could use a new address for
    every request)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class Buckets:
    rate: float  # tokens per second
    burst: float
    _buckets: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict)

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
            while len(self._buckets) > MAX_TRACKED:
                self._buckets.popitem(last=False)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            self._buckets.move_to_end(key)
        return bucket

    def wait_s(self, key: str, now: float | None = None) -> float:
        """0 when `key` may go now, else the seconds until it may (nothing is taken)."""
        bucket = self._refilled(key, time.monotonic() if now is None else now)
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / self.rate

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token for `key`; 0 if there was one, else the seconds to wait."""
        bucket = self._refilled(key, time.monotonic() if now is None else now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


def too_many(wait_s: float, who: str) -> Problem:
    seconds = max(1, math.ceil(wait_s))
    return RATE_LIMITED(
        f"{who} sent more requests than this service accepts; retry after {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


@dataclass
class RateLimits:
    clients: Buckets
    anonymous: Buckets
    enabled: bool = True
    # A certificate that authenticated lately is not held up by its address's failures
    # (colleagues behind one NAT, or one proxy, must not lock each other out), as long
    # as it does not fail itself: its own failures spend a bucket of the same size, and
    # once that is empty it waits with its address (a reader's certificate sending
    # bogus tokens is refused like anyone else).
    known_for_s: float = 600.0
    _known: OrderedDict[str, float] = field(default_factory=OrderedDict)
    _known_failures: Buckets | None = None

    def __post_init__(self) -> None:
        self._known_failures = Buckets(self.anonymous.rate, self.anonymous.burst)

    def _exempt(self, thumbprint: str | None) -> bool:
        if thumbprint is None or self._known.get(thumbprint, 0.0) <= time.monotonic():
            return False
        return self._known_failures is None or not self._known_failures.wait_s(thumbprint)

    def before_authentication(self, source: str, thumbprint: str | None) -> None:
        """An address whose failures have used up its bucket is refused at once, unless
        the certificate it presents authenticated lately and has not failed since."""
        if not self.enabled or self._exempt(thumbprint):
            return
        wait = self.anonymous.wait_s(source)
        if wait:
            raise too_many(wait, f"the address {source}")

    def after_refusal(self, source: str, thumbprint: str | None = None) -> None:
        if not self.enabled:
            return
        self.anonymous.take(source)
        if thumbprint is not None and thumbprint in self._known and self._known_failures:
            self._known_failures.take(thumbprint)

    def for_client(self, thumbprint: str) -> None:
        if not self.enabled:
            return
        wait = self.clients.take(thumbprint)
        if wait:
            raise too_many(wait, "this client certificate")
        self._known[thumbprint] = time.monotonic() + self.known_for_s
        self._known.move_to_end(thumbprint)
        while len(self._known) > MAX_TRACKED:
            self._known.popitem(last=False)
