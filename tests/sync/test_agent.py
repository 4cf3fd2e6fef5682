"""`cdb-service connector-sync` against a served registry (real TLS, the dev issuer's
client-credentials tokens): a connector 4.x directory gets the package once (atomic
replace, the restart command once), a second `--once` pushes nothing; a tampered package
is refused with one line naming the file, and nothing of it is applied or acknowledged;
a failing target is retried and never acknowledged; an apply whose acknowledgement
failed is acknowledged again without being applied again, also after a restart."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cdb_service.sync import config as agent_config
from cdb_service.sync import state as saved
from cdb_service.sync.agent import Agent, Outcome
from cdb_service.sync.registry_api import RegistryApi
from tests.distribution.test_rollouts import factories_sha
from tests.support import factories
from tests.sync.served import V1, Registry, directory_target, restarts, run_once

pytestmark = pytest.mark.slow


class Recording(httpx.BaseTransport):
    """The network, with every request noted and answers optionally altered: `alter`
    (method, path, response) returns the response the agent gets instead; `lose`
    (method, path) answers a request without it ever reaching the registry (None: sent)."""

    def __init__(self, inner: httpx.BaseTransport,
                 alter: Callable[[str, str, httpx.Response], httpx.Response] | None = None,
                 lose: Callable[[str, str], httpx.Response | None] | None = None,
                 ) -> None:  # fmt: skip
        self.inner, self.alter, self.lose = inner, alter, lose
        self.calls: list[tuple[str, str, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        lost = self.lose(request.method, request.url.path) if self.lose else None
        if lost is not None:
            self.calls.append((request.method, request.url.path, lost.status_code))
            return lost
        response = self.inner.handle_request(request)
        if self.alter is not None:
            response.read()
            response = self.alter(request.method, request.url.path, response)
        self.calls.append((request.method, request.url.path, response.status_code))
        return response

    def acknowledgements(self, status: int | None = None) -> int:
        return sum(1 for method, path, code in self.calls
                   if method == "POST" and path.endswith("/acknowledgements")
                   and (status is None or code == status))  # fmt: skip


def _agent(path: Path, alter: Any = None, lose: Any = None) -> tuple[Agent, Recording]:
    loaded = agent_config.load(path)
    recording = Recording(httpx.HTTPTransport(verify=loaded.tls.ssl_context()), alter, lose)
    return Agent(loaded, RegistryApi(loaded, transport=recording)), recording


def _refused_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "package refused" in line]


def _acknowledged_before(registry: Registry, party: str, digest: str, name: str) -> bool:
    """Posting the same acknowledgement again answers 200 only if it was recorded."""
    body = {"package_digest": digest, "target": {"kind": "connector4-dir", "name": name},
            "applied_at": "2026-01-01T00:00:00+00:00", "answer": "probe"}  # fmt: skip
    with registry.client("admin-fr") as fr:
        again = fr.post(f"{V1}/access-points/{party}/acknowledgements", json=body)
    assert again.status_code in (200, 201), again.text
    return again.status_code == 200


def test_a_directory_gets_the_package_once_and_a_second_run_pushes_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    registry.plain_party("fr-sync-once")
    targets, directory, counter = directory_target(tmp_path)
    path = registry.agent_config(tmp_path, "fr-sync-once", targets)

    first = run_once(path)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["ok"] and len(summary["applied"]) == len(summary["acknowledged"]) == 1
    digest = summary["applied"][0].rpartition("@")[2]
    package = registry.package("fr-sync-once")
    assert package.headers["CDB-Package-Digest"] == digest
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(package.content)).read("manifest.json"))
    # What the connector reads is the package's, byte for byte; no temporary file is left.
    assert sorted(p.name for p in directory.iterdir()) == [
        "connectorstore.jks", "pmode.xml", "truststore.jks"]  # fmt: skip
    pmode = (directory / "pmode.xml").read_bytes()
    assert hashlib.sha256(pmode).hexdigest() == manifest["files"]["pmode.xml"]["sha256"]
    assert restarts(counter) == 1
    assert _acknowledged_before(registry, "fr-sync-once", digest, "c4")
    stamps = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}

    second = run_once(path)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout.strip().splitlines()[-1])
    assert (again["applied"], again["acknowledged"]) == ([], [])
    assert restarts(counter) == 1, "the restart command ran again for the same package"
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == stamps
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["targets"]["connector4-dir:c4"]["applied"]["digest"] == digest


def _rezip(body: bytes, change: Callable[[dict[str, bytes]], None]) -> bytes:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    change(files)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def _flip(member: str) -> Callable[[dict[str, bytes]], None]:
    def change(files: dict[str, bytes]) -> None:
        data = bytearray(files[member])
        data[len(data) // 2] ^= 0x01  # one bit of one byte
        files[member] = bytes(data)

    return change


def _tampering(member: str) -> Callable[[str, str, httpx.Response], httpx.Response]:
    def alter(method: str, path: str, response: httpx.Response) -> httpx.Response:
        if method != "GET" or "/packages/" not in path or response.status_code != 200:
            return response
        headers = {k: v for k, v in response.headers.items()
                   if k.lower() not in ("content-length", "content-encoding")}  # fmt: skip
        return httpx.Response(200, headers=headers,
                              content=_rezip(response.content, _flip(member)))  # fmt: skip

    return alter


@pytest.mark.parametrize("member", ["pmode.xml", "manifest.json"])
def test_a_tampered_package_is_refused_naming_the_file_and_nothing_is_applied(
    registry: Registry, tmp_path: Path, member: str
) -> None:
    party = f"fr-sync-tamper-{member.split('.')[0]}"
    registry.plain_party(party)
    targets, directory, counter = directory_target(tmp_path)
    agent, network = _agent(registry.agent_config(tmp_path, party, targets), _tampering(member))
    outcome = agent.round()
    assert not outcome.ok
    assert len(outcome.problems) == 1 and outcome.problems[0].startswith(
        f"package refused: {member}: "), outcome.problems  # fmt: skip
    assert list(directory.iterdir()) == [] and restarts(counter) == 0
    assert network.acknowledgements() == 0
    assert saved.load(tmp_path / "state.json", party).targets == {}


def test_a_package_signed_by_a_key_the_jwks_does_not_list_is_refused_in_one_line(
    registry: Registry, tmp_path: Path
) -> None:
    from joserfc.jwk import ECKey

    registry.plain_party("fr-sync-wrong-key")
    other = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"})
    other.ensure_kid()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [other.as_dict(private=False)]}))
    targets, directory, counter = directory_target(tmp_path)
    path = registry.agent_config(tmp_path, "fr-sync-wrong-key", targets, jwks=str(jwks))
    done = run_once(path)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "package refused: manifest.json: signed by key" in lines[0], lines
    assert "Traceback" not in done.stderr
    assert list(directory.iterdir()) == [] and restarts(counter) == 0
    assert json.loads(done.stdout.splitlines()[-1])["acknowledged"] == []


def test_a_failing_target_is_retried_with_backoff_and_never_acknowledged(
    registry: Registry, tmp_path: Path
) -> None:
    registry.plain_party("fr-sync-failing")
    targets, _, counter = directory_target(tmp_path)
    path = registry.agent_config(tmp_path, "fr-sync-failing", targets, retry_base_seconds=60,
                                 retry_max_seconds=600, poll_seconds=600)  # fmt: skip
    fail = Path(f"{counter}.fail")
    fail.touch()
    agent, network = _agent(path)

    first = agent.round()
    assert [p.split(":")[0] for p in first.problems] == ["apply connector4-dir"]
    assert "did not come back" in first.problems[0]
    mine = agent.state.targets["connector4-dir:c4"]
    assert (mine.failures, mine.applied) == (1, None)
    # Running on, the agent waits for the backoff (30 to 60 s) before it tries again.
    waiting = agent.round(honour_backoff=True)
    assert waiting.problems == ["apply connector4-dir:c4: waiting to retry"]
    assert agent.state.targets["connector4-dir:c4"].failures == 1
    assert 30 <= agent.wake_in(waiting) <= 60
    # A retry moment gone by (nothing was left to retry) does not make the loop spin.
    real = agent.clock
    agent.clock = lambda: real() + dt.timedelta(seconds=120)
    assert agent.wake_in(Outcome()) == pytest.approx(600, abs=5)
    agent.clock = real
    # Tried again (as --once does), still failing: the delay grows.
    agent.round()
    assert agent.state.targets["connector4-dir:c4"].failures == 2
    assert network.acknowledgements() == 0, "a failed apply was acknowledged"

    fail.unlink()
    done = agent.round()
    assert done.ok, done.problems
    assert restarts(counter) == 1 and len(done.acknowledged) == 1
    # Running the current package now, it also says it holds the next one (the
    # certificate's end): a scheduled acknowledgement, never sent while it was failing.
    assert len(done.scheduled) == 1 and network.acknowledgements(201) == 2
    assert agent.state.targets["connector4-dir:c4"].failures == 0


def _losing_acknowledgements(times: int) -> Callable[[str, str], httpx.Response | None]:
    left = [times]

    def lose(method: str, path: str) -> httpx.Response | None:
        if method == "POST" and path.endswith("/acknowledgements") and left[0] > 0:
            left[0] -= 1
            return httpx.Response(503, json={"title": "Service Unavailable", "status": 503},
                                  headers={"Content-Type": "application/problem+json"})  # fmt: skip
        return None

    return lose


def test_an_apply_whose_acknowledgement_failed_is_acknowledged_again_not_applied_again(
    registry: Registry, tmp_path: Path
) -> None:
    """The first acknowledgement is lost (a 503 from a proxy: the registry never saw it); the
    agent stops; a new agent process on the same state file acknowledges, and does not
    push the package again."""
    registry.plain_party("fr-sync-ack")
    targets, _, counter = directory_target(tmp_path)
    path = registry.agent_config(tmp_path, "fr-sync-ack", targets)
    agent, network = _agent(path, lose=_losing_acknowledgements(1))
    first = agent.round()
    assert [p.split(":")[0] for p in first.problems] == ["acknowledge connector4-dir"]
    assert restarts(counter) == 1 and network.acknowledgements(503) == 1
    pending = agent.state.targets["connector4-dir:c4"].unacknowledged
    assert len(pending) == 1

    again, network = _agent(path)  # a restart: only the state file carries over
    second = again.round()
    assert second.ok, second.problems
    assert second.applied == [] and len(second.acknowledged) == 1
    assert restarts(counter) == 1, "the package was pushed again"
    assert network.acknowledgements(201) == 1
    assert again.state.targets["connector4-dir:c4"].unacknowledged == []
    applied_at = pending[0].applied_at
    assert _acknowledged_before(registry, "fr-sync-ack", pending[0].digest, "c4")
    assert applied_at == again.state.targets["connector4-dir:c4"].applied.applied_at  # type: ignore[union-attr]


def test_an_agent_whose_clock_runs_ahead_switches_once_and_does_not_switch_back(
    registry: Registry, tmp_path: Path
) -> None:
    """The agent's clock is two minutes ahead of the registry's. It switches to the held
    package at its own effective_from; the registry, behind, still serves the package
    before it as current: the agent does not push that one back."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    old, new = factories.certificate_pem(60, "old"), factories.certificate_pem(400, "new")
    registry.create_party("fr-sync-clock", [
        {"use": "encryption", "pem": old, "accept_until": (now + dt.timedelta(days=9)).isoformat()},
        {"use": "encryption", "pem": new, "accept_from": now.isoformat(),
         "use_from": (now + dt.timedelta(seconds=60)).isoformat()},
    ])  # fmt: skip
    targets, directory, counter = directory_target(tmp_path)
    loaded = agent_config.load(registry.agent_config(tmp_path, "fr-sync-clock", targets))
    ahead = Agent(loaded, clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))

    first = ahead.round()
    assert first.ok, first.problems
    assert restarts(counter) == 2, "the current package, then the held one at its moment"
    switched = ahead.state.targets["connector4-dir:c4"].applied
    assert switched is not None and switched.effective_from is not None
    pmode = (directory / "pmode.xml").read_bytes()
    second = ahead.round()
    assert second.ok and second.applied == [], second.problems
    assert restarts(counter) == 2 and (directory / "pmode.xml").read_bytes() == pmode
    assert registry.package("fr-sync-clock").headers["CDB-Package-Digest"] != switched.digest


