"""The runbook's first command: `cdb-service rotate-signing-key` makes the key set once.

docs/operations.md has the operator make `signing-keys.json` with this command before
anything else; it used to answer "no signing keys at ..." (exit 2). Now: absent, the
file is created with one key and the command says so; present, a new current key is
made and the old one stays listed. A configured file whose folder does not exist is
a mistake (one line, exit 2) and nothing is created anywhere; the default place, in
the data directory, gets its folder.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

from tests.support.service_process import executable


def _rotate(keys: Path | None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "CDB_DATA_DIR": str(tmp_path / "data")}
    if keys is not None:
        env["CDB_SIGNING_KEYS_FILE"] = str(keys)
    return subprocess.run([executable(), "rotate-signing-key"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def test_the_first_run_creates_the_key_set_and_the_next_one_rotates(tmp_path: Path) -> None:
    keys = tmp_path / "signing-keys.json"
    first = _rotate(keys, tmp_path)
    assert first.returncode == 0, first.stderr
    made = json.loads(first.stdout)
    assert made["created"] is True and made["listed"] == [made["current"]]
    assert f"created the signing key set {keys}" in first.stderr
    assert json.loads(keys.read_text())["current"] == made["current"]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600  # a private key: the owner only
    second = _rotate(keys, tmp_path)
    assert second.returncode == 0, second.stderr
    rotated = json.loads(second.stdout)
    assert rotated["created"] is False and rotated["current"] != made["current"]
    assert set(rotated["listed"]) == {made["current"], rotated["current"]}
    assert "created" not in second.stderr


def test_without_a_configured_file_the_key_set_goes_in_the_data_directory(
    tmp_path: Path,
) -> None:
    """The data directory is the service's own: its `keys/` folder is made (0700)."""
    done = _rotate(None, tmp_path)
    assert done.returncode == 0, done.stderr
    keys = tmp_path / "data" / "keys" / "signing-keys.json"
    assert json.loads(done.stdout)["created"] is True and keys.is_file()
    assert stat.S_IMODE(keys.parent.stat().st_mode) == 0o700


def test_a_folder_that_does_not_exist_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    keys = tmp_path / "no-such-folder" / "signing-keys.json"
    done = _rotate(keys, tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert str(keys.parent) in lines[0]
    assert not keys.parent.exists()
