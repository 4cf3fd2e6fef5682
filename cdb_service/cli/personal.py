"""Erasure of personal data by an operator: one entry's named persons on request, or those
kept past the retention (the reports timer's daily `erase --expired`)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import uuid

from cdb_service.cli.common import print_json
from cdb_service.mistakes import UserMistake
from cdb_service.settings import Settings


def _operator() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return f"cli:{name}"


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.db.engine import create_engine, session_factory
    from cdb_service.registry.store import erasure
    from cdb_service.security.audit import Who
    from cdb_service.security.dev import with_dev_defaults

    if args.expired == bool(args.kind or args.entry_id):
        raise UserMistake("give KIND and ID (one entry), or --expired (past the retention), "
                          "not both and not neither")  # fmt: skip
    who = Who(subject=_operator(), operator=True)
    if args.expired:
        if args.reason is not None:
            raise UserMistake("--expired erases by the retention rule; --reason is for one entry")
        days = settings.personal_data_retention_days
    else:
        if not args.entry_id:
            raise UserMistake("give the entry's ID after its KIND")
        kind = erasure.private_kind(args.kind)
        try:
            entry_id = uuid.UUID(args.entry_id)
        except ValueError:
            raise UserMistake(f"{args.entry_id!r} is not an entry id (a UUID)") from None
        if not (args.reason or "").strip():
            raise UserMistake("--reason TEXT is required: why the person is erased (audited)")

    async def job() -> erasure.Erased:
        engine = create_engine(with_dev_defaults(settings))
        sessions = session_factory(engine)
        try:
            if args.expired:
                return await erasure.erase_expired(sessions, engine, days, who)
            return await erasure.erase(sessions, engine, kind, entry_id, args.reason, who)
        finally:
            await engine.dispose()

    done = asyncio.run(job())
    print_json(done.as_report() | ({"retention_days": days} if args.expired else {}))
    return 0


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    era = sub.add_parser(
        "erase", help="erase the named persons of an entry (every version), or with --expired "
        "those of entries deleted or replaced longer ago than the retention",
        epilog="History, the change feed, extracts and the audit trail keep verifying: they "
        "hold a ref to the person, which reads as [erased] afterwards. Audited.",
    )  # fmt: skip
    era.add_argument("kind", nargs="?", metavar="KIND", help="national-members or "
                     "national-correspondents")  # fmt: skip
    era.add_argument("entry_id", nargs="?", metavar="ID", help="the entry's id")
    era.add_argument("--reason", help="why (kept in the audit trail)")
    era.add_argument("--expired", action="store_true",
                     help="erase by CDB_PERSONAL_DATA_RETENTION_DAYS instead")  # fmt: skip
    era.set_defaults(run=cmd_erase)
