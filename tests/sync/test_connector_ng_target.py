"""The connector-ng target against a stand-in for connector-ng's (7.0) REST API.

connector-ng does not run on these machines; `tests/support/standins/connector_ng.py`
is written from its published sources (https://github.com/e-CODEX/connector-ng, newest
stored version; each file cited there): ConnectorAuthenticationApi
`POST /api/v1/auth/login` with `{username, password}` → `{accessToken, ...}`, 401 for bad
credentials; ConnectorProcessingModeAdminController `POST /api/v1/admin/processing-modes`,
multipart files `processingModeFile` (XML) and `truststore.truststoreFile`, fields
`description`, `businessDomainIdentifier`, `truststore.password` → 201
ConnectorProcessingModeDto, 400 ErrorResponse `{status, message}`, 404 for an unknown
business domain, 409 "The business domain [%s] already has a processing mode"
(ConnectorRegisterProcessingModeService at c2a08323); `GET …/processing-modes` and
`GET …/processing-modes/{uuid}`; `PATCH …/processing-modes/{uuid}/truststore`, multipart
`truststoreFile` and `password` → 200 (ConnectorUpdateProcessingModeTruststoreIT). No
version can replace a processing mode's PMode or delete one.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
MODES = "/api/v1/admin/processing-modes"
NEXT = "fedcba987654" + "d" * 52  # the next package: a new certificate, the same PMode
NEXT_JKS = b"\xfe\xed\xfe\xed" + b"rolled-over trust" * 8


def package(digest: str = DIGEST, **files: bytes) -> VerifiedPackage:
    members = {"pmode.xml": PMODE, "connectorstore.jks": CONNECTORSTORE_JKS,
               "connectorstore.p12": CONNECTORSTORE_P12, "truststore.jks": b"gateway"}  # fmt: skip
    members.update(files)
    return VerifiedPackage(
        party="de_ap", owner="DE", digest=digest, effective_from=None,
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
    assert create.names == {"processingModeFile", "truststore.truststoreFile", "description",
                            "businessDomainIdentifier", "truststore.password"}  # fmt: skip
    assert create.files["processingModeFile"].content_type == "application/xml"
    assert create.files["processingModeFile"].sha256 == hashlib.sha256(PMODE).hexdigest()
    store = create.files["truststore.truststoreFile"]
    assert store.sha256 == hashlib.sha256(CONNECTORSTORE_JKS).hexdigest()
    assert create.fields == {"businessDomainIdentifier": "lane1",
                             "description": "CDB de_ap 0123456789ab effective since start",
                             "truststore.password": "changeit"}  # fmt: skip

    [mode] = connector.processing_modes
    assert mode.content == PMODE and mode.truststore == CONNECTORSTORE_JKS
    # connector-ng takes the store's type from its name, and shows whose store it is.
    assert (mode.truststore_filename, mode.truststore_type) == (
        f"connectorstore-{DIGEST[:16]}.jks", "JKS")  # fmt: skip
    assert answer["processing_mode"]["uuid"] == mode.uuid
    assert answer["processing_mode"]["businessDomainIdentifier"] == "lane1"
    assert "content" not in answer["processing_mode"]  # the answer stays small
    assert answer["registered"] is True


def test_a_pkcs12_connectorstore_is_sent_as_such(connector: ConnectorNgStandIn) -> None:
    target(connector, store_type="PKCS12").apply(package())
    [mode] = connector.processing_modes
    assert mode.truststore == CONNECTORSTORE_P12 and mode.truststore_type == "PKCS12"


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
    assert "HTTP 404: Business domain not found: lane9" in str(failed.value)


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
        fields = {"description": "d", "businessDomainIdentifier": "lane1",
                  "truststore.password": "changeit"}  # fmt: skip
        files = {
            "processingModeFile": ("p.xml", PMODE, "application/octet-stream"),
            "truststore.truststoreFile": ("t.jks", b"x", "application/octet-stream"),
        }
        not_xml = client.post(MODES, headers=auth, data=fields, files=files)
        only_pmode = {"processingModeFile": files["processingModeFile"]}
        missing = client.post(MODES, headers=auth, data=fields, files=only_pmode)
        no_token = client.post(MODES, data=fields, files=files)
        xml = files | {"processingModeFile": ("p.xml", PMODE, "application/xml")}
        first = client.post(MODES, headers=auth, data=fields, files=xml)
        second = client.post(MODES, headers=auth, data=fields | {"description": "e"}, files=xml)
        uuid = first.json()["uuid"]
        store = {"truststoreFile": ("t.p12", b"y", "application/octet-stream")}
        no_password = client.patch(f"{MODES}/{uuid}/truststore", headers=auth, files=store)
        unknown = client.patch(f"{MODES}/0000/truststore", headers=auth,
                               data={"password": "p"}, files=store)  # fmt: skip
        no_replacement = client.put(f"{MODES}/{uuid}", headers=auth, data=fields, files=xml)
        no_deletion = client.delete(f"{MODES}/{uuid}", headers=auth)
    assert not_xml.status_code == 400
    assert not_xml.json()["message"] == "Pmode file must be an XML file"
    assert missing.status_code == 400
    assert no_token.status_code == 401
    assert first.status_code == 201
    assert second.status_code == 409 and second.json() == {
        "status": 409,
        "message": "The business domain [lane1] already has a processing mode",
    }
    assert no_password.status_code == 400
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "Processing mode with UUID 0000 not found"
    assert no_replacement.status_code == 404 and no_deletion.status_code == 404
    [mode] = connector.processing_modes
    assert mode.description == "d" and mode.truststore == b"x"


def test_the_next_package_replaces_the_truststore_of_the_business_domain_in_place(
    connector: ConnectorNgStandIn,
) -> None:
    """connector-ng keeps one processing mode per business domain and refuses a second
    (409); a package with the same PMode and new stores (a certificate rollover) replaces
    the truststore of the one there: one PATCH, nothing registered."""
    target(connector).apply(package())
    [first] = connector.processing_modes

    answer = target(connector).apply(package(NEXT, **{"connectorstore.jks": NEXT_JKS}))

    [mode] = connector.processing_modes
    assert (mode.uuid, mode.content, mode.truststore) == (first.uuid, PMODE, NEXT_JKS)
    assert mode.truststore_filename == f"connectorstore-{NEXT[:16]}.jks"
    assert mode.truststore_password == "changeit"
    [patch] = connector.calls_to("PATCH", f"{MODES}/{mode.uuid}/truststore")
    assert patch.status == 200 and patch.fields == {"password": "changeit"}
    assert patch.files["truststoreFile"].sha256 == hashlib.sha256(NEXT_JKS).hexdigest()
    assert len(connector.calls_to("POST", MODES)) == 1  # the first package's registration
    assert answer["updated"] is True and answer["registered"] is False
    assert answer["processing_mode"]["uuid"] == mode.uuid
    assert answer["truststore"] == f"connectorstore-{NEXT[:16]}.jks"


def test_a_package_already_there_is_not_pushed_again_and_an_older_one_is(
    connector: ConnectorNgStandIn,
) -> None:
    """The processing mode's description names the package that registered it and stays
    when its truststore is replaced: what is there is told by the truststore's name."""
    target(connector).apply(package())
    target(connector).apply(package(NEXT, **{"connectorstore.jks": NEXT_JKS}))

    again = target(connector).apply(package(NEXT, **{"connectorstore.jks": NEXT_JKS}))
    assert again["updated"] is False
    assert len(connector.calls_to("PATCH", f"{MODES}/{again['processing_mode']['uuid']}"
                                           "/truststore")) == 1  # fmt: skip
    assert len(connector.calls_to("POST", MODES)) == 1

    # Back to the first package (its description is the processing mode's): its store again.
    back = target(connector).apply(package())
    [mode] = connector.processing_modes
    assert back["updated"] is True and mode.truststore == CONNECTORSTORE_JKS


