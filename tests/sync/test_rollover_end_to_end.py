"""A full certificate rollover, end to end (issue 28, "Must show"), on PostgreSQL.

A served registry (real TLS, the dev issuer's client-credentials tokens) and two agents,
each a `cdb-service connector-sync` process of FR's access point: one for a connector
4.x directory, one for a Domibus gateway (the stand-in of `tests/support/standins/`,
written from Domibus's published `/ext` REST contract). FR adds a new encryption
certificate, accepted now and used a few seconds later. Both agents apply the package
that accepts it and confirm it; both fetch the package as of `use_from` ahead, verify it
and say they hold it scheduled for `use_from`: the rollout of the switch shows 2/2
(scheduled) before `use_from`. At `use_from` they switch, by themselves, to that package
and acknowledge it applied: 2/2 confirmed (the party's alias now names the new
certificate); the old certificate stays in the truststore until its
`accept_until`; every package verifies offline; each push happened exactly once.

Printed (pytest -s): the time from `use_from` to the last acknowledgement, and the
peak memory of an agent's `--once` run.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from joserfc.jwk import KeySet

from cdb_service.distribution.package_check import verify_package
from tests.distribution.test_packages import NO_KEYTOOL, keytool
from tests.support import factories
from tests.support.live import pg_database
from tests.support.service_process import executable
from tests.support.standins.domibus import DomibusStandIn
from tests.sync.served import Registry, directory_target, http_target, restarts, serving

# Serial: the agents must fetch, verify and apply within USE_IN_S of the change, which a
# machine busy with the parallel part of the suite does not promise.
pytestmark = [pytest.mark.slow, pytest.mark.serial, pytest.mark.postgres_only,
              pytest.mark.skipif(shutil.which("keytool") is None, reason=NO_KEYTOOL)]  # fmt: skip
PARTY = "fr-ap-rollover"
USE_IN_S = 30  # from the certificate's addition to its use_from
PEAK_RSS = textwrap.dedent("""
    import resource, subprocess, sys
    done = subprocess.run(sys.argv[1:])
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
    sys.exit(done.returncode)
""")


def _sha(pem: str) -> str:
    return x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with pg_database() as url, serving(tmp_path_factory.mktemp("registry"), url) as served:
        yield served


def _domibus_target(standin: DomibusStandIn, folder: Path) -> str:
    return http_target(folder, "domibus", "gw-1", standin.base_url, standin.username,
                       standin.password, truststore_api=True)  # fmt: skip


def _once_measured(config: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """An agent's `--once` run, and its peak resident memory (KiB), read by a parent of
    its own (RUSAGE_CHILDREN of a process whose only child is the agent)."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, executable(), "connector-sync", "--config",
         str(config), "--once"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return done, int(done.stderr.strip().splitlines()[-1])


def _until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = condition()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _row(registry: Registry, sha: str, change: str) -> dict[str, Any] | None:
    rows = [r for r in registry.rollouts() if r["party"] == PARTY and r["kind"] == "certificate"]
    return next((r for r in rows if r["certificate"]["sha256"] == sha
                 and change in r["changes"]), None)  # fmt: skip


def _confirmed(registry: Registry, sha: str, change: str, state: str = "confirmed") -> bool:
    """2/2 confirmed, each target's line in `state` (scheduled: held, not applied yet)."""
    row = _row(registry, sha, change)
    return (row is not None and (row["confirmed"], row["access_points_total"]) == (2, 2)
            and {a["state"] for a in row["access_points"]} == {state})  # fmt: skip


