"""Commands that move the registry's data: schema, seed, gazetteer, import, export, quality."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import sys
from pathlib import Path
from typing import Any

from cdb_service.cli.common import (
    emit,
    opened,
    print_json,
    problem_lines,
    stderr_console,
    user_error,
    with_services,
    with_sessions,
)
from cdb_service.kernel import codes
from cdb_service.kernel.owners import asked_owner
from cdb_service.mistakes import UserMistake
from cdb_service.settings import Settings


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

    print_json(asyncio.run(with_services(settings, job)))
    return 0


def cmd_gazetteer_load(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.lookup import gazetteer

    country = codes.code_of(args.country)
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
            count = asyncio.run(with_services(settings, job))
        except (gazetteer.GazetteerError, UnicodeDecodeError) as error:
            raise UserMistake(f"{args.file}: {error}") from None
    print_json({"country": country, "places": count})
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    import getpass

    from rich.progress import Progress

    from cdb_service.kernel.problems import Problem
    from cdb_service.registry.formats import files as entry_files
    from cdb_service.registry.formats.budget import Budget
    from cdb_service.registry.formats.ndjson import apply_parsed, parse_lines
    from cdb_service.registry.kinds import KINDS
    from cdb_service.registry.store.batches import Batches
    from cdb_service.security.audit import Who

    owner = codes.code_of(args.owner)
    try:
        fmt = args.format or (
            "ndjson" if args.file == "-" else entry_files.format_of_file(args.file)
        )
        stem = Path(args.file).stem
        kind = KINDS.get(args.kind or stem) if fmt == "csv" else None
        if fmt == "csv" and kind is None:
            return user_error(f"{args.file}: name the kind of this CSV file (--kind, or call "
                               f"the file <kind>.csv; kinds: {', '.join(KINDS)})")  # fmt: skip
        with Progress(transient=True, console=stderr_console()) as bar:
            bar.add_task(f"validating {args.file}", total=None)
            if fmt == "ndjson":  # read a line at a time: the file is never held whole
                with opened(args.file) as lines:
                    batch = parse_lines(lines, owner)
            else:
                data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
                # An operator's own file: sized like an upload, but not timed.
                batch = entry_files.parse_upload(data, fmt, owner, kind,
                                                 Budget(seconds=math.inf))  # fmt: skip
                del data
    except OSError as error:
        return user_error(f"cannot read {args.file}: {error.strerror or error}")
    except entry_files.FormatError as error:
        return user_error(str(error))
    # This process ends with the import: what it holds now (modules, the parsed batch)
    # stays until then, so the collector need not walk it at every full collection (a
    # sixth of a 50,000-entry import). A service never does this: there it would leak.
    gc.freeze()

    async def job(sessions: Any) -> Any:
        with Progress(transient=True, console=stderr_console()) as bar:
            bar.add_task(f"checking {len(batch.items)} entries", total=None)
            who = Who(
                subject=f"cli:{getpass.getuser()}", operator=True
            )  # the database's own operator
            return await apply_parsed(Batches(sessions), batch, who, owner, mode=args.mode,
                                      dry_run=args.dry_run)  # fmt: skip

    try:
        result = asyncio.run(with_sessions(settings, job))
    except Problem as problem:
        return problem_lines(problem)
    summary = {"owner": owner, "mode": args.mode, "dry_run": args.dry_run}
    first = None if args.all_changes else args.first
    print_json(
        summary
        | {"revision": result.revision, "counts": result.counts(),
           "by_kind": result.counts_by_kind(), "changes": result.changes(first)}
    )  # fmt: skip
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    import getpass

    from cdb_service.registry.formats import files as entry_files
    from cdb_service.registry.kinds import KINDS
    from cdb_service.security.audit import Who
    from cdb_service.security.consultations import Viewer
    from cdb_service.security.policy import OPERATE, Principal

    unknown = [k for k in args.kind or () if k not in KINDS]
    if unknown:
        return user_error(f"unknown kind {unknown[0]!r}; kinds: {', '.join(KINDS)}")
    kinds = [KINDS[k] for k in args.kind] if args.kind else list(KINDS.values())
    owner = codes.code_of(args.owner) if args.owner else None
    fmt = args.format
    if fmt is None:
        fmt = "ndjson" if args.out == "-" else entry_files.format_of_file(args.out)

    async def job(services: Any) -> dict[str, bytes]:
        by_kind = await entry_files.documents_by_kind(services.reads, kinds, owner)
        # The database's own operator reads named persons too: recorded like an API export.
        reader = Viewer(Principal(f"cli:{getpass.getuser()}", None, frozenset({OPERATE}), None,
                                  None), Who(f"cli:{getpass.getuser()}", operator=True),
                        services.consultations)  # fmt: skip
        by_kind = {name: [reader.visible(name, KINDS[name].private_fields, d, "export")
                          for d in docs] for name, docs in by_kind.items()}  # fmt: skip
        if fmt != "csv":
            return {args.out: await entry_files.render(services.reads, by_kind, fmt)}
        # CSV: one file per kind; several kinds go into the directory --out names.
        out = {}
        for kind in kinds:
            one = {kind.name: by_kind.get(kind.name, [])}
            target = args.out if len(kinds) == 1 else str(Path(args.out) / f"{kind.name}.csv")
            out[target] = await entry_files.render(services.reads, one, "csv")
        return out

    if fmt == "csv" and len(kinds) > 1 and args.out == "-":
        return user_error("CSV holds one kind per file: give --kind, or --out DIRECTORY")
    try:
        files = asyncio.run(with_services(settings, job))
    except entry_files.FormatError as error:
        return user_error(str(error))
    try:
        for target, body in files.items():
            if target == "-":
                sys.stdout.buffer.write(body)
            else:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                Path(target).write_bytes(body)
    except OSError as error:
        return user_error(f"cannot write {error.filename or args.out}: {error.strerror or error}")
    return 0


def cmd_quality(args: argparse.Namespace, settings: Settings) -> int:
    import datetime as dt

    from cdb_service.kernel.calendar import today
    from cdb_service.quality.report import as_csv
    from cdb_service.quality.service import owner_report

    try:
        owner = asked_owner(args.owner)
    except ValueError as error:
        return user_error(str(error))
    try:
        day = dt.date.fromisoformat(args.date) if args.date else today()
    except ValueError:
        return user_error(f"--date {args.date!r} is not a date (YYYY-MM-DD)")
    review = args.review_days or settings.quality_review_days
    if not 1 <= review <= 36_500:
        return user_error(f"--review-days {review} is not a review period (1 to 36500 days)")
    overlap = settings.rollover_min_overlap_working_days

    async def report(services: Any) -> dict[str, Any] | str:
        owners = await services.reads.owners()  # a third country only once registered
        if not owners.is_owner(owner):
            return codes.unknown_code(owner, "owners", owners.names(), codes.GREECE_HINT)
        return await owner_report(services.reads, owner, day, review, overlap,
                                  services.settings.rollout_alert_working_days)  # fmt: skip

    body = asyncio.run(with_services(settings, report))
    if isinstance(body, str):
        return user_error(body)
    text = as_csv(body) if args.format == "csv" else json.dumps(body, indent=2) + "\n"
    try:
        emit(text, args.out)
    except OSError as error:
        return user_error(f"cannot write {args.out}: {error.strerror or error}")
    return 0
