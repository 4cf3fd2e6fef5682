"""The production profile refuses settings that would weaken its edge (issue 30), each
with one line naming the setting and why; a sound production configuration passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cdb_service.settings import Profile, Settings

SOUND: dict[str, Any] = {
    "profile": Profile.PROD,
    "database_url": "postgresql://cdb@db/cdb",
    "oidc_issuer": "https://login.example.eu/realms/judex",
    "public_url": "https://cdb.example.eu",
    "client_ca_files": [Path("/etc/cdb/client-cas.pem")],
    "tls_cert_file": Path("/etc/cdb/tls.crt"),
    "tls_key_file": Path("/etc/cdb/tls.key"),
    "signing_keys_file": Path("/etc/cdb/signing-keys.json"),
    "trusted_proxies": ["10.1.2.3", "10.1.2.0/24", "fd00::/64"],
}

RISKY = [
    ({"oidc_issuer": "http://login.example.eu/realms/judex"}, "CDB_OIDC_ISSUER"),
    ({"public_url": ""}, "CDB_PUBLIC_URL"),
    ({"public_url": "http://cdb.example.eu"}, "CDB_PUBLIC_URL"),
    ({"require_bound_tokens": False}, "CDB_REQUIRE_BOUND_TOKENS"),
    ({"rate_limits": False}, "CDB_RATE_LIMITS"),
    ({"trusted_proxies": ["0.0.0.0/0"]}, "CDB_TRUSTED_PROXIES"),
    ({"trusted_proxies": ["::/0"]}, "CDB_TRUSTED_PROXIES"),
    ({"trusted_proxies": ["10.0.0.0/8"]}, "CDB_TRUSTED_PROXIES"),
    ({"max_header_bytes": 1_048_576}, "CDB_MAX_HEADER_BYTES"),
    ({"max_header_field_bytes": 65_536}, "CDB_MAX_HEADER_FIELD_BYTES"),
    ({"max_header_fields": 10_000}, "CDB_MAX_HEADER_FIELDS"),
    ({"header_timeout_s": 86_400}, "CDB_HEADER_TIMEOUT_S"),
    ({"body_timeout_s": 3600}, "CDB_BODY_TIMEOUT_S"),
    ({"keepalive_timeout_s": 1e6}, "CDB_KEEPALIVE_TIMEOUT_S"),
    ({"max_connections": 1_000_000}, "CDB_MAX_CONNECTIONS"),
]


def test_a_sound_production_configuration_passes() -> None:
    assert Settings(**SOUND).prod_problems() == []


@pytest.mark.parametrize(("change", "setting"), RISKY, ids=[str(c) for c, _ in RISKY])
def test_each_risky_setting_is_one_line_naming_it(change: dict[str, Any], setting: str) -> None:
    problems = Settings(**(SOUND | change)).risky_edge_settings()
    assert len(problems) == 1, problems
    assert problems[0].startswith(setting) and ":" in problems[0], problems[0]
    assert Settings(**(SOUND | change)).prod_problems() == problems


def test_dev_accepts_them() -> None:
    assert (
        Settings(**(SOUND | {"profile": Profile.DEV, "rate_limits": False})).prod_problems() == []
    )
