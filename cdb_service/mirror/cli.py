"""`cdb-service mirror`: keep a local copy of a service's registry, and resolve from it.

  cdb-service mirror --from https://cdb.example:8443 --into sqlite:///var/mirror.sqlite3 \\
      --ca ca.pem --cert client.pem --key client-key.pem --token-file token [--serve] [--once]
  (or, instead of --token-file: --issuer https://idp.example --client-id cdb-mirror)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys

from cdb_service import outbound
from cdb_service.mistakes import explain

DEFAULT_SERVE_PORT = 8444


def add_arguments(mirror: argparse.ArgumentParser) -> None:
    mirror.add_argument("--from", dest="source", required=True, help="the service's base URL")
    mirror.add_argument("--into", required=True,
                        help="database URL: sqlite:///path or postgresql://…")  # fmt: skip
    outbound.add_arguments(mirror)
    mirror.add_argument("--poll", type=float, default=10.0,
                        help="seconds a feed request waits for news; retry delay")  # fmt: skip
    mirror.add_argument("--once", action="store_true",
                        help="catch up with the source (extract if needed), then exit")  # fmt: skip
    mirror.add_argument("--serve", action="store_true", help="also answer /api/v1/resolve locally")
    mirror.add_argument("--serve-port", type=int,
                        help=f"port on 127.0.0.1 (default {DEFAULT_SERVE_PORT})")  # fmt: skip
    mirror.add_argument("--seed-gazetteer", action="store_true",
                        help="load the dev profile's sample gazetteer")  # fmt: skip
    mirror.add_argument("--apply-delay", type=float, default=0.0, help=argparse.SUPPRESS)


def _mistake(args: argparse.Namespace) -> str | None:
    mistake = outbound.argument_mistake(args)
    if mistake:
        return mistake
    if args.serve_port is not None and not args.serve:
        return "--serve-port needs --serve"
    if args.once and args.serve:
        return "--once syncs and exits; it cannot --serve"
    if not args.source.startswith(("https://", "http://")):
        return "--from must be the service's http(s):// base URL"
    return None


def run(args: argparse.Namespace) -> int:
    import httpx
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from cdb_service.mirror import process
    from cdb_service.mirror.config import MirrorConfig
    from cdb_service.mirror.errors import MirrorError

    mistake = _mistake(args)
    if mistake:
        return _say(mistake, 2)
    config = MirrorConfig(
        source=args.source, into=args.into, ca=args.ca, cert=args.cert, key=args.key,
        token=args.token, token_file=args.token_file, poll_s=args.poll,
        serve_port=(args.serve_port or DEFAULT_SERVE_PORT) if args.serve else None,
        seed_gazetteer=args.seed_gazetteer, apply_delay_s=args.apply_delay,
    )  # fmt: skip
    credentials = outbound.credentials_of(args, config.tls, scope="cdb.read")
    if isinstance(credentials, outbound.ClientCredentials):
        config.credentials = credentials
    try:
        config.settings()
    except ValidationError:
        return _say("--into must be a postgresql:// or sqlite:/// URL", 2)
    try:
        config.tls.ssl_context()
    except (OSError, ssl.SSLError) as error:
        return _say(f"cannot use the TLS files (--ca, --cert, --key): {error}", 2)
    try:
        if args.once:
            head, extracts = asyncio.run(process.sync_and_exit(config))
            print(json.dumps({"head": head, "extracts": extracts}))
        else:
            asyncio.run(process.run(config))
    except MirrorError as error:
        return _say(str(error), 1)
    except outbound.TokenRefused as error:
        return _say(str(error), 2)
    except httpx.HTTPStatusError as error:
        # Refused credentials or a wrong --from: the user's to fix, like any other mistake.
        return _say(f"the source answered {error.response.status_code} for {error.request.url}", 2)
    except httpx.HTTPError as error:
        return _say(explain(error) or f"cannot reach the source: {error!r}", 2)
    except SQLAlchemyError as error:
        return _say(f"the mirror database: {error}", 1)
    except OSError as error:
        return _say(explain(error) or str(error), 2)
    except KeyboardInterrupt:
        return 130
    return 0


def _say(message: str, code: int) -> int:
    print(f"mirror: {message}", file=sys.stderr)
    return code
