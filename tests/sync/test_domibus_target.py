"""The Domibus target against a stand-in for Domibus's `/ext` REST API.

Domibus does not run on these machines; `tests/support/standins/domibus.py` is written
from Domibus's published contract (the resources PModeFileExtResource `/ext/pmode`,
since 4.1.1, and TruststoreExtResource `/ext/truststore`, since 5.1, in
Domibus-MSH-ext-services-delegate, package eu.domibus.ext.rest; mirrored at
https://github.com/betagouv/domibus): Basic authentication, multipart `file` +
`description` / `file` + `password`, 401 for a wrong password, 400 for a missing part,
406 for a PMode Domibus refuses, `GET /ext/pmode/current` → `{id, configurationDate,
username, description}`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdb_service.sync.domibus import DomibusTarget
from cdb_service.sync.target import TargetFailed, VerifiedPackage
from tests.support.service_process import make_pki
from tests.support.standins.domibus import DomibusStandIn

PMODE = b'<db:configuration xmlns:db="http://domibus.eu/configuration" party="fr_ap"/>'
TRUSTSTORE_JKS = b"\xfe\xed\xfe\xed" + b"jks trust material" * 8
TRUSTSTORE_P12 = b"0\x82" + b"p12 trust material" * 8


def package(pmode: bytes = PMODE, digest: str = "a1b2c3d4e5f6" + "0" * 52) -> VerifiedPackage:
    return VerifiedPackage(
        party="fr_ap", owner="FR", digest=digest,
        effective_from=dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC),
        files={"pmode.xml": pmode, "truststore.jks": TRUSTSTORE_JKS,
               "truststore.p12": TRUSTSTORE_P12, "manifest.json": b"{}"},
        manifest={}, store_password="store-secret",
    )  # fmt: skip


@pytest.fixture
def domibus() -> Iterator[DomibusStandIn]:
    with DomibusStandIn() as standin:
        yield standin


def target(standin: DomibusStandIn, **changes: object) -> DomibusTarget:
    base = DomibusTarget(name="gw1", base_url=standin.base_url, username=standin.username,
                         password=standin.password, timeout_s=5.0)  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_the_pmode_reaches_domibus_and_its_current_id_is_the_answer(
    domibus: DomibusStandIn,
) -> None:
    answer = target(domibus).apply(package())

    [upload] = domibus.calls_to("POST", "/ext/pmode")
    assert upload.names == {"file", "description"}
    assert upload.files["file"].sha256 == hashlib.sha256(PMODE).hexdigest()
    assert (
        upload.fields["description"] == "CDB fr_ap a1b2c3d4e5f6 effective 2027-03-01T09:00:00+00:00"
    )
    assert upload.user == "cdb-sync" and upload.status == 200
    assert domibus.current is not None and domibus.current.content == PMODE
    assert answer["pmode_current"]["id"] == domibus.current.id == 1
    assert answer["pmode_uploaded"] is True
    # Without truststore_api (Domibus before 5.1) the truststore is never sent.
    assert answer["truststore"] is None
    assert not [c for c in domibus.calls if c.path.startswith("/ext/truststore")]


def test_each_new_package_is_a_new_current_pmode(domibus: DomibusStandIn) -> None:
    first = target(domibus).apply(package())
    second = target(domibus).apply(package(PMODE.replace(b"fr_ap", b"fr_ap2"), "f" * 64))
    assert (first["pmode_current"]["id"], second["pmode_current"]["id"]) == (1, 2)
    assert domibus.current is not None and b"fr_ap2" in domibus.current.content


def test_the_same_package_is_not_pushed_twice(domibus: DomibusStandIn) -> None:
    domibus_target = target(domibus)
    domibus_target.apply(package())
    again = domibus_target.apply(package())
    assert len(domibus.calls_to("POST", "/ext/pmode")) == 1
    assert again["pmode_uploaded"] is False and again["pmode_current"]["id"] == 1


@pytest.mark.parametrize(("store_type", "member", "content"),
                         [("JKS", "truststore.jks", TRUSTSTORE_JKS),
                          ("PKCS12", "truststore.p12", TRUSTSTORE_P12)])  # fmt: skip
def test_domibus_5_1_gets_the_truststore_with_its_password(
    domibus: DomibusStandIn, store_type: str, member: str, content: bytes
) -> None:
    answer = target(domibus, truststore_api=True, store_type=store_type).apply(package())

    [upload] = domibus.calls_to("POST", "/ext/truststore")
    assert upload.names == {"file", "password"}
    assert upload.files["file"].filename == member  # Domibus reads the type from the name
    assert upload.files["file"].sha256 == hashlib.sha256(content).hexdigest()
    assert domibus.truststore == content and domibus.truststore_password == "store-secret"
    assert answer["truststore"]["file"] == member
    assert "successfully replaced" in answer["truststore"]["message"]


def test_a_wrong_password_is_refused_and_not_retried_as_transient(domibus: DomibusStandIn) -> None:
    with pytest.raises(TargetFailed) as failed:
        target(domibus, password="not-the-password").apply(package())

    assert failed.value.transient is False
    message = str(failed.value)
    assert "Domibus gw1 refused the credentials of user cdb-sync" in message
    assert "not-the-password" not in message
    assert [(c.path, c.status) for c in domibus.calls] == [("/ext/pmode/current", 401)]
    assert domibus.pmodes == []


def test_a_pmode_domibus_refuses_is_quoted_and_not_transient(domibus: DomibusStandIn) -> None:
    with pytest.raises(TargetFailed) as failed:
        target(domibus).apply(package(b"<configuration>"))
    assert failed.value.transient is False
    assert "refused uploading the PMode: HTTP 406: Failed to upload the PMode file" in str(
        failed.value
    )


def test_a_slow_domibus_is_a_transient_failure(domibus: DomibusStandIn) -> None:
    domibus.delay_s = 3.0
    with pytest.raises(TargetFailed) as failed:
        target(domibus, timeout_s=0.5).apply(package())
    assert failed.value.transient is True
    assert "Domibus gw1 gave no answer within 0.5 s (reading the current PMode)" in str(
        failed.value
    )


@pytest.mark.parametrize("how", ["500", "drop"])
def test_a_failing_domibus_is_a_transient_failure_and_a_retry_applies(
    domibus: DomibusStandIn, how: str
) -> None:
    domibus_target = target(domibus)
    domibus.fail_next(2, how)  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(TargetFailed) as failed:
            domibus_target.apply(package())
        assert failed.value.transient is True
    assert domibus.pmodes == []

    answer = domibus_target.apply(package())
    assert answer["pmode_current"]["id"] == 1
    assert len(domibus.calls_to("POST", "/ext/pmode")) == 1


def test_a_retry_after_a_failed_truststore_upload_does_not_push_the_pmode_again(
    domibus: DomibusStandIn,
) -> None:
    domibus_target = target(domibus, truststore_api=True)
    # The truststore upload alone fails once, as a Domibus restarting in between would.
    domibus.fail_next(1, "500", path="/ext/truststore")
    with pytest.raises(TargetFailed) as failed:
        domibus_target.apply(package())
    assert failed.value.transient is True and "uploading the truststore" in str(failed.value)

    answer = domibus_target.apply(package())
    assert len(domibus.calls_to("POST", "/ext/pmode")) == 1
    assert len(domibus.calls_to("POST", "/ext/truststore")) == 2
    assert answer["pmode_uploaded"] is False and domibus.truststore == TRUSTSTORE_JKS


def test_over_tls_the_target_trusts_the_operators_ca(tmp_path: Path) -> None:
    """Over TLS, and under the context path Domibus is usually deployed at."""
    pki = make_pki(tmp_path / "pki", ())
    with DomibusStandIn(tls=(pki.server_cert, pki.server_key), prefix="/domibus") as standin:
        assert standin.base_url.endswith("/domibus")
        answer = target(standin, ca=pki.ca).apply(package())
        assert answer["pmode_current"]["id"] == 1
        assert [c.path for c in standin.calls][:2] == ["/ext/pmode/current", "/ext/pmode"]
        with pytest.raises(TargetFailed) as failed:
            target(standin, ca=None).apply(package())  # the system's CAs do not know it
        assert failed.value.transient is True and "could not be reached" in str(failed.value)


def test_the_password_stays_out_of_repr() -> None:
    shown = repr(
        DomibusTarget(name="gw1", base_url="https://gw", username="u", password="p4ss-w0rd")
    )
    assert "p4ss-w0rd" not in shown


def test_a_description_template_with_an_unknown_field_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="unknown field 'revision'"):
        DomibusTarget(name="gw1", base_url="https://gw", username="u", password="p",
                      description="CDB {revision}")  # fmt: skip
