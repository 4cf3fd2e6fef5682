"""`cdb-service` command line.

serve, migrate, seed, gazetteer-load, dev-token, dev-url, audit-verify, import, export,
quality, verify-extract, verify-restore, certificates, rotate-signing-key, mirror, probe
(and `probe report`), openapi.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from cdb_service.mistakes import EXIT_MISTAKE, UserMistake, explain
from cdb_service.settings import Settings


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _emit(text: str, out: str) -> None:
    """`-` is standard output; anything else a file path."""
    if out == "-":
        sys.stdout.write(text)
    else:
        Path(out).write_text(text, "utf-8")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
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


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.security.audit import verify_chain

    report = asyncio.run(_with_services(settings, lambda s: verify_chain(s.sessions)))
    if report.ok:
        _print({"status": "ok", "events": report.checked})
        return 0
    _print(
        {
            "status": "broken",
            "event": report.broken_at,
            "reason": report.reason,
            "verified_before_it": report.checked,
        }
    )
    return 1


async def _with_services(settings: Settings, job: Callable[[Any], Awaitable[Any]]) -> Any:
    from cdb_service.services import Services

    services = Services.open(settings)
    try:
        return await job(services)
    finally:
        await services.close()


async def _with_sessions(settings: Settings, job: Callable[[Any], Awaitable[Any]]) -> Any:
    """For a command that needs the database only (an import): the rest of the service
    (web framework, security gate, lookup index) is neither built nor imported, which
    is a fifth of such a process's memory."""
    from cdb_service.db.engine import create_engine, session_factory
    from cdb_service.security.dev import with_dev_defaults

    engine = create_engine(with_dev_defaults(settings))
    try:
        return await job(session_factory(engine))
    finally:
        await engine.dispose()


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.db import migrate

    if args.downgrade:
        asyncio.run(migrate.downgrade(settings, args.downgrade))
    else:
        asyncio.run(migrate.upgrade(settings))
    return 0


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.seeding.load import seed, seed_scale

    async def job(services: Any) -> Any:
        report = await seed(services.batches, services.sessions)
        out = {"seed": report.summary()}
        if args.scale:
            scaled = await seed_scale(services.batches, services.sessions, args.scale)
            out["scale"] = scaled.summary()
        return out

    _print(asyncio.run(_with_services(settings, job)))
    return 0