def test_a_rollover_reaches_both_access_points_on_time_and_once(
    registry: Registry, tmp_path: Path
) -> None:
    old = factories.certificate_pem(60, "fr-ap-2026")
    new = factories.certificate_pem(400, "fr-ap-2027")
    party = registry.create_party(PARTY, [{"use": "encryption", "pem": old}])
    c4_folder, gw_folder = tmp_path / "agent-c4", tmp_path / "agent-gw"
    c4_toml, directory, counter = directory_target(c4_folder)
    c4_config = registry.agent_config(c4_folder, PARTY, c4_toml)
    domibus = DomibusStandIn()
    with domibus:
        gw_folder.mkdir()
        gw_config = registry.agent_config(gw_folder, PARTY, _domibus_target(domibus, gw_folder))

        # Before the rollover: each agent, run once, applies the package in force.
        first, peak_kib = _once_measured(c4_config)
        assert first.returncode == 0, first.stderr
        first_gw, _ = _once_measured(gw_config)
        assert first_gw.returncode == 0, first_gw.stderr
        assert restarts(counter) == 1 and len(domibus.calls_to("POST", "/ext/pmode")) == 1

        # Both agents run on; FR adds the new certificate: accepted now, used in seconds.
        logs = [folder / "agent.log" for folder in (c4_folder, gw_folder)]
        agents = [subprocess.Popen([executable(), "connector-sync", "--config", str(config)],
                                   stdout=log.open("wb"), stderr=subprocess.STDOUT)
                  for config, log in zip((c4_config, gw_config), logs, strict=True)]  # fmt: skip
        try:
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            use_from = now + dt.timedelta(seconds=USE_IN_S)
            accept_until = now + dt.timedelta(days=20)
            registry.update_party(party, [
                {"use": "encryption", "pem": old, "accept_until": accept_until.isoformat()},
                {"use": "encryption", "pem": new, "accept_from": now.isoformat(),
                 "use_from": use_from.isoformat()},
            ])  # fmt: skip

            # Both access points confirm they accept the new certificate before it is used.
            _until(lambda: _confirmed(registry, _sha(new), "accepted"), USE_IN_S - 2,
                   "2/2 confirmations of the accepted certificate")  # fmt: skip
            assert dt.datetime.now(dt.UTC) < use_from, "confirmed only after use_from"
            # And that they hold the package that switches it into use, scheduled for use_from.
            _until(lambda: _confirmed(registry, _sha(new), "used", "scheduled"), USE_IN_S - 2,
                   "2/2 scheduled confirmations of the switch")  # fmt: skip
            assert dt.datetime.now(dt.UTC) < use_from, "confirmed only after use_from"
            used = _row(registry, _sha(new), "used")
            assert used is not None and used["pending"] is True and used["scheduled"] == 2
            switch = registry.package(PARTY, at=use_from.isoformat()).headers["CDB-Package-Digest"]
            assert {
                (a["acknowledged_digest"], a["scheduled_for"], a["applied_at"])
                for a in used["access_points"]
            } == {(switch, use_from.isoformat(), None)}
            before = keytool(directory / "truststore.jks", "JKS", "changeit")
            assert before[PARTY] == _sha(old) and _sha(new) in before.values()
            assert restarts(counter) == 2

            # At use_from both switch, and confirm.
            _until(lambda: dt.datetime.now(dt.UTC) >= use_from, USE_IN_S + 5, "use_from")
            _until(lambda: _confirmed(registry, _sha(new), "used"), 60,
                   "2/2 applied confirmations of the switch")  # fmt: skip
            used = _row(registry, _sha(new), "used")
            assert used is not None and (used["pending"], used["scheduled"]) == (False, 0)
        finally:
            for agent in agents:
                agent.send_signal(signal.SIGTERM)
            codes = [agent.wait(timeout=30) for agent in agents]
        assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]

        after = keytool(directory / "truststore.jks", "JKS", "changeit")
        assert after[PARTY] == _sha(new), "the party's alias does not name the new certificate"
        # The old certificate stays accepted (in the store, under an alias of its own).
        assert after[f"{PARTY}_{_sha(old)[:8]}"] == _sha(old)
        # The gateway switched as well: its truststore names the same certificates.
        assert domibus.truststore is not None
        (gw_folder / "domibus-truststore.jks").write_bytes(domibus.truststore)
        assert keytool(gw_folder / "domibus-truststore.jks", "JKS", "changeit") == after

        # Each push exactly once: three packages (before, accepted, used), three pushes,
        # three applied acknowledgements per target (the switch's scheduled one upgraded
        # in place). Besides, per target, two packages held and never applied: the next
        # one before the rollover (the old certificate's end, which the edit replaced)
        # and the next one now (the old certificate's accept_until).
        assert restarts(counter) == 3
        every = registry.acknowledgements(PARTY)
        acks = [a for a in every if a["scheduled_for"] is None]
        per_target = {(a["target"]["name"], a["package_digest"]) for a in acks}
        assert len(acks) == len(per_target) == 6, acks
        assert {name for name, _ in per_target} == {"c4", "gw-1"}
        held = [(a["target"]["name"], a["package_digest"]) for a in every
                if a["scheduled_for"] is not None]  # fmt: skip
        assert sorted(name for name, _ in held) == ["c4", "c4", "gw-1", "gw-1"], every
        assert not set(held) & per_target, "an applied package still shown as scheduled"
        last = max(dt.datetime.fromisoformat(a["received_at"]) for a in acks
                   if a["package_digest"] == switch)  # fmt: skip
        switched_s = (last - use_from).total_seconds()
        uploads = domibus.calls_to("POST", "/ext/pmode")
        assert len(uploads) == 3, [c.path for c in domibus.calls]
        assert len(domibus.calls_to("POST", "/ext/truststore")) == 3
        assert domibus.current is not None
        assert domibus.current.content == (directory / "pmode.xml").read_bytes()

    # Every package verifies offline, with the registry's published keys.
    keys = KeySet.import_key_set(registry.jwks())  # type: ignore[arg-type]
    for at in (now - dt.timedelta(seconds=1), now + dt.timedelta(seconds=1), use_from):
        got = registry.package(PARTY, at=at.isoformat())
        assert got.status_code == 200, got.text
        assert verify_package(got.content, keys).ok
    current = registry.package(PARTY)
    with zipfile.ZipFile(io.BytesIO(current.content)) as archive:
        assert archive.read("pmode.xml") == (directory / "pmode.xml").read_bytes()
        assert archive.read("truststore.jks") and archive.read("connectorstore.jks")

    print(
        f"\nuse_from to the last acknowledgement: {switched_s:.2f} s (the registry's "
        f"received_at); agent --once peak RSS: {peak_kib / 1024:.1f} MiB"
    )
