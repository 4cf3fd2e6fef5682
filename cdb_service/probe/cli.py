"""`cdb-service probe`: run the probe, or report from its store.

  cdb-service probe --target https://cdb.example:8443 --ca ca.pem --cert c.pem --key k.pem \\
      --issuer https://idp.example --client-id cdb-probe --store var/probe.sqlite3 \\
      --incident-client-id cdb-probe-operator --listen 127.0.0.1:9443
  cdb-service probe report --store var/probe.sqlite3 [--format table|json|csv|prometheus]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import ssl
import sys
from pathlib import Path

from cdb_service import outbound

DEFAULT_STORE = Path("var/probe.sqlite3")


def add_arguments(probe: argparse.ArgumentParser) -> None:
    probe.add_argument("--target", help="base URL of the watched service (https://host:port)")
    probe.add_argument("--store", type=Path, default=DEFAULT_STORE,
                       help="the probe's own SQLite file (never the watched database)")  # fmt: skip
    outbound.add_arguments(probe, what="for the samples (a reader is enough)")
    outbound.add_arguments(
        probe, "incident-",
        "for posting incidents (an operator; certificate, issuer and scope default to the "
        "sample's)",
    )  # fmt: skip
    probe.add_argument("--lookup", help="the known-good lookup (path and query)")
    probe.add_argument("--interval", type=float, default=30.0, help="seconds (default 30)")
    probe.add_argument("--timeout", type=float, default=10.0,
                       help="seconds (default 10); at most --interval")  # fmt: skip
    probe.add_argument("--latency-objective", type=float, default=1000.0, help="ms (default 1000)")
    probe.add_argument("--windows-every", type=float, default=300.0,
                       help="seconds between fetches of the maintenance windows")  # fmt: skip
    probe.add_argument("--listen", help="host:port of the status page (/status, /metrics)")
    probe.add_argument("--holidays", type=Path, help="public-holiday calendar (JSON)")
    probe.add_argument(
        "--notify",
        action="store_true",
        help="notify the registry's subscribers of the probe's incidents itself "
        "(the list is copied from the registry with the incident credentials)",
    )
    probe.add_argument("--webhook-ca", type=Path, help="CA bundle for receivers (default: system)")
    probe.add_argument(
        "--webhook-allow",
        action="append",
        default=[],
        metavar="CIDR",
        help="a network receivers may be in besides public addresses (repeat)",
    )
    probe.add_argument("--smtp-url", help="SMTP relay for e-mail notices (smtp:// or smtps://)")
    probe.add_argument("--smtp-from", default="cdb-probe@localhost", help="the sender")
    probe.add_argument("--smtp-starttls", action="store_true", help="STARTTLS on smtp://")
    probe.add_argument("--max-samples", type=int, help=argparse.SUPPRESS)
    sub = probe.add_subparsers(dest="probe_command")
    rep = sub.add_parser("report", help="availability report from the probe's store")
    rep.add_argument("--store", type=Path, dest="report_store")
    rep.add_argument("--format", choices=("table", "json", "csv", "prometheus"), default="table")
    rep.add_argument("--year", type=int, help="calendar year (Europe/Brussels); default: this one")
    rep.add_argument("--holidays", type=Path, dest="report_holidays")


def run(args: argparse.Namespace) -> int:
    import os

    holidays = getattr(args, "report_holidays", None) or args.holidays
    if holidays:
        os.environ["CDB_HOLIDAYS_FILE"] = str(holidays)
    if args.probe_command == "report":
        return _report(args)
    if not args.target:
        print("probe: --target is required", file=sys.stderr)
        return 2
    if args.interval <= 0 or args.timeout <= 0:
        print("probe: --interval and --timeout must be positive", file=sys.stderr)
        return 2
    if args.timeout > args.interval:
        # Samples keep a fixed schedule: one may not outlast the interval it stands for.
        print(f"probe: --timeout ({args.timeout:g} s) must not exceed --interval "
              f"({args.interval:g} s)", file=sys.stderr)  # fmt: skip
        return 2
    if args.incident_client_id and not args.incident_issuer:
        args.incident_issuer = args.issuer
    mistake = outbound.argument_mistake(args) or outbound.argument_mistake(args, "incident-")
    if mistake:
        print(f"probe: {mistake}", file=sys.stderr)
        return 2
    from cdb_service.probe.config import DEFAULT_LOOKUP, ProbeConfig
    from cdb_service.probe.runner import Prober
    from cdb_service.probe.store import Store

    config = ProbeConfig(
        target=args.target, store=args.store, ca=args.ca, cert=args.cert, key=args.key,
        token=args.token, token_file=args.token_file, incident_token=args.incident_token,
        incident_token_file=args.incident_token_file, lookup=args.lookup or DEFAULT_LOOKUP,
        interval_s=args.interval, timeout_s=args.timeout,
        latency_objective_ms=args.latency_objective, windows_every_s=args.windows_every,
        listen=args.listen, incident_cert=args.incident_cert, incident_key=args.incident_key,
        notify=args.notify, webhook_ca=args.webhook_ca,
        webhook_allowed_networks=tuple(args.webhook_allow),
        smtp=outbound.SmtpRelay(args.smtp_url, args.smtp_from, args.smtp_starttls)
        if args.smtp_url else None,
    )  # fmt: skip
    sample = outbound.credentials_of(args, config.tls, scope="cdb.read")
    incident = outbound.credentials_of(args, config.incident_tls, "incident-",
                                       scope=args.scope or "cdb.read cdb.operator")  # fmt: skip
    if isinstance(sample, outbound.ClientCredentials):
        config.sample_credentials = sample
    if isinstance(incident, outbound.ClientCredentials):
        config.incident_credentials = incident
    try:
        config.tls.ssl_context()
    except (OSError, ssl.SSLError) as error:
        # A wrong path is the operator's mistake, not an outage of the service watched.
        print(f"probe: cannot use the TLS files (--ca, --cert, --key): {error}", file=sys.stderr)
        return 2
    store = Store(config.store)
    server = None
    if config.listen:
        from cdb_service.probe.page import serve

        server = serve(config.store, config.listen)
    try:
        Prober(config, store).run(args.max_samples)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.shutdown()
        store.close()
    return 0


def _report(args: argparse.Namespace) -> int:
    import json

    from cdb_service.probe import report
    from cdb_service.probe.store import Store

    path = args.report_store or args.store
    if not Path(path).exists():
        print(f"probe report: no store at {path}", file=sys.stderr)
        return 2
    try:
        store = Store(path)
    except sqlite3.DatabaseError as error:
        print(f"probe report: {path} is not a probe store ({error})", file=sys.stderr)
        return 2
    try:
        if args.format == "csv":
            year = args.year or dt.datetime.now(dt.UTC).year
            sys.stdout.write(report.year_csv(store, year))
            return 0
        picture = report.build(store, year=args.year)
        if args.format == "json":
            print(json.dumps(picture.as_dict(), indent=2))
        elif args.format == "prometheus":
            sys.stdout.write(report.prometheus(picture))
        else:
            sys.stdout.write(report.table(picture))
    finally:
        store.close()
    return 0
