"""What the production profile refuses to start with, beyond the basics in
`Settings.prod_problems`: console sessions that outlive a working day, and settings that
would weaken the edge (issue 30). Each refusal is one line naming the setting and why.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdb_service.settings import Settings

# The longest console sessions production accepts: a working day from sign-in, an hour
# without a request (an unattended browser of an administrator is a way into the registry).
MAX_CONSOLE_ABSOLUTE_S = 12 * 3600
MAX_CONSOLE_IDLE_S = 3600
# The production profile's bound on the edge's timeouts (nginx ships 60 s).
EDGE_TIMEOUT_BOUND_S = 300


def console_session_problems(self: Settings) -> list[str]:
    """Console session lifetimes production refuses: each one line naming the setting."""
    problems = []
    if self.console_absolute_timeout_s > MAX_CONSOLE_ABSOLUTE_S:
        problems.append(
            f"CDB_CONSOLE_ABSOLUTE_TIMEOUT_S={self.console_absolute_timeout_s} keeps a "
            f"console session longer than {MAX_CONSOLE_ABSOLUTE_S // 3600} h after sign-in "
            "(a stolen or forgotten session would outlive the working day)"
        )
    if self.console_idle_timeout_s > MAX_CONSOLE_IDLE_S:
        problems.append(
            f"CDB_CONSOLE_IDLE_TIMEOUT_S={self.console_idle_timeout_s} keeps an unused "
            f"console session longer than {MAX_CONSOLE_IDLE_S // 60} minutes "
            "(an unattended browser would stay signed in)"
        )
    return problems


def risky_edge_settings(self: Settings) -> list[str]:
    """Settings that would weaken production's edge (issue 30): one line each, naming
    the setting and why. Part of `prod_problems`."""
    problems = []
    if self.oidc_issuer and not self.oidc_issuer.startswith("https://"):
        problems.append(
            "CDB_OIDC_ISSUER is not https://: the token signing keys would "
            "be fetched unprotected, and anyone on the path could mint tokens"
        )
    if not self.public_url.startswith("https://"):
        problems.append(
            "CDB_PUBLIC_URL must be the https:// address browsers use: the "
            "console's sign-in callback is built from it"
        )
    if self.require_bound_tokens is False:
        problems.append(
            "CDB_REQUIRE_BOUND_TOKENS=false: a stolen token would work "
            "without its client certificate (RFC 8705)"
        )
    if not self.rate_limits:
        problems.append(
            "CDB_RATE_LIMITS=false: floods of requests and of refused "
            "credentials would not be slowed"
        )
    for network in self.trusted_proxies:
        if _too_wide(network):
            problems.append(
                f"CDB_TRUSTED_PROXIES holds {network}: certificate headers "
                "would be believed from a whole network; list the proxies' "
                "addresses (IPv4 /24 or narrower, IPv6 /64 or narrower)"
            )
    for name, value, bound in (
        ("CDB_MAX_HEADER_BYTES", self.max_header_bytes, 65_536),
        ("CDB_MAX_HEADER_FIELD_BYTES", self.max_header_field_bytes, 16_384),
        ("CDB_MAX_HEADER_FIELDS", self.max_header_fields, 200),
    ):
        if value > bound:
            problems.append(
                f"{name}={value} is above {bound}: one request's headers "
                "could cost a worker that much memory and time"
            )
    for name, seconds in (
        ("CDB_HEADER_TIMEOUT_S", self.header_timeout_s),
        ("CDB_BODY_TIMEOUT_S", self.body_timeout_s),
        ("CDB_KEEPALIVE_TIMEOUT_S", self.keepalive_timeout_s),
    ):
        if seconds > EDGE_TIMEOUT_BOUND_S:
            problems.append(
                f"{name}={seconds:g} is above {EDGE_TIMEOUT_BOUND_S} s: slow "
                "or idle connections would be held that long"
            )
    if self.max_connections > 10_000:
        problems.append(
            f"CDB_MAX_CONNECTIONS={self.max_connections} is above 10000: one "
            "worker would run out of memory or file descriptors first"
        )
    return problems


def _too_wide(network: str) -> bool:
    try:
        parsed = ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False  # the gate refuses it with its own message
    return parsed.prefixlen < (24 if parsed.version == 4 else 64)
