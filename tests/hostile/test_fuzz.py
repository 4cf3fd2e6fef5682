"""The app's own OpenAPI document, fuzzed: no answer is a 5xx, and every answer matches
the schema its route declares (the typed contract: entries, pages, look-ups, the feed,
problems; `tests/ops/test_openapi.py` checks that no answer is left untyped).

Schemathesis (PyPI) generates requests for every operation of the committed
`openapi.yaml` (a test elsewhere keeps it equal to the app's). They go over real TLS
with real certificates and bound tokens, as a reader and as an administrator, to a
real service on SQLite and one on PostgreSQL. A bounded number of examples per
operation keeps it within CI's time; `derandomize` makes a failure repeatable.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import PG_ADMIN_URL, _pg_admin
from tests.support.service_process import Service, executable, running_service

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_: Any, value: Any) -> bytes:
    """A batch of one line (`POST /import`); a list is several lines."""
    lines = value if isinstance(value, list) else [value]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


SCHEMA = schemathesis.openapi.from_path(REPO / "openapi.yaml")
EXAMPLES = int(os.environ.get("CDB_FUZZ_EXAMPLES", "25"))


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip


# Each role on one backend: the reader on SQLite, the administrator (who may write) on
# PostgreSQL, the production database. Every operation is fuzzed as both roles and on
# both backends at half the time of the four pairs (the coverage phase's boundary values
# are most of it).
CALLER = {"sqlite": "reader", "postgresql": "admin-de"}


@dataclass
class Target:
    backend: str
    service: Service
    pki: Path
    tokens: dict[str, str]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Target]:  # fmt: skip
    root = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    data = root / "var"
    variables = {"CDB_RATE_LIMITS": "false"}
    database = None
    if request.param == "postgresql":
        database = f"cdb_fuzz_{uuid.uuid4().hex[:8]}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{database}"'))
        base, _, _ = PG_ADMIN_URL.rpartition("/")
        variables["CDB_DATABASE_URL"] = f"{base}/{database}"
    env = {"PATH": os.environ["PATH"], "CDB_DATA_DIR": str(data)} | variables
    subprocess.run([executable(), "dev-token", "--client", "reader"], env=env, check=True,
                   capture_output=True)  # the dev PKI, before the service trusts it  # fmt: skip
    try:
        with running_service(root, variables, ca=data / "pki" / "ca.pem") as service:
            tokens = {who: service.dev_token(who) for who in CALLER.values()}
            yield Target(request.param, service, data / "pki", tokens)
    finally:
        if database:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@pytest.fixture
def caller(served: Target) -> str:
    return CALLER[served.backend]


@pytest.fixture(scope="module")
def sessions(served: Target) -> Iterator[dict[str, requests.Session]]:
    """One kept-alive connection per caller: a TLS handshake per generated request
    would be most of the suite's time (the coverage phase sends a few hundred)."""
    opened: dict[str, requests.Session] = {}
    for who in ("reader", "admin-de"):
        session = requests.Session()
        session.verify = str(served.pki / "ca.pem")
        session.cert = (str(served.pki / f"client-{who}.pem"),
                        str(served.pki / f"client-{who}-key.pem"))  # fmt: skip
        opened[who] = session
    yield opened
    for session in opened.values():
        session.close()


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))  # fmt: skip
def test_no_5xx_and_answers_match_the_schema(
    case: Any, served: Target, caller: str, sessions: dict[str, requests.Session]
) -> None:
    headers = {"Authorization": f"Bearer {served.tokens[caller]}"}
    wait = (case.query or {}).get("wait")
    if isinstance(wait, int) and wait > 1:
        # A long poll waits its full time by design when nothing is written: the contract
        # is the same after one second as after sixty, the suite's time is not.
        case.query["wait"] = 1
    session = sessions[caller]
    response = case.call(base_url=served.service.base_url, session=session, headers=headers,
                         verify=session.verify, cert=session.cert, timeout=60)  # fmt: skip
    case.validate_response(response, checks=CHECKS)
