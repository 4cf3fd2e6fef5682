"""The one-way import rule: no module imports one from a layer above it.

The layers are declared once, in `pyproject.toml` ([tool.importlinter]), and
explained in docs/architecture.md. The second test plants an upward import in a
copy of the package and shows the check names it, so the first cannot pass by
checking nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = str(Path(sys.executable).with_name("lint-imports"))


def _lint(package_parent: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [LINT, "--config", str(config), "--no-cache"],
        cwd=package_parent, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_every_module_imports_only_from_its_own_layer_or_below() -> None:
    result = _lint(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _plant(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """A copy of the package where `module` (a path under it) also has `line`, linted."""
    shutil.copytree(ROOT / "cdb_service", tmp_path / "cdb_service",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    planted = tmp_path / "cdb_service" / module
    planted.write_text(planted.read_text() + f"\n{line}  # upward\n")
    return _lint(tmp_path, tmp_path / "pyproject.toml")


def test_an_upward_import_is_named(tmp_path: Path) -> None:
    result = _plant(tmp_path, "kernel/codes.py", "from cdb_service.registry import kinds")
    assert result.returncode != 0
    assert "cdb_service.kernel.codes -> cdb_service.registry.kinds" in result.stdout


def test_a_kind_that_imports_the_registry_s_http_layer_is_named(tmp_path: Path) -> None:
    # Inside the registry the kinds are the bottom: a kind's declaration must not
    # reach up into the store, the formats or the HTTP layer built from it.
    result = _plant(
        tmp_path, "registry/kinds/spec.py", "from cdb_service.registry.http import answers"
    )
    assert result.returncode != 0
    assert "The registry: http over formats over store over kinds BROKEN" in result.stdout
    assert "cdb_service.registry.kinds.spec -> cdb_service.registry.http.answers" in result.stdout
