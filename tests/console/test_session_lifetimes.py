"""Production refuses console sessions that outlive a working day or an unattended hour:
`cdb-service serve` stops before it listens, with one line naming the setting."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cdb_service.settings import Settings
from tests.support.nginx import free_port
from tests.support.service_process import executable, make_pki

FIVE_YEARS_S = 5 * 365 * 86_400


def _production(root: Path, **more: str) -> dict[str, str]:
    """Everything else a production start needs, so that the sessions are its one problem."""
    pki = make_pki(root / "pki", ())
    (root / "keys.json").write_text("")
    return {
        "PATH": os.environ["PATH"], "CDB_PROFILE": "prod", "CDB_DATA_DIR": str(root / "var"),
        "CDB_OIDC_ISSUER": "https://idp.example.eu", "CDB_AUTO_SEED": "false",
        "CDB_DATABASE_URL": "postgresql://cdb@127.0.0.1:1/cdb",
        "CDB_CLIENT_CA_FILES": json.dumps([str(pki.ca)]),
        "CDB_TLS_CERT_FILE": str(pki.server_cert), "CDB_TLS_KEY_FILE": str(pki.server_key),
        "CDB_SIGNING_KEYS_FILE": str(root / "keys.json"), **more,
    }  # fmt: skip


@pytest.mark.parametrize(("setting", "named"), [
    ("CDB_CONSOLE_ABSOLUTE_TIMEOUT_S", "after sign-in"),
    ("CDB_CONSOLE_IDLE_TIMEOUT_S", "unused"),
])  # fmt: skip
def test_production_refuses_a_five_year_console_session(
    tmp_path: Path, setting: str, named: str
) -> None:
    env = _production(tmp_path, **{setting: str(FIVE_YEARS_S)})
    started = subprocess.run([executable(), "serve", "--port", str(free_port())], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert started.returncode != 0
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert f"{setting}={FIVE_YEARS_S}" in lines[0] and named in lines[0], lines[0]
    assert "Traceback" not in started.stderr


def test_the_bounds_hold_in_production_only_and_a_working_day_is_accepted() -> None:
    prod = {"profile": "prod"}
    assert Settings(**prod).console_session_problems() == []  # type: ignore[arg-type]
    bounded = Settings(console_absolute_timeout_s=12 * 3600, console_idle_timeout_s=3600, **prod)  # type: ignore[arg-type]
    assert bounded.console_session_problems() == []
    long = {"console_absolute_timeout_s": 12 * 3600 + 1, "console_idle_timeout_s": 3601}
    assert len(Settings(**long, **prod).console_session_problems()) == 2  # type: ignore[arg-type]
    assert not any("CONSOLE" in p for p in Settings(**long).prod_problems())  # type: ignore[arg-type]
