"""The README is run, not just read: its runnable blocks, `make run`'s printed calls and
the flags it lists for each command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cdb_service.cli import parser
from tests.firstrun.conftest import REPO, Checkout
from tests.support import doc_blocks

README = REPO / "README.md"
BLOCKS = doc_blocks.runnable(README)


def test_the_readme_has_runnable_blocks() -> None:
    assert len(BLOCKS) >= 3


def test_every_readme_block_is_run_or_says_why_not() -> None:
    assert not doc_blocks.unmarked(README), doc_blocks.unmarked(README)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
def test_each_runnable_block_passes_as_written(fresh_checkout: Checkout, block: str) -> None:
    """From the checkout, in a terminal that knows nothing of the port (not 8443)."""
    doc_blocks.run(block, fresh_checkout.root, fresh_checkout.env())


def test_the_calls_make_run_prints_work_as_pasted(fresh_checkout: Checkout, tmp_path: Path) -> None:
    """Pasted into a terminal anywhere (here: another directory)."""
    printed = fresh_checkout.printed.read_text().splitlines()
    start = next(i for i, line in enumerate(printed) if line.startswith("Call it from"))
    call = "\n".join(line.strip() for line in printed[start + 1 : start + 4])
    assert f"localhost:{fresh_checkout.port}" in call
    said = doc_blocks.run(call, tmp_path, fresh_checkout.env())
    assert '"eio"' in said or "eio" in said, said[:500]
    health = next(line for line in printed if line.startswith("Health, no credentials:"))
    said = doc_blocks.run(health.split(":", 1)[1], tmp_path, fresh_checkout.env())
    assert '"status"' in said, said


def _command_lines(text: str) -> list[list[str]]:
    section = text.split("## Command line", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    joined = section.replace("\\\n", " ")
    return [line.split("#")[0].split() for line in joined.splitlines() if line.startswith("cdb-")]


def test_every_flag_the_readme_lists_is_in_that_commands_help() -> None:
    commands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    listed = _command_lines(README.read_text())
    assert {words[1] for words in listed} == set(commands), "README and the CLI list other commands"
    for words in listed:
        command, *rest = words[1:]
        help_text = commands[command].format_help()
        for flag in re.findall(r"--[a-z][a-z-]*", " ".join(rest)):
            assert flag in help_text, f"`cdb-service {command} --help` does not list {flag}"
