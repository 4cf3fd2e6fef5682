"""The operations runbook is run, not just read: each block marked runnable is run as
written, the way an operator on a workstation would paste it, and every other block
says why a test machine cannot run it (tests/support/doc_blocks.py, the README's rule).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.firstrun.conftest import REPO
from tests.support import doc_blocks

RUNBOOK = REPO / "docs" / "operations.md"
BLOCKS = doc_blocks.runnable(RUNBOOK)


def test_every_runbook_block_is_run_or_says_why_not() -> None:
    assert not doc_blocks.unmarked(RUNBOOK), doc_blocks.unmarked(RUNBOOK)


def test_the_runbook_has_runnable_blocks() -> None:
    assert len(BLOCKS) >= 2


def test_a_block_without_a_mark_or_with_an_empty_reason_is_found(tmp_path: Path) -> None:
    """The rule itself: what the two tests above rely on."""
    page = tmp_path / "page.md"
    page.write_text("<!-- runnable -->\n```sh\necho run\n```\n\n"
                    "<!-- not-runnable: needs a cluster -->\n```sh\nkubectl get pods\n```\n\n"
                    "```sh\nsystemctl restart x\n```\n\n"
                    "<!-- not-runnable:  -->\n```sh\nnginx -t\n```\n")  # fmt: skip
    assert doc_blocks.runnable(page) == ["echo run"]
    assert doc_blocks.unmarked(page) == ["page.md:11: systemctl restart x",
                                         "page.md:16: nginx -t"]  # fmt: skip


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
def test_each_runnable_runbook_block_passes_as_written(tmp_path: Path, block: str) -> None:
    """On a workstation: `cdb-service` on the PATH (as the installed release puts it),
    an empty working directory, no `CDB_*` setting but a data folder of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDB_")}
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["CDB_DATA_DIR"] = str(tmp_path / "data")
    doc_blocks.run(block, tmp_path, env)
