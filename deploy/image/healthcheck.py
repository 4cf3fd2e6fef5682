#!/usr/bin/env python3
"""The container's health check: `cdb-healthcheck live` (default) or `cdb-healthcheck ready`.

The slim image has no curl, so this uses the standard library only. It asks the service
in this container, on loopback, the way the orchestrator does: `/health/live` (restart
when it fails) or `/health/ready` (take out of traffic when it fails). Direct TLS mode
answers HTTPS on CDB_PORT; proxy mode answers plain HTTP there (nginx terminates TLS).
The certificate is not checked: the peer is this container, named 127.0.0.1, and no
credential is sent. Exit 0 when the answer is 200, 1 otherwise, with one line saying why.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request

PATHS = {"live": "/health/live", "ready": "/health/ready", "ready-write": "/health/ready/write"}


def main(argv: list[str]) -> int:
    which = argv[1] if len(argv) > 1 else "live"
    if which not in PATHS:
        print(f"usage: cdb-healthcheck [{'|'.join(PATHS)}]", file=sys.stderr)
        return 2
    scheme = "http" if os.environ.get("CDB_TLS_MODE", "direct") == "proxy" else "https"
    port = os.environ.get("CDB_PORT", "8443")
    url = os.environ.get("CDB_HEALTH_URL", f"{scheme}://127.0.0.1:{port}") + PATHS[which]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as answer:
            print(f"{url}: {answer.status}")
            return 0 if answer.status == 200 else 1
    except urllib.error.HTTPError as error:
        print(f"{url}: {error.code}", file=sys.stderr)
    except (OSError, urllib.error.URLError) as error:
        print(f"{url}: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