@pytest.mark.parametrize("how", ["500", "drop", "late"])
def test_a_replacement_that_failed_is_retried_and_ends_with_the_new_store_once(
    connector: ConnectorNgStandIn, how: str
) -> None:
    """The PATCH fails (500: not done; drop: lost; late: done, its answer after the
    target gave up); the retry reads the processing mode and sends the store only if it
    is not there: in the end the new store, and it took exactly one successful PATCH."""
    target(connector).apply(package())
    uuid = connector.processing_modes[0].uuid
    path = f"{MODES}/{uuid}/truststore"
    if how == "late":
        connector.answer_late(3.0, path=path, method="PATCH")
    else:
        connector.fail_next(1, how, path=path, method="PATCH")  # type: ignore[arg-type]
    nxt = package(NEXT, **{"connectorstore.jks": NEXT_JKS})
    with pytest.raises(TargetFailed) as failed:
        target(connector, timeout_s=1.0).apply(nxt)
    assert failed.value.transient is True
    assert f"replacing the truststore of processing mode {uuid}" in str(failed.value)
    connector.answer_late(0)

    retried = target(connector).apply(nxt)

    [mode] = connector.processing_modes
    assert mode.uuid == uuid and mode.truststore == NEXT_JKS
    done = [c for c in connector.calls_to("PATCH", path) if c.status == 200]
    assert len(done) == 1
    assert retried["updated"] is (how != "late")  # a late answer: it was done already


def test_a_package_with_another_pmode_is_refused_with_what_to_do(
    connector: ConnectorNgStandIn,
) -> None:
    """connector-ng cannot replace a processing mode's PMode nor delete one: the target
    says so, not transiently, and changes nothing."""
    target(connector).apply(package())
    other = PMODE.replace(b"de_ap", b"de_ap2")
    with pytest.raises(TargetFailed) as failed:
        target(connector).apply(package(NEXT, **{"pmode.xml": other}))
    assert failed.value.transient is False
    message = str(failed.value)
    assert "business domain lane1 has processing mode" in message
    assert "with another PMode than this package's" in message
    assert "replace it by hand" in message
    [mode] = connector.processing_modes
    assert mode.content == PMODE and mode.truststore == CONNECTORSTORE_JKS
    assert [c.method for c in connector.calls] == ["POST", "GET", "POST", "POST", "GET"]
