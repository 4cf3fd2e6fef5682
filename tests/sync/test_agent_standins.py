"""The agent (`cdb-service connector-sync`) against a served registry and the stand-ins
for Domibus and connector-ng, failing, slow or refusing: it retries, never pushes a
package twice, never acknowledges what failed.

The stand-ins (`tests/support/standins/`) are written from the published REST
contracts: Domibus's `/ext` resources (Domibus 5.1, Domibus-MSH-ext-services-delegate,
eu.domibus.ext.rest: PModeFileExtResource `POST /ext/pmode` multipart `file` +
`description`, `GET /ext/pmode/current` → PModeArchiveInfoDTO `{id, configurationDate,
username, description}`, HTTP Basic, 401 for a wrong password; mirrored at
https://github.com/betagouv/domibus) and connector-ng 7.0's
(https://github.com/e-CODEX/connector-ng, newest stored version: ConnectorAuthenticationApi
`POST /api/v1/auth/login` → `{accessToken}`, 401 for bad credentials;
ConnectorProcessingModeAdminController `POST /api/v1/admin/processing-modes` multipart
`processingModeFile`, `truststore.truststoreFile`, `description`,
`businessDomainIdentifier`, `truststore.password` → 201 ConnectorProcessingModeDto
`{uuid, description, content, businessDomainIdentifier, ...}`, 409 for a second one in a
business domain (ConnectorRegisterProcessingModeService at c2a08323); `GET` of the same
path, the list of them; `GET …/{uuid}`; `PATCH …/{uuid}/truststore` multipart
`truststoreFile`, `password` → 200 (ConnectorUpdateProcessingModeTruststoreIT)).

Each round here is what one `--once` run does (`honour_backoff=False`: the schedule that
runs it is its backoff); what the registry recorded is read back from
`GET /api/v1/access-points/{party}/acknowledgements`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from cdb_service.sync import config as agent_config
from cdb_service.sync.agent import Agent
from tests.support import factories
from tests.support.standins import Call
from tests.support.standins.connector_ng import ConnectorNgStandIn
from tests.support.standins.domibus import DomibusStandIn
from tests.sync.served import Registry, http_target, run_once

pytestmark = pytest.mark.slow

MODES = "/api/v1/admin/processing-modes"
LOGIN = "/api/v1/auth/login"


def _applied_acks(registry: Registry, party: str) -> list[dict[str, Any]]:
    """The acknowledgements the registry recorded as applied (not merely scheduled)."""
    return [a for a in registry.acknowledgements(party) if a["scheduled_for"] is None]


def _steps(calls: list[Call]) -> list[tuple[str, str, int | None]]:
    return [(c.method, c.path, c.status) for c in calls]


def _domibus_agent(
    registry: Registry, folder: Path, party: str, domibus: DomibusStandIn,
    password: str | None = None, timeout_s: float = 5,
) -> tuple[Agent, Path]:  # fmt: skip
    targets = http_target(folder, "domibus", "gw1", domibus.base_url, domibus.username,
                          password or domibus.password, timeout_seconds=timeout_s)  # fmt: skip
    path = registry.agent_config(folder, party, targets)
    return Agent(agent_config.load(path)), path


def _ng_agent(registry: Registry, folder: Path, party: str, connector: ConnectorNgStandIn,
              password: str | None = None, timeout_s: float = 5) -> Agent:  # fmt: skip
    targets = http_target(folder, "connector-ng", "ng1", connector.base_url,
                          connector.username, password or connector.password,
                          business_domain="lane1", timeout_seconds=timeout_s)  # fmt: skip
    return Agent(agent_config.load(registry.agent_config(folder, party, targets)))


@pytest.mark.parametrize(
    ("where", "failing", "uploads"),
    [("every-call", {}, [200]),
     ("the-upload", {"path": "/ext/pmode", "method": "POST"}, [500, 500, None, 200])],
)  # fmt: skip
def test_a_failing_domibus_is_retried_each_round_and_acknowledged_once_it_took_the_package(
    registry: Registry, tmp_path: Path, where: str, failing: dict[str, str],
    uploads: list[int | None],
) -> None:  # fmt: skip
    """Domibus answers 500 twice, then drops the connection (every call, or the upload
    only); each round tries again, nothing is acknowledged meanwhile; the fourth round
    uploads the PMode once and acknowledges it with Domibus's current PMode id."""
    party = f"fr-sync-gw-{where}"
    registry.plain_party(party)
    with DomibusStandIn() as domibus:
        agent, _ = _domibus_agent(registry, tmp_path, party, domibus)
        domibus.fail_next(2, "500", **failing)  # type: ignore[arg-type]
        domibus.fail_next(1, "drop", **failing)  # type: ignore[arg-type]
        for round_number, said in enumerate(["HTTP 500", "HTTP 500", "could not be reached"], 1):
            outcome = agent.round()
            assert (outcome.applied, outcome.acknowledged, outcome.scheduled) == ([], [], [])
            [problem] = outcome.problems
            assert problem.startswith("apply domibus:gw1: Domibus gw1 ") and said in problem
            assert agent.state.targets["domibus:gw1"].failures == round_number
            assert registry.acknowledgements(party) == [], "a failed apply was acknowledged"
        assert domibus.pmodes == []

        done = agent.round()
        assert done.ok, done.problems
        [applied] = done.applied
        digest = applied.rpartition("@")[2]
        assert done.acknowledged == [applied] == [f"domibus:gw1@{digest}"]
        assert [c.status for c in domibus.calls_to("POST", "/ext/pmode")] == uploads
        [pmode] = domibus.pmodes
        assert digest[:12] in pmode.description
        [ack] = _applied_acks(registry, party)
        assert (ack["package_digest"], ack["target"]) == (digest, {"kind": "domibus",
                                                                   "name": "gw1"})  # fmt: skip
        assert ack["answer"]["pmode_current"]["id"] == pmode.id == 1
        assert ack["answer"]["pmode_uploaded"] is True

        seen = len(domibus.calls)
        again = agent.round()
        assert again.ok and (again.applied, again.acknowledged) == ([], []), again
        assert len(domibus.calls) == seen, "a further round called Domibus again"
        assert len(_applied_acks(registry, party)) == 1