def _losing_the_acknowledgements(numbers: set[int]) -> Callable[[str, str], httpx.Response | None]:
    """Loses the acknowledgements posted n-th (1 the first) for n in `numbers`."""
    seen = [0]

    def lose(method: str, path: str) -> httpx.Response | None:
        if method != "POST" or not path.endswith("/acknowledgements"):
            return None
        seen[0] += 1
        return _losing_acknowledgements(1)(method, path) if seen[0] in numbers else None

    return lose


def test_the_held_package_is_acknowledged_as_scheduled_once_and_upgraded_when_applied(
    registry: Registry, tmp_path: Path
) -> None:
    """The agent holds the package of a switch two minutes ahead and says so, per target,
    once: the first try is lost (retried at the next round), a restart does not say it
    again. A switch whose acknowledgements all fail still happens; the applied
    acknowledgement then upgrades the scheduled row."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    use_from = now + dt.timedelta(seconds=120)
    old, new = factories.certificate_pem(60, "old"), factories.certificate_pem(400, "new")
    registry.create_party("fr-sync-held", [
        {"use": "encryption", "pem": old, "accept_until": (now + dt.timedelta(days=9)).isoformat()},
        {"use": "encryption", "pem": new, "accept_from": now.isoformat(),
         "use_from": use_from.isoformat()},
    ], service="urn:fr-sync-held")  # fmt: skip
    targets, _, counter = directory_target(tmp_path)
    path = registry.agent_config(tmp_path, "fr-sync-held", targets)
    agent, network = _agent(path, lose=_losing_the_acknowledgements({2}))
    first = agent.round()
    assert [p.split(":")[0] for p in first.problems] == ["acknowledge scheduled connector4-dir"]
    assert first.scheduled == [] and restarts(counter) == 1
    held = agent.held
    assert held is not None and held.effective_from == use_from
    second = agent.round()
    assert second.ok and second.scheduled == [f"connector4-dir:c4@{held.digest}"], second
    assert agent.state.targets["connector4-dir:c4"].scheduled == held.digest

    [row] = [r for r in registry.rollouts() if r["party"] == "fr-sync-held"
             and r["kind"] == "certificate" and "used" in r["changes"]
             and r["certificate"]["sha256"] == factories_sha(new)]  # fmt: skip
    [line] = row["access_points"]
    assert (line["state"], line["acknowledged_digest"]) == ("scheduled", held.digest)
    assert (row["confirmed"], row["scheduled"], row["access_points_total"]) == (1, 1, 1)

    again, network = _agent(path)  # a restart: said once, not again
    assert again.round().ok and network.acknowledgements() == 0 and restarts(counter) == 1

    def ahead() -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)

    loaded = agent_config.load(path)
    unheard = Recording(httpx.HTTPTransport(verify=loaded.tls.ssl_context()),
                        lose=_losing_the_acknowledgements(set(range(1, 99))))  # fmt: skip
    switching = Agent(loaded, RegistryApi(loaded, transport=unheard), clock=ahead)
    switched = switching.round()
    assert restarts(counter) == 2, "the registry's refusals held up the switch"
    assert switched.applied == [f"connector4-dir:c4@{held.digest}"], switched
    assert unheard.acknowledgements(503) >= 1

    told = Agent(loaded, clock=ahead).round()
    assert told.acknowledged == [f"connector4-dir:c4@{held.digest}"], told
    kept = {a["package_digest"]: a for a in registry.acknowledgements("fr-sync-held")}
    assert len(kept) == 2 and kept[held.digest]["scheduled_for"] is None
    assert restarts(counter) == 2
