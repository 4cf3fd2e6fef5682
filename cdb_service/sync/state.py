"""What the agent has done, in one small JSON file, so a restart resumes where it stopped.

Per target: the digest it last applied and when, and the applies not yet acknowledged
(with the target's answer, so an acknowledgement that failed is sent again without
pushing the package again). Then the next package held (its digest and
`effective_from`) and, per target, how many applies in a row failed and when the next
try is due, and the digest of the held package the registry was told it holds (a
scheduled acknowledgement, sent once). The file is written atomically after every
change (a temporary file, fsync, rename): a crash leaves the old state or the new one,
and a package is pushed twice only if the agent dies between a target's success and
this write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdb_service.mistakes import UserMistake

FORMAT = 1
UNACKNOWLEDGED_KEPT = 20  # as many as the registry keeps per target


def key(kind: str, name: str) -> str:
    return f"{kind}:{name}"


@dataclass
class Applied:
    digest: str
    applied_at: str  # ISO 8601, UTC
    answer: Any
    effective_from: str | None = None  # the package's

    def as_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "applied_at": self.applied_at, "answer": self.answer,
                "effective_from": self.effective_from}  # fmt: skip


@dataclass
class TargetState:
    applied: Applied | None = None
    unacknowledged: list[Applied] = field(default_factory=list)
    failures: int = 0  # applies in a row that failed
    retry_at: str | None = None  # when the next apply may be tried (backoff)
    last_error: str | None = None
    scheduled: str | None = None  # the held package's digest, acknowledged as scheduled

    def as_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied.as_dict() if self.applied else None,
            "unacknowledged": [a.as_dict() for a in self.unacknowledged],
            "failures": self.failures, "retry_at": self.retry_at, "last_error": self.last_error,
            "scheduled": self.scheduled,
        }  # fmt: skip


@dataclass
class State:
    party: str
    targets: dict[str, TargetState] = field(default_factory=dict)
    next_digest: str | None = None
    next_effective_from: str | None = None

    def target(self, kind: str, name: str) -> TargetState:
        return self.targets.setdefault(key(kind, name), TargetState())

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "party": self.party,
            "targets": {k: t.as_dict() for k, t in sorted(self.targets.items())},
            "next": {"digest": self.next_digest, "effective_from": self.next_effective_from},
        }  # fmt: skip

    def record_apply(self, kind: str, name: str, applied: Applied) -> None:
        mine = self.target(kind, name)
        mine.applied, mine.failures, mine.retry_at, mine.last_error = applied, 0, None, None
        mine.unacknowledged = [a for a in mine.unacknowledged if a.digest != applied.digest]
        mine.unacknowledged = [*mine.unacknowledged, applied][-UNACKNOWLEDGED_KEPT:]

    def record_acknowledged(self, kind: str, name: str, digest: str) -> None:
        mine = self.target(kind, name)
        mine.unacknowledged = [a for a in mine.unacknowledged if a.digest != digest]

    def record_failure(self, kind: str, name: str, error: str, retry_at: dt.datetime) -> None:
        mine = self.target(kind, name)
        mine.failures += 1
        mine.retry_at, mine.last_error = retry_at.isoformat(), error[:500]


def _applied(value: Any) -> Applied:
    return Applied(str(value["digest"]), str(value["applied_at"]), value.get("answer"),
                   value.get("effective_from"))  # fmt: skip


def load(path: Path, party: str) -> State:
    """The state in `path`; a fresh one when the file does not exist yet."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return State(party)
    except (ValueError, UnicodeDecodeError) as error:
        raise UserMistake(
            f"{path}: the state file is not the agent's JSON ({error}); move it away to "
            "start afresh (every target gets the package again)"
        ) from None
    try:
        if raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format')!r}")
        if raw["party"] != party:
            raise UserMistake(f"{path}: the state file is party {raw['party']!r}'s, not "
                              f"{party!r}'s: give each agent its own state_file")  # fmt: skip
        state = State(party, next_digest=raw["next"]["digest"],
                      next_effective_from=raw["next"]["effective_from"])  # fmt: skip
        for name, t in raw["targets"].items():
            state.targets[name] = TargetState(
                _applied(t["applied"]) if t.get("applied") else None,
                [_applied(a) for a in t.get("unacknowledged", [])],
                int(t.get("failures", 0)), t.get("retry_at"), t.get("last_error"),
                t.get("scheduled"),  # absent in the files of agents before it
            )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise UserMistake(f"{path}: the state file is not the agent's ({error!r})") from None
    return state


def save(path: Path, state: State) -> None:
    """Write `state` to `path` atomically."""
    data = json.dumps(state.as_dict(), indent=2, sort_keys=True).encode("utf-8") + b"\n"
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