def test_an_upload_answered_too_late_is_not_uploaded_again(
    registry: Registry, tmp_path: Path
) -> None:
    """Domibus stores the PMode but answers after the target's timeout: the retry reads
    the current PMode, finds this package's description, and uploads nothing."""
    party = "fr-sync-gw-slow"
    registry.plain_party(party)
    with DomibusStandIn() as domibus:
        agent, _ = _domibus_agent(registry, tmp_path, party, domibus, timeout_s=1)
        domibus.answer_late(5.0, path="/ext/pmode", method="POST")
        first = agent.round()
        assert first.problems == [
            "apply domibus:gw1: Domibus gw1 gave no answer within 1 s (uploading the PMode)"
        ]
        assert registry.acknowledgements(party) == []
        assert len(domibus.pmodes) == 1, "the stand-in did not store the late upload"

        second = agent.round()  # Domibus still as slow: only its upload answers late
        assert second.ok, second.problems
        digest = second.applied[0].rpartition("@")[2]
        assert [p.id for p in domibus.pmodes if digest[:12] in p.description] == [1]
        assert len(domibus.calls_to("POST", "/ext/pmode")) == 1
        [ack] = _applied_acks(registry, party)
        assert ack["answer"]["pmode_current"]["id"] == 1
        assert ack["answer"]["pmode_uploaded"] is False


def test_a_wrong_domibus_password_is_one_line_naming_the_target_and_user(
    registry: Registry, tmp_path: Path
) -> None:
    party = "fr-sync-gw-password"
    registry.plain_party(party)
    wrong = "not-the-Domibus-password"
    with DomibusStandIn() as domibus:
        _, path = _domibus_agent(registry, tmp_path, party, domibus, password=wrong)
        done = run_once(path)
        assert done.returncode == 1, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert lines == [
            "cdb-service connector-sync: apply domibus:gw1: Domibus gw1 refused the "
            "credentials of user cdb-sync (reading the current PMode: HTTP 401)"]  # fmt: skip
        assert "Traceback" not in done.stderr
        assert wrong not in done.stdout + done.stderr
        assert json.loads(done.stdout.splitlines()[-1])["acknowledged"] == []
        assert [(c.user, *step) for c, step in zip(domibus.calls, _steps(domibus.calls),
                                                   strict=True)] == [
            ("cdb-sync", "GET", "/ext/pmode/current", 401)]  # fmt: skip
        assert domibus.pmodes == []
    assert registry.acknowledgements(party) == []


def test_connector_ng_gets_one_processing_mode_per_package_after_a_failure(
    registry: Registry, tmp_path: Path
) -> None:
    """The registration answers 500 once; the next round logs in again, registers the
    package once and acknowledges connector-ng's uuid; a further round calls nothing."""
    party = "fr-sync-ng"
    registry.plain_party(party)
    with ConnectorNgStandIn() as connector:
        agent = _ng_agent(registry, tmp_path, party, connector)
        connector.fail_next(1, "500", path=MODES, method="POST")
        first = agent.round()
        [problem] = first.problems
        assert problem.startswith(
            "apply connector-ng:ng1: connector-ng ng1 failed (registering the processing mode)"
        )
        assert registry.acknowledgements(party) == [] and connector.processing_modes == []

        done = agent.round()
        assert done.ok, done.problems
        digest = done.applied[0].rpartition("@")[2]
        assert _steps(connector.calls) == [
            ("POST", LOGIN, 200), ("GET", MODES, 200), ("POST", MODES, 500),
            ("POST", LOGIN, 200), ("GET", MODES, 200), ("POST", MODES, 201)]  # fmt: skip
        assert {c.user for c in connector.calls} == {"cdb-sync"}
        [mode] = connector.processing_modes
        assert digest[:12] in mode.description and mode.business_domain == "lane1"
        [ack] = _applied_acks(registry, party)
        assert (ack["package_digest"], ack["target"]) == (digest, {"kind": "connector-ng",
                                                                   "name": "ng1"})  # fmt: skip
        assert ack["answer"]["processing_mode"]["uuid"] == mode.uuid
        assert ack["answer"]["registered"] is True

        seen = len(connector.calls)
        assert agent.round().applied == [] and len(connector.calls) == seen


