"""Commands that run the service or what stands beside it, and their keys and tokens."""

from __future__ import annotations

import argparse
import sys

from cdb_service.cli.common import emit, print_json
from cdb_service.mistakes import UserMistake
from cdb_service.settings import Settings


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers > 1:
        from cdb_service.ops.supervisor import share_metrics

        # Before the service is imported: prometheus-client picks its mode on import.
        share_metrics(settings.data_dir / "metrics")
    from cdb_service.server import preflight, serve

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = settings.model_copy(update=overrides)
    preflight(settings)
    serve(settings, workers=args.workers)
    return 0


def _dev_issuer(settings: Settings) -> str:
    """The issuer a dev token must name: configured, else the running dev service's own."""
    from cdb_service.ops import running

    if settings.oidc_issuer:
        return settings.oidc_issuer
    found = running.find(settings.data_dir)
    if "port" in settings.model_fields_set or found is None:
        if found is None:
            print(f"note: no dev service is running on {settings.data_dir}/; this token is for "
                  f"one on port {settings.port} (set CDB_PORT if it will run elsewhere)",
                  file=sys.stderr)  # fmt: skip
        return settings.dev_issuer_url()
    return found.issuer


def cmd_dev_token(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.security.dev import DEV_CLIENTS, DevPki, token_for

    if not settings.uses_dev_issuer:
        raise UserMistake("dev-token works in the dev profile only (CDB_PROFILE=dev)")
    if args.client not in DEV_CLIENTS:
        raise UserMistake(f"unknown dev client {args.client!r}; choose one of "
                          f"{', '.join(DEV_CLIENTS)}")  # fmt: skip
    pki = DevPki(settings.pki_dir).ensure()
    issuer = _dev_issuer(settings)
    print(token_for(pki, args.client, issuer, settings.oidc_audience, settings.owner_claim))
    return 0


def cmd_dev_url(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.ops import running

    found = running.find(settings.data_dir)
    if found is None:
        raise UserMistake(f"no dev service is running on {settings.data_dir}/; start one with "
                          "`make run` (or `cdb-service serve`)")  # fmt: skip
    print(found.url)
    return 0


def cmd_rotate_keys(args: argparse.Namespace, settings: Settings) -> int:
    import datetime as dt

    from cdb_service.security.signing_keys import SigningKeys

    path = settings.signing_keys_path
    days = args.keep_listed_days or settings.retired_key_listed_days
    created = not path.exists()
    if created:  # the runbook's first run: the key set is made, with its first key
        keys = SigningKeys.create(path, make_folder=settings.signing_keys_file is None)
        new = keys.current
        print(f"created the signing key set {path} with its first key", file=sys.stderr)
    else:
        keys = SigningKeys.load(path, create=False)
        new = keys.rotate(dt.timedelta(days=days))
    print_json(
        {
            "created": created,
            "current": new.kid,
            "listed": [k["kid"] for k in keys.jwks()["keys"]],
            "retired_listed_days": days,
        }
    )
    return 0


def cmd_mirror(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.mirror.cli import run

    return run(args)


def cmd_openapi(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.openapi import render

    text = render()
    emit(text, args.out)
    return 0


def cmd_probe(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.probe.cli import run

    return run(args)
