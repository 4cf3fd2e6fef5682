"""`cdb-service` command line.

serve, migrate, seed, gazetteer-load, dev-token, dev-url, audit-verify, import, export,
quality, erase, verify-extract, verify-package, verify-receipt, verify-restore, certificates,
rotate-signing-key,
mirror, probe (and `probe report`), connector-sync, openapi.
"""

# This module is the parser and `main` (the `cdb-service` entry point); the commands
# live by group (the docstring above is the parser's description, so the map is here):
#   data.py      the registry's data in and out: migrate, seed, gazetteer-load, import,
#                export, quality
#   checks.py    checks an operator runs: audit-verify, verify-extract, verify-package,
#                verify-receipt,
#                verify-restore, certificates
#   personal.py  erase: named persons on request or past the retention
#   service.py   the service and what stands beside it: serve, dev-token, dev-url,
#                rotate-signing-key, mirror, probe, openapi
#   sync.py      connector-sync: the agent beside an access point
#   common.py    what the commands share: printing, files, the database for a command

from __future__ import annotations

import argparse
import json
import sys

from cdb_service.cli.checks import (
    cmd_audit_verify,
    cmd_certificates,
    cmd_verify_extract,
    cmd_verify_package,
    cmd_verify_receipt,
    cmd_verify_restore,
)
from cdb_service.cli.data import (
    cmd_export,
    cmd_gazetteer_load,
    cmd_import,
    cmd_migrate,
    cmd_quality,
    cmd_seed,
)
from cdb_service.cli.service import (
    cmd_dev_token,
    cmd_dev_url,
    cmd_mirror,
    cmd_openapi,
    cmd_probe,
    cmd_rotate_keys,
    cmd_serve,
)
from cdb_service.mistakes import EXIT_MISTAKE, DatabaseTarget, explain
from cdb_service.settings import Settings


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
    pkg = sub.add_parser(
        "verify-package", help="check a configuration package (ZIP): signature, files, digest",
        epilog="The JWKS is fetched or read as for verify-extract. A package that does not "
        "verify is refused with one line naming the file at fault (exit status 1).",
    )  # fmt: skip
    pkg.add_argument("file")
    pkg.add_argument("--jwks", required=True, help="URL or file of the service's JWKS")
    pkg.add_argument("--cacert", help="CA bundle for an https JWKS URL (and its issuer)")
    outbound_arguments(pkg, ca=False)
    pkg.set_defaults(run=cmd_verify_package)
    rec = sub.add_parser(
        "verify-receipt", help="check a write's CDB-Receipt (signature, entries, request)",
        epilog="RECEIPT is the header's value or a file holding it. --request checks that a "
        "saved request body (an import file) is the one the registry accepted.",
    )  # fmt: skip
    rec.add_argument("receipt", metavar="RECEIPT")
    rec.add_argument("--jwks", required=True, help="URL or file of the service's JWKS")
    rec.add_argument("--cacert", help="CA bundle for an https JWKS URL (and its issuer)")
    rec.add_argument("--request", help="the request body that was sent (file)")
    outbound_arguments(rec, ca=False)
    rec.set_defaults(run=cmd_verify_receipt)
    res = sub.add_parser("verify-restore", help="check a restored database: migrations, gap-free "
                         "and whole revisions, audit chain, state = extract")  # fmt: skip
    res.add_argument("--extract", help="a signed extract of revision R to compare the state at R")
    res.add_argument("--jwks", help="URL or file of the JWKS that signed it")
    res.add_argument("--cacert", help="CA bundle for an https JWKS URL")
    res.set_defaults(run=cmd_verify_restore)
    from cdb_service.cli.personal import add_arguments as erase_arguments

    erase_arguments(sub)
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
    from cdb_service.cli.sync import add_arguments as sync_arguments

    sync_arguments(sub)
    api = sub.add_parser("openapi", help="write the OpenAPI document generated from the app")
    api.add_argument("--out", default="openapi.yaml")
    api.set_defaults(run=cmd_openapi)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from cdb_service.kernel.problems import Problem
    from cdb_service.logging import configure_logging

    target = DatabaseTarget()
    try:
        settings = Settings()
        target = DatabaseTarget(
            settings.database_url,
            settings.db_connect_timeout_s,
            settings.db_statement_timeout_s,
            settings.db_lock_timeout_s,
        )
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
        line = explain(error, target)
        if line is None:
            raise
        return _mistake(args, line)
    return result


def _mistake(args: argparse.Namespace, line: str) -> int:
    print(f"cdb-service {args.command}: {line}", file=sys.stderr)
    return EXIT_MISTAKE
