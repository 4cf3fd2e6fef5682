"""`cdb-service connector-sync --config FILE [--once]`: the agent beside an access point.

Exit statuses (`--once`): 0 everything applied and acknowledged (or nothing to do); 1
something failed and is tried again at the next run (a target, an acknowledgement, the
registry away, a package that did not verify); 2 a mistake to fix (the configuration,
refused credentials, a party the registry does not know): one line, no traceback.
Running on, it stops on SIGTERM (or SIGINT) between two steps, with status 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from cdb_service.settings import Settings

EXIT_OK, EXIT_RETRY = 0, 1


def add_arguments(sub: Any) -> None:
    sync = sub.add_parser(
        "connector-sync",
        help="apply the registry's configuration packages to an access point (agent)",
        description="Fetch this access point's configuration packages (current and next), "
        "verify them offline, apply each at its effective_from to the configured targets "
        "(connector 4.x directory, Domibus, connector-ng) and acknowledge to the registry. "
        "State in one small file: a restart resumes and nothing is pushed twice.",
        epilog="Exit status with --once: 0 all applied and acknowledged (or nothing to do), "
        "1 something failed (tried again at the next run), 2 a mistake to fix.",
    )  # fmt: skip
    sync.add_argument("--config", required=True, type=Path, help="the agent's TOML file")
    sync.add_argument(
        "--once", action="store_true",
        help="one round (fetch, apply what is due, acknowledge), then exit",
    )  # fmt: skip
    sync.set_defaults(run=cmd_connector_sync)


def cmd_connector_sync(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.mistakes import UserMistake
    from cdb_service.outbound import TokenRefused
    from cdb_service.sync import config
    from cdb_service.sync.agent import Agent

    if not args.config.is_file():
        raise UserMistake(f"no such configuration file: {args.config}")
    agent = Agent(config.load(args.config))
    try:
        if args.once:
            outcome = agent.round()
            print(json.dumps({
                "ok": outcome.ok, "applied": outcome.applied,
                "acknowledged": outcome.acknowledged, "scheduled": outcome.scheduled,
                "problems": outcome.problems,
                "next_effective_from": outcome.next_effective_from.isoformat()
                if outcome.next_effective_from else None,
            }))  # fmt: skip
            for problem in outcome.problems:
                print(f"cdb-service connector-sync: {problem}", file=sys.stderr)
            return EXIT_OK if outcome.ok else EXIT_RETRY
        _stop_on_signals(agent.stop)
        agent.run()
        return EXIT_OK
    except TokenRefused as error:
        raise UserMistake(str(error)) from None
    finally:
        agent.api.close()


def _stop_on_signals(stop: threading.Event) -> None:
    def stopping(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
