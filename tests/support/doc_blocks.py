"""The command blocks of a document, each run by the tests or marked with why it cannot be.

One rule for the README and the operations runbook: every ```sh block directly follows
either `<!-- runnable -->` (the tests run it as written, with bash -euo pipefail, and it
must succeed and print something) or `<!-- not-runnable: REASON -->` (it needs what a
test machine has not: a systemd host, a cluster, root, a production URL). A block with
neither fails the test that lists them, so a command added to a document is either
proven or its reason is written beside it.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

RUNNABLE = "<!-- runnable -->"
_NOT_RUNNABLE = re.compile(r"<!-- not-runnable: (?P<reason>.*?) -->")
_FENCE = re.compile(r"^```sh\n(?P<body>.*?)\n```$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    body: str
    line: int  # where its fence opens (1-based), for the failure message
    runnable: bool
    reason: str  # why it cannot run here; "" for a runnable block

    @property
    def marked(self) -> bool:
        return self.runnable or bool(self.reason.strip())


def blocks(text: str) -> list[Block]:
    """Every ```sh block of `text`, with the mark on the line before its fence."""
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rpartition("\n")[2].strip()
        why = _NOT_RUNNABLE.fullmatch(before)
        line = text.count("\n", 0, match.start()) + 1
        reason = why.group("reason") if why else ""
        found.append(Block(match.group("body"), line, before == RUNNABLE, reason))
    return found


def runnable(path: Path) -> list[str]:
    return [block.body for block in blocks(path.read_text()) if block.runnable]


def unmarked(path: Path) -> list[str]:
    """ "FILE:LINE: first line" of each block that is neither runnable nor says why not."""
    return [f"{path.name}:{block.line}: {block.body.splitlines()[0]}"
            for block in blocks(path.read_text()) if not block.marked]  # fmt: skip


def run(script: str, cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    """Run a block as pasted into a terminal; its standard output, or an assertion error
    showing the block and the end of what it said."""
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout[-2000:]}\n--- stderr\n" \
                                 f"{done.stderr[-2000:]}"  # fmt: skip
    assert done.stdout.strip(), f"the block printed nothing:\n{script}"
    return done.stdout
