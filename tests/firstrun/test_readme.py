"""The README is run, not just read: its runnable blocks, `make run`'s printed calls and
the flags it lists for each command."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from cdb_service.cli import parser
from tests.firstrun.conftest import REPO, Checkout

MARK = "<!-- runnable -->"


def runnable_blocks(text: str) -> list[str]:
    """The ```sh blocks that directly follow a `<!-- runnable -->` line."""
    return [m.group(1) for m in re.finditer(re.escape(MARK) + r"\n```sh\n(.*?)\n```", text, re.S)]


def _bash(script: str, cwd: Path, checkout: Checkout) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd,
                          env=checkout.env(), capture_output=True, text=True,
                          timeout=120)  # fmt: skip


BLOCKS = runnable_blocks((REPO / "README.md").read_text())


def test_the_readme_has_runnable_blocks() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
def test_each_runnable_block_passes_as_written(fresh_checkout: Checkout, block: str) -> None:
    """From the checkout, in a terminal that knows nothing of the port (not 8443)."""
    done = _bash(block, fresh_checkout.root, fresh_checkout)
    assert done.returncode == 0, f"{block}\n--- stdout\n{done.stdout[-2000:]}\n--- stderr\n" \
                                 f"{done.stderr[-2000:]}"  # fmt: skip
    assert done.stdout.strip(), "the block printed nothing"


def test_the_calls_make_run_prints_work_as_pasted(fresh_checkout: Checkout, tmp_path: Path) -> None:
    """Pasted into a terminal anywhere (here: another directory)."""
    printed = fresh_checkout.printed.read_text().splitlines()
    start = next(i for i, line in enumerate(printed) if line.startswith("Call it from"))
    call = "\n".join(line.strip() for line in printed[start + 1 : start + 4])
    assert f"localhost:{fresh_checkout.port}" in call
    done = _bash(call, tmp_path, fresh_checkout)
    assert done.returncode == 0, done.stderr
    assert '"eio"' in done.stdout or "eio" in done.stdout, done.stdout[:500]
    health = next(line for line in printed if line.startswith("Health, no credentials:"))
    done = _bash(health.split(":", 1)[1], tmp_path, fresh_checkout)
    assert done.returncode == 0 and '"status"' in done.stdout, done.stdout + done.stderr


def _command_lines(text: str) -> list[list[str]]:
    section = text.split("## Command line", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    joined = section.replace("\\\n", " ")
    return [line.split("#")[0].split() for line in joined.splitlines() if line.startswith("cdb-")]


def test_every_flag_the_readme_lists_is_in_that_commands_help() -> None:
    commands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    listed = _command_lines((REPO / "README.md").read_text())
    assert {words[1] for words in listed} == set(commands), "README and the CLI list other commands"
    for words in listed:
        command, *rest = words[1:]
        help_text = commands[command].format_help()
        for flag in re.findall(r"--[a-z][a-z-]*", " ".join(rest)):
            assert flag in help_text, f"`cdb-service {command} --help` does not list {flag}"
