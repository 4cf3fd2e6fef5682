"""The connector-ng target against a stand-in for connector-ng's (7.0) REST API.

connector-ng does not run on these machines; `tests/support/standins/connector_ng.py`
is written from its published sources (https://github.com/e-CODEX/connector-ng:
ConnectorAuthenticationApi `POST /api/v1/auth/login` with `{username, password}` →
`{accessToken, ...}` and 401 for bad credentials; ConnectorProcessingModeAdminApi
`POST /api/v1/admin/processing-modes`, multipart `processingModeXmlFile` (XML),
`truststoreFile`, `metadata` = ConnectorProcessingModeCreationRequest
`{description, businessDomainIdentifier, truststore: {password, description, type}}`,
201 ConnectorProcessingModeDto, 400 ErrorResponse `{status, message}`, 409 for a
business-domain failure).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator

import httpx
import pytest

from cdb_service.sync.connector_ng import ConnectorNgTarget
from cdb_service.sync.target import TargetFailed, VerifiedPackage
from tests.support.standins.connector_ng import ConnectorNgStandIn

PMODE = b'<db:configuration xmlns:db="http://domibus.eu/configuration" party="de_ap"/>'
CONNECTORSTORE_JKS = b"\xfe\xed\xfe\xed" + b"connector trust" * 8
CONNECTORSTORE_P12 = b"0\x82" + b"connector trust p12" * 8
DIGEST = "0123456789ab" + "c" * 52


def package(**files: bytes) -> VerifiedPackage:
    members = {"pmode.xml": PMODE, "connectorstore.jks": CONNECTORSTORE_JKS,
               "connectorstore.p12": CONNECTORSTORE_P12, "truststore.jks": b"gateway"}  # fmt: skip
    members.update(files)
    return VerifiedPackage(
        party="de_ap", owner="DE", digest=DIGEST, effective_from=None,
        files={name: content for name, content in members.items() if content},
        manifest={}, store_password="changeit",
    )  # fmt: skip


@pytest.fixture
def connector() -> Iterator[ConnectorNgStandIn]:
    with ConnectorNgStandIn() as standin:
        yield standin


def target(standin: ConnectorNgStandIn, **changes: object) -> ConnectorNgTarget:
    base = ConnectorNgTarget(
        name="ng1", base_url=standin.base_url, username=standin.username,
        password=standin.password, business_domain="lane1", timeout_s=5.0,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_the_package_becomes_a_processing_mode_of_the_business_domain(
    connector: ConnectorNgStandIn,
) -> None:
    answer = target(connector).apply(package())

    login, listing, create = connector.calls
    # Listed first: a processing mode of this package already there is not sent again.
    assert (listing.method, listing.path, listing.status) == (
        "GET", "/api/v1/admin/processing-modes", 200,
    )  # fmt: skip
    assert (login.method, login.path, login.user, login.status) == (
        "POST", "/api/v1/auth/login", "cdb-sync", 200,
    )  # fmt: skip
    assert (create.path, create.user, create.status) == (
        "/api/v1/admin/processing-modes", "cdb-sync", 201,
    )  # fmt: skip
    assert create.names == {"processingModeXmlFile", "truststoreFile", "metadata"}
    assert create.files["processingModeXmlFile"].content_type == "application/xml"
    assert create.files["processingModeXmlFile"].sha256 == hashlib.sha256(PMODE).hexdigest()
    assert create.files["truststoreFile"].sha256 == hashlib.sha256(CONNECTORSTORE_JKS).hexdigest()
    metadata = json.loads(create.files["metadata"].content)
    assert metadata["businessDomainIdentifier"] == "lane1"
    assert metadata["description"] == "CDB de_ap 0123456789ab effective since start"
    assert metadata["truststore"]["password"] == "changeit"
    assert metadata["truststore"]["type"] == "JKS"

    [mode] = connector.processing_modes
    assert mode.content == PMODE and mode.truststore == CONNECTORSTORE_JKS
    assert answer["processing_mode"]["uuid"] == mode.uuid
    assert answer["processing_mode"]["businessDomainIdentifier"] == "lane1"
    assert "content" not in answer["processing_mode"]  # the answer stays small
    assert answer["registered"] is True


def test_a_pkcs12_connectorstore_is_sent_as_such(connector: ConnectorNgStandIn) -> None:
    target(connector, store_type="PKCS12").apply(package())
    [mode] = connector.processing_modes
    assert mode.truststore == CONNECTORSTORE_P12 and mode.truststore_meta["type"] == "PKCS12"


def test_a_wrong_password_is_refused_at_login_and_nothing_is_sent(
    connector: ConnectorNgStandIn,
) -> None:
    with pytest.raises(TargetFailed) as failed:
        target(connector, password="guess").apply(package())

    assert failed.value.transient is False
    assert (
        "connector-ng ng1 refused the credentials of user cdb-sync (logging in: HTTP 401)"
        in str(failed.value)
    )
    assert [(c.path, c.status) for c in connector.calls] == [("/api/v1/auth/login", 401)]
    assert connector.processing_modes == []


def test_an_unknown_business_domain_is_quoted_and_not_transient(
    connector: ConnectorNgStandIn,
) -> None:
    with pytest.raises(TargetFailed) as failed:
        target(connector, business_domain="lane9").apply(package())
    assert failed.value.transient is False
    assert "HTTP 409: Business domain lane9 not found" in str(failed.value)


def test_a_package_without_a_connectorstore_says_so_before_calling(
    connector: ConnectorNgStandIn,
) -> None:
    with pytest.raises(TargetFailed) as failed:
        target(connector).apply(package(**{"connectorstore.jks": b""}))
    assert failed.value.transient is False
    assert "the package for de_ap has no connectorstore.jks" in str(failed.value)
    assert connector.calls == []


def test_a_slow_connector_is_a_transient_failure(connector: ConnectorNgStandIn) -> None:
    connector.delay_s = 3.0
    with pytest.raises(TargetFailed) as failed:
        target(connector, timeout_s=0.5).apply(package())
    assert failed.value.transient is True
    assert "gave no answer within 0.5 s (logging in)" in str(failed.value)


@pytest.mark.parametrize("how", ["500", "drop"])
def test_a_failing_connector_is_a_transient_failure_and_a_retry_applies(
    connector: ConnectorNgStandIn, how: str
) -> None:
    connector_target = target(connector)
    connector.fail_next(1, how, path="/api/v1/admin/processing-modes",  # type: ignore[arg-type]
                        method="POST")  # fmt: skip
    with pytest.raises(TargetFailed) as failed:
        connector_target.apply(package())
    assert failed.value.transient is True
    assert "registering the processing mode" in str(failed.value)
    assert connector.processing_modes == []

    connector_target.apply(package())
    assert len(connector.processing_modes) == 1


def test_a_registration_whose_answer_was_lost_is_found_and_not_sent_again(
    connector: ConnectorNgStandIn,
) -> None:
    """connector-ng stores the processing mode, its answer comes after the target gave up:
    the retry finds it in the list (its description names the package) and registers
    nothing; the same package applied again registers nothing either."""
    connector.answer_late(3.0, path="/api/v1/admin/processing-modes", method="POST")
    with pytest.raises(TargetFailed) as failed:
        target(connector, timeout_s=0.5).apply(package())
    assert failed.value.transient is True
    assert "gave no answer within 0.5 s (registering the processing mode)" in str(failed.value)
    connector.answer_late(0)

    again = target(connector).apply(package())
    [mode] = connector.processing_modes
    assert again["registered"] is False and again["processing_mode"]["uuid"] == mode.uuid
    assert target(connector).apply(package())["processing_mode"]["uuid"] == mode.uuid
    assert len(connector.calls_to("POST", "/api/v1/admin/processing-modes")) == 1


def test_a_processing_mode_of_another_business_domain_does_not_count(
    connector: ConnectorNgStandIn,
) -> None:
    connector.business_domains.add("lane2")
    target(connector, business_domain="lane2").apply(package())
    answer = target(connector).apply(package())
    assert answer["registered"] is True
    assert [m.business_domain for m in connector.processing_modes] == ["lane2", "lane1"]


def test_the_stand_in_refuses_what_the_contract_refuses(connector: ConnectorNgStandIn) -> None:
    """The stand-in is only worth its name if it says no where connector-ng does."""
    with httpx.Client(base_url=connector.base_url) as client:
        login = {"username": "cdb-sync", "password": connector.password}
        token = client.post("/api/v1/auth/login", json=login).json()
        auth = {"Authorization": f"Bearer {token['accessToken']}"}
        files = {"processingModeXmlFile": ("p.xml", PMODE, "application/octet-stream"),
                 "truststoreFile": ("t.jks", b"x", "application/octet-stream"),
                 "metadata": ("m.json", b'{"description": "d"}', "application/json")}  # fmt: skip
        not_xml = client.post("/api/v1/admin/processing-modes", headers=auth, files=files)
        only_pmode = {"processingModeXmlFile": files["processingModeXmlFile"]}
        missing = client.post("/api/v1/admin/processing-modes", headers=auth, files=only_pmode)
        no_token = client.post("/api/v1/admin/processing-modes", files=files)
    assert not_xml.status_code == 400 and not_xml.json()["message"] == "pmode file must be XML"
    assert missing.status_code == 400
    assert no_token.status_code == 401