def cmd_gazetteer_load(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.lookup import gazetteer

    country = args.country.upper()
    path = Path(args.file)
    try:
        # Opened before the database is touched: a missing file is one line, not a retry.
        source = path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise UserMistake(f"{args.file}: {error.strerror or error}") from None

    async def job(services: Any) -> int:
        return await gazetteer.replace_country(services.sessions, country, places, path.name)

    with source:
        try:
            places = gazetteer.read_tercet(source, country)
            count = asyncio.run(_with_services(settings, job))
        except (gazetteer.GazetteerError, UnicodeDecodeError) as error:
            raise UserMistake(f"{args.file}: {error}") from None
    _print({"country": country, "places": count})
    return 0


def _user_error(message: str) -> NoReturn:
    """A user's mistake (a missing file, a wrong format): one line, exit status 2 (main)."""
    raise UserMistake(message)


def _problem_lines(problem: Any) -> int:
    """A refused batch: its summary, then one line per problem (line or row, entry, field)."""
    print(f"cdb-service: {problem.detail}", file=sys.stderr)
    for error in problem.errors:
        where = " ".join(str(p) for p in error.loc)
        entry = f" [{error.entry}]" if error.entry else ""
        print(f"  {where}{entry}: {error.msg}", file=sys.stderr)
    return 2


@contextlib.contextmanager
def _opened(name: str) -> Iterator[BinaryIO]:
    """A file named on the command line, or standard input for "-" (left open)."""
    if name == "-":
        yield sys.stdin.buffer
        return
    with open(name, "rb") as handle:
        yield handle


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    import getpass

    from rich.progress import Progress

    from cdb_service.kernel.problems import Problem
    from cdb_service.registry import exports
    from cdb_service.registry.batches import Batches
    from cdb_service.registry.imports import parse_lines
    from cdb_service.registry.kinds import KINDS
    from cdb_service.security.audit import Who

    owner = args.owner.upper()
    try:
        fmt = args.format or ("ndjson" if args.file == "-" else exports.format_of_file(args.file))
        stem = Path(args.file).stem
        kind = KINDS.get(args.kind or stem) if fmt == "csv" else None
        if fmt == "csv" and kind is None:
            return _user_error(f"{args.file}: name the kind of this CSV file (--kind, or call "
                               f"the file <kind>.csv; kinds: {', '.join(KINDS)})")  # fmt: skip
        with Progress(transient=True, console=_stderr_console()) as bar:
            bar.add_task(f"validating {args.file}", total=None)
            if fmt == "ndjson":  # read a line at a time: the file is never held whole
                with _opened(args.file) as lines:
                    batch = parse_lines(lines, owner)
            else:
                data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
                batch = exports.parse_upload(data, fmt, owner, kind)
                del data
    except OSError as error:
        return _user_error(f"cannot read {args.file}: {error.strerror or error}")
    except exports.FormatError as error:
        return _user_error(str(error))
    # This process ends with the import: what it holds now (modules, the parsed batch)
    # stays until then, so the collector need not walk it at every full collection (a
    # sixth of a 50,000-entry import). A service never does this: there it would leak.
    gc.freeze()

    async def job(sessions: Any) -> Any:
        with Progress(transient=True, console=_stderr_console()) as bar:
            bar.add_task(f"checking {len(batch.items)} entries", total=None)
            return await Batches(sessions).apply(
                batch.items,
                Who(subject=f"cli:{getpass.getuser()}"),
                replace_owner=owner if args.mode == "replace" else None,
                dry_run=args.dry_run,
                summary=f"import {owner} ({args.mode})",
                prior_errors=batch.errors,
                unlisted_errors=batch.error_count - len(batch.errors),
                broken=batch.broken,
                complete=not batch.unidentified,
            )

    try:
        result = asyncio.run(_with_sessions(settings, job))
    except Problem as problem:
        return _problem_lines(problem)
    summary = {"owner": owner, "mode": args.mode, "dry_run": args.dry_run}
    first = None if args.all_changes else args.first
    _print(
        summary
        | {"revision": result.revision, "counts": result.counts(),
           "by_kind": result.counts_by_kind(), "changes": result.changes(first)}
    )  # fmt: skip
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.registry import exports
    from cdb_service.registry.kinds import KINDS

    unknown = [k for k in args.kind or () if k not in KINDS]
    if unknown:
        return _user_error(f"unknown kind {unknown[0]!r}; kinds: {', '.join(KINDS)}")
    kinds = [KINDS[k] for k in args.kind] if args.kind else list(KINDS.values())
    owner = args.owner.upper() if args.owner else None
    fmt = args.format
    if fmt is None:
        fmt = "ndjson" if args.out == "-" else exports.format_of_file(args.out)

    async def job(services: Any) -> dict[str, bytes]:
        by_kind = await exports.documents_by_kind(services.reads, kinds, owner)
        if fmt != "csv":
            return {args.out: await exports.render(services.reads, by_kind, fmt)}
        # CSV: one file per kind; several kinds go into the directory --out names.
        out = {}
        for kind in kinds:
            one = {kind.name: by_kind.get(kind.name, [])}
            target = args.out if len(kinds) == 1 else str(Path(args.out) / f"{kind.name}.csv")
            out[target] = await exports.render(services.reads, one, "csv")
        return out

    if fmt == "csv" and len(kinds) > 1 and args.out == "-":
        return _user_error("CSV holds one kind per file: give --kind, or --out DIRECTORY")
    try:
        files = asyncio.run(_with_services(settings, job))
    except exports.FormatError as error:
        return _user_error(str(error))
    try:
        for target, body in files.items():
            if target == "-":
                sys.stdout.buffer.write(body)
            else:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                Path(target).write_bytes(body)
    except OSError as error:
        return _user_error(f"cannot write {error.filename or args.out}: {error.strerror or error}")
    return 0


def cmd_quality(args: argparse.Namespace, settings: Settings) -> int:
    import datetime as dt

    from cdb_service.kernel import codes
    from cdb_service.kernel.calendar import today
    from cdb_service.quality.report import as_csv
    from cdb_service.quality.service import owner_report

    owner = args.owner.upper()
    if owner not in codes.OWNERS:
        return _user_error(f"{args.owner!r} is not an owner code (a member state, or EJ)")
    try:
        day = dt.date.fromisoformat(args.date) if args.date else today()
    except ValueError:
        return _user_error(f"--date {args.date!r} is not a date (YYYY-MM-DD)")
    review = args.review_days or settings.quality_review_days
    body = asyncio.run(
        _with_services(settings, lambda s: owner_report(s.reads, owner, day, review))
    )
    text = as_csv(body) if args.format == "csv" else json.dumps(body, indent=2) + "\n"
    try:
        _emit(text, args.out)
    except OSError as error:
        return _user_error(f"cannot write {args.out}: {error.strerror or error}")
    return 0


def _key_set(source: str, cacert: str | None, args: argparse.Namespace | None = None) -> Any:
    """The JWKS that verifies extracts, from the service's URL or a saved file.

    With `args` (verify-extract's): the client certificate and token they name, for a
    JWKS behind mutual TLS; a token from an issuer is fetched with client credentials.
    """
    import httpx
    from joserfc.jwk import KeySet

    from cdb_service import outbound

    jwks: Any  # checked below, then handed to joserfc as it came
    if source.startswith(("https://", "http://")):
        tls = outbound.TlsIdentity(
            Path(cacert) if cacert else None,
            getattr(args, "cert", None),
            getattr(args, "key", None),
        )
        auth = outbound.credentials_of(args, tls, scope="cdb.read") if args else outbound.NO_TOKEN
        try:
            with outbound.client("", tls, auth, timeout=httpx.Timeout(10)) as http:
                jwks = http.get(source).raise_for_status().json()
        except outbound.TokenRefused as refused:
            raise UserMistake(str(refused)) from None
    else:
        jwks = json.loads(Path(source).read_text())
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise UserMistake(f"{source} is not a JWKS (a JSON object with a 'keys' list)")
    published: Any = jwks
    return KeySet.import_key_set(published)


def cmd_verify_extract(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service import outbound
    from cdb_service.distribution.extracts import verify_lines

    mistake = outbound.argument_mistake(args)
    if mistake:
        raise UserMistake(mistake)
    lines = Path(args.file).read_bytes().splitlines(keepends=True)
    verdict = verify_lines(lines, _key_set(args.jwks, args.cacert, args))
    if verdict.ok:
        _print(
            {
                "status": "ok",
                "revision": verdict.revision,
                "entries": verdict.count,
                "detail": verdict.detail,
            }
        )
        return 0
    where = f"line {verdict.line}: " if verdict.line else ""
    print(f"extract does not verify: {where}{verdict.detail}", file=sys.stderr)
    _print({"status": "failed", "line": verdict.line, "detail": verdict.detail})
    return 1


def cmd_verify_restore(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.ops.restore_check import as_report, verify_restore

    if bool(args.extract) != bool(args.jwks):
        raise UserMistake("--extract and --jwks go together: the extract's signature is checked "
                          "with the service's keys")  # fmt: skip
    lines = Path(args.extract).read_bytes().splitlines(keepends=True) if args.extract else None
    key_set = _key_set(args.jwks, args.cacert) if args.jwks else None
    checks = asyncio.run(_with_services(
        settings, lambda s: verify_restore(s.engine, s.sessions, lines, key_set)))  # fmt: skip
    report = as_report(checks)
    _print(report)
    if report["status"] == "ok":
        return 0
    failed = next(c for c in checks if not c.ok)
    print(f"restore does not verify: {failed.name}: {failed.detail}", file=sys.stderr)
    return 1


def cmd_certificates(args: argparse.Namespace, settings: Settings) -> int:
    import datetime as dt

    from cdb_service.registry.kinds import KINDS
    from cdb_service.registry.routing_parties.expiry import expiring

    parties = asyncio.run(_with_services(
        settings, lambda s: s.reads.documents([KINDS["routing-parties"]])))  # fmt: skip
    found = expiring(parties, dt.timedelta(days=args.within_days), dt.datetime.now(dt.UTC))
    _print({"within_days": args.within_days, "certificates": found})
    # Non-zero when there is something to act on: a timer's OnFailure= then tells someone.
    return 1 if found else 0


def cmd_rotate_keys(args: argparse.Namespace, settings: Settings) -> int:
    import datetime as dt

    from cdb_service.distribution.signing import SigningKeys

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
    _print(
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


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def cmd_openapi(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.openapi import render

    text = render()
    _emit(text, args.out)
    return 0


def cmd_probe(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.probe.cli import run

    return run(args)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cdb-service", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (proxy mode)")
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
    tok.add_argument("--client", required=True, help="reader, admin-de, admin-fr, admin-ej or "
                     "operator")  # fmt: skip
    tok.set_defaults(run=cmd_dev_token)
    url = sub.add_parser("dev-url", help="print the URL of the dev service running on this "
                         "data directory")  # fmt: skip
    url.set_defaults(run=cmd_dev_url)
    aud = sub.add_parser(
        "audit-verify", help="walk the audit hash chain; name the first broken link"
    )
    aud.set_defaults(run=cmd_audit_verify)
    imp = sub.add_parser(
        "import", help="apply an owner's batch (NDJSON, CSV, XLSX) as one revision"
    )
    imp.add_argument("file", help="*.ndjson, *.csv (one kind) or *.xlsx; - for NDJSON on stdin")
    imp.add_argument("--owner", required=True)
    imp.add_argument("--mode", choices=("merge", "replace"), default="merge")
    imp.add_argument("--dry-run", action="store_true", help="report the diff, write nothing")
    imp.add_argument("--format", choices=("ndjson", "csv", "xlsx"), help="default: from the name")
    imp.add_argument("--kind", help="the kind of a CSV file (default: the file's name)")
    imp.add_argument("--first", type=int, default=50, help="list the first N changes (50)")
    imp.add_argument("--all-changes", action="store_true", help="list every change")
    imp.set_defaults(run=cmd_import)
    exp = sub.add_parser("export", help="write current entries in the import shape")
    exp.add_argument("--owner")
    exp.add_argument("--kind", action="append", help="a kind (repeatable); default: all")
    exp.add_argument("--format", choices=("ndjson", "csv", "xlsx"), help="default: from --out")
    exp.add_argument("--out", default="-", help="file, - (stdout), or a directory for CSV")
    exp.set_defaults(run=cmd_export)
    qua = sub.add_parser("quality", help="an owner's data-quality findings (Annex I 7.6)")
    qua.add_argument("--owner", required=True)
    qua.add_argument("--format", choices=("json", "csv"), default="json")
    qua.add_argument("--date", help="as of this day (YYYY-MM-DD); default: today")
    qua.add_argument("--review-days", type=int, help="review period (CDB_QUALITY_REVIEW_DAYS)")
    qua.add_argument("--out", default="-")
    qua.set_defaults(run=cmd_quality)
    from cdb_service.outbound import add_arguments as outbound_arguments

    ver = sub.add_parser(
        "verify-extract", help="check a saved extract's chain, digest and signature",
        epilog="A JWKS URL is fetched trusting --cacert; when it sits behind mutual TLS, "
        "--cert/--key is presented and a token sent: --token/--token-file, or one fetched "
        "from --issuer as --client-id (OAuth 2.0 client credentials, RFC 8705).",
    )  # fmt: skip
    ver.add_argument("file")
    ver.add_argument("--jwks", required=True, help="URL or file of the service's JWKS")
    ver.add_argument("--cacert", help="CA bundle for an https JWKS URL (and its issuer)")
    outbound_arguments(ver, ca=False)
    ver.set_defaults(run=cmd_verify_extract)
    res = sub.add_parser("verify-restore", help="check a restored database: migrations, gap-free "
                         "and whole revisions, audit chain, state = extract")  # fmt: skip
    res.add_argument("--extract", help="a signed extract of revision R to compare the state at R")
    res.add_argument("--jwks", help="URL or file of the JWKS that signed it")
    res.add_argument("--cacert", help="CA bundle for an https JWKS URL")
    res.set_defaults(run=cmd_verify_restore)
    crt = sub.add_parser("certificates", help="routing-party certificates expiring within N days "
                         "(exit 1 when there are any)")  # fmt: skip
    crt.add_argument("--within-days", type=int, default=30, metavar="N")
    crt.set_defaults(run=cmd_certificates)
    rot = sub.add_parser("rotate-signing-key", help="make a new signing key; keep the old listed "
                         "(the first run creates the key set)")  # fmt: skip
    rot.add_argument("--keep-listed-days", type=int)
    rot.set_defaults(run=cmd_rotate_keys)
    from cdb_service.mirror.cli import add_arguments as mirror_arguments
    from cdb_service.outbound import CREDENTIALS_HELP

    mir = sub.add_parser(
        "mirror",
        help="keep a local copy of a service's registry (extract, then the change feed)",
        description="Extract, verify and load, then follow the change feed revision by "
        "revision; resumes after a crash, re-extracts on 410. With --serve, answers "
        "/api/v1/resolve on 127.0.0.1 (plain HTTP, read-only, no credentials); with "
        "--once, catches up and exits.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=CREDENTIALS_HELP + "\n\nThe mirror needs a reader's credentials.",
    )
    mirror_arguments(mir)
    mir.set_defaults(run=cmd_mirror)
    from cdb_service.probe.cli import add_arguments

    probe = sub.add_parser(
        "probe", help="watch a service's availability (its own process and store)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=CREDENTIALS_HELP + "\n\nThe samples' credentials (a reader) call "
        "/health/ready and the known-good lookup. The incident credentials (an operator, "
        "--incident-*) post the probe's incidents to /api/v1/incidents; without them "
        "incidents stay in --store only. An incident the service does not accept "
        "(unreachable, 401, 403, 5xx) is queued in --store and sent again after every "
        "sample until it is accepted, also after a restart.",
    )  # fmt: skip
    add_arguments(probe)
    probe.set_defaults(run=cmd_probe)
    api = sub.add_parser("openapi", help="write the OpenAPI document generated from the app")
    api.add_argument("--out", default="openapi.yaml")
    api.set_defaults(run=cmd_openapi)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from cdb_service.kernel.problems import Problem
    from cdb_service.logging import configure_logging

    try:
        settings = Settings()
        configure_logging(settings.log_level)
        result: int = args.run(args, settings)
    except Problem as problem:
        print(json.dumps(problem.as_dict(), indent=2, ensure_ascii=False), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except SystemExit as stop:
        if not isinstance(stop.code, str):
            raise
        return _mistake(args, stop.code)
    except Exception as error:
        line = explain(error)
        if line is None:
            raise
        return _mistake(args, line)
    return result


def _mistake(args: argparse.Namespace, line: str) -> int:
    print(f"cdb-service {args.command}: {line}", file=sys.stderr)
    return EXIT_MISTAKE


if __name__ == "__main__":
    raise SystemExit(main())
