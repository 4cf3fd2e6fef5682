"""The security headers every HTML page of the project carries, the service's and the
probe's status page alike (the probe shares kernel code only, never the web layer).

Pages load nothing but their own origin's files: no inline script, no other origin, no
framing; no sniffing, no referrer; and browsers speak to the site over TLS only.
"""

from __future__ import annotations

import base64
import hashlib

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000"
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def with_inline_style(style: str) -> dict[str, str]:
    """PAGE_HEADERS for a page that carries its one stylesheet inline (a page served on
    its own, with no files beside it): that stylesheet alone is allowed, by its hash."""
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    policy = CONTENT_SECURITY_POLICY.replace("style-src 'self'", f"style-src 'sha256-{digest}'")
    return PAGE_HEADERS | {"Content-Security-Policy": policy}