def test_a_registration_answered_too_late_is_found_and_not_sent_again(
    registry: Registry, tmp_path: Path
) -> None:
    """connector-ng stores the processing mode, its answer comes after the timeout: the
    retry lists the processing modes, finds this package's, and registers nothing."""
    party = "fr-sync-ng-slow"
    registry.plain_party(party)
    with ConnectorNgStandIn() as connector:
        agent = _ng_agent(registry, tmp_path, party, connector, timeout_s=1)
        connector.answer_late(5.0, path=MODES, method="POST")
        first = agent.round()
        assert first.problems == ["apply connector-ng:ng1: connector-ng ng1 gave no answer "
                                  "within 1 s (registering the processing mode)"]  # fmt: skip
        assert registry.acknowledgements(party) == []

        second = agent.round()
        assert second.ok, second.problems
        [mode] = connector.processing_modes
        assert len(connector.calls_to("POST", MODES)) == 1
        [ack] = _applied_acks(registry, party)
        assert ack["answer"]["processing_mode"]["uuid"] == mode.uuid
        assert ack["answer"]["registered"] is False


def test_a_wrong_connector_ng_password_registers_and_acknowledges_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    party = "fr-sync-ng-password"
    registry.plain_party(party)
    with ConnectorNgStandIn() as connector:
        agent = _ng_agent(registry, tmp_path, party, connector, password="guess-again")
        outcome = agent.round()
        assert outcome.problems == [
            "apply connector-ng:ng1: connector-ng ng1 refused the credentials of user "
            "cdb-sync (logging in: HTTP 401)"]  # fmt: skip
        assert _steps(connector.calls) == [("POST", LOGIN, 401)]
        assert connector.processing_modes == []
    assert registry.acknowledgements(party) == []


def test_connector_ng_takes_the_next_package_into_its_processing_mode_once(
    registry: Registry, tmp_path: Path
) -> None:
    """FR adds a certificate: the party's package changes, its PMode does not. connector-ng
    keeps one processing mode per business domain (a second registration is a 409), so the
    agent replaces that one's truststore in place; the PATCH fails once, the next round
    sends it again, and a further round sends nothing."""
    party_name = "fr-sync-ng-next"
    party = registry.plain_party(party_name)
    with ConnectorNgStandIn() as connector:
        agent = _ng_agent(registry, tmp_path, party_name, connector)
        assert agent.round().ok
        [first] = connector.processing_modes
        first_ack = _applied_acks(registry, party_name)[0]["package_digest"]

        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        registry.update_party(party, [
            {"use": "encryption", "pem": first_pem(party)},
            {"use": "encryption", "pem": factories.certificate_pem(400, party_name + "-new"),
             "accept_from": now.isoformat(),
             "use_from": (now + dt.timedelta(days=30)).isoformat()},
        ])  # fmt: skip
        patch = f"{MODES}/{first.uuid}/truststore"
        connector.fail_next(1, "500", path=patch, method="PATCH")
        failed = agent.round()
        assert failed.problems == [
            f"apply connector-ng:ng1: connector-ng ng1 failed (replacing the truststore of "
            f"processing mode {first.uuid}): HTTP 500: A server error occurred"]  # fmt: skip

        done = agent.round()
        assert done.ok, done.problems
        [mode] = connector.processing_modes
        assert mode.uuid == first.uuid and mode.content == first.content
        digest = done.applied[0].rpartition("@")[2]
        assert (
            digest != first_ack and mode.truststore_filename == f"connectorstore-{digest[:16]}.jks"
        )
        assert [c.status for c in connector.calls_to("PATCH", patch)] == [500, 200]
        assert len(connector.calls_to("POST", MODES)) == 1
        ack = [a for a in _applied_acks(registry, party_name) if a["package_digest"] == digest]
        assert ack[0]["answer"]["updated"] is True

        seen = len(connector.calls)
        assert agent.round().applied == [] and len(connector.calls) == seen


def first_pem(party: dict[str, Any]) -> str:
    return str(party["certificates"][0]["pem"])
