"""`cdb-service` command line: serve, migrate, seed, gazetteer loads, OpenAPI export."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cdb_service.settings import Settings


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.web.server import serve

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    serve(settings.model_copy(update=overrides))
    return 0


def cmd_dev_token(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.security.dev import DEV_CLIENTS, DevPki, token_for

    if not settings.uses_dev_issuer:
        print("dev-token works in the dev profile only", file=sys.stderr)
        return 2
    if args.client not in DEV_CLIENTS:
        print(f"unknown dev client; choose one of {', '.join(DEV_CLIENTS)}", file=sys.stderr)
        return 2
    pki = DevPki(settings.pki_dir).ensure()
    issuer = settings.oidc_issuer or settings.dev_issuer_url()
    print(token_for(pki, args.client, issuer, settings.oidc_audience, settings.owner_claim))
    return 0


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.security.audit import verify_chain

    report = asyncio.run(_with_runtime(settings, lambda rt: verify_chain(rt.sessions)))
    if report.ok:
        _print({"status": "ok", "events": report.checked})
        return 0
    _print({"status": "broken", "event": report.broken_at, "reason": report.reason,
            "verified_before_it": report.checked})  # fmt: skip
    return 1


async def _with_runtime(settings: Settings, job: Callable[[Any], Awaitable[Any]]) -> Any:
    from cdb_service.runtime import Runtime

    runtime = Runtime.open(settings)
    try:
        return await job(runtime)
    finally:
        await runtime.close()


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.db import migrate

    if args.downgrade:
        asyncio.run(migrate.downgrade(settings, args.downgrade))
    else:
        asyncio.run(migrate.upgrade(settings))
    return 0


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.seeding.load import seed, seed_scale

    async def job(runtime: Any) -> Any:
        report = await seed(runtime.registry, runtime.sessions)
        out = {"seed": report.summary()}
        if args.scale:
            scaled = await seed_scale(runtime.registry, runtime.sessions, args.scale)
            out["scale"] = scaled.summary()
        return out

    _print(asyncio.run(_with_runtime(settings, job)))
    return 0


def cmd_gazetteer_load(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.lookup import gazetteer

    country = args.country.upper()
    places = gazetteer.read_tercet(Path(args.file).read_text("utf-8-sig"), country)

    async def job(runtime: Any) -> int:
        return await gazetteer.replace_country(
            runtime.sessions, country, places, Path(args.file).name
        )

    _print({"country": country, "places": asyncio.run(_with_runtime(settings, job))})
    return 0


def cmd_openapi(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.openapi import render

    text = render()
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, "utf-8")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cdb-service", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=cmd_serve)
    mig = sub.add_parser("migrate", help="upgrade the database schema to head")
    mig.add_argument("--downgrade", metavar="REVISION", help="downgrade to this revision instead")
    mig.set_defaults(run=cmd_migrate)
    seed = sub.add_parser("seed", help="load the seed dataset (idempotent)")
    seed.add_argument("--scale", type=int, metavar="N", help="also generate about N geo keys")
    seed.set_defaults(run=cmd_seed)
    gaz = sub.add_parser("gazetteer-load", help="replace a country's gazetteer from a TERCET file")
    gaz.add_argument("file")
    gaz.add_argument("--country", required=True)
    gaz.set_defaults(run=cmd_gazetteer_load)
    tok = sub.add_parser(
        "dev-token", help="print a dev access token bound to a dev client's certificate"
    )
    tok.add_argument("--client", required=True)
    tok.set_defaults(run=cmd_dev_token)
    aud = sub.add_parser(
        "audit-verify", help="walk the audit hash chain; name the first broken link"
    )
    aud.set_defaults(run=cmd_audit_verify)
    api = sub.add_parser("openapi", help="write the OpenAPI document generated from the app")
    api.add_argument("--out", default="openapi.yaml")
    api.set_defaults(run=cmd_openapi)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    from cdb_service.logging import configure_logging

    configure_logging(settings.log_level)
    from cdb_service.problems import Problem

    try:
        result: int = args.run(args, settings)
    except Problem as problem:
        print(json.dumps(problem.as_dict(), indent=2, ensure_ascii=False), file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    raise SystemExit(main())
