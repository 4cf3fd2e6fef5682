"""Each validated field, given a bad value, is named in the answer with a usable message."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cdb_service.kernel.problems import Problem
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.security.pki import issue, make_ca
from tests.support import factories


def _errors(kind: str, document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(Problem) as caught:
        validate(KINDS[kind], document)
    assert caught.value.status == 422
    return {".".join(map(str, e.loc)): e.msg for e in caught.value.errors}


def _expired_pem() -> str:
    ca = make_ca("old CA")
    now = dt.datetime.now(dt.UTC)
    return issue(
        ca, "old", not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
    ).cert_pem


CASES = [
    ("authorities", {"owner": "GR"}, "owner", "Greece is EL"),
    ("authorities", {"owner": "X1"}, "owner", "code list 'owners'"),
    ("authorities", {"code": "FR:COURT-1"}, "code", "must start with the owner's code: DE:"),
    ("authorities", {"code": "DE COURT"}, "code", "String should match pattern"),
    ("authorities", {"kind": "tribunal"}, "kind", "code list 'authority-kinds'"),
    ("authorities", {"names": {"xx": "Gericht"}}, "names.xx.[key]", "code list 'languages'"),
    ("authorities", {"languages": ["de", "english"]}, "languages.1", "code list 'languages'"),
    ("authorities", {"valid_from": "2027-02-01", "valid_to": "2027-01-01"}, "valid_to",
     "must not be before valid_from"),
    ("authorities", {"contacts": [{"channel": "email", "value": "not-a-mailbox"}]}, "contacts.0",
     "is not an e-mail address"),
    ("routing-parties", {"endpoint_url": "http://ap.example.eu/msh"}, "endpoint_url",
     "must be an https:// URL"),
    ("routing-parties", {"identifiers": [{"party_id": "x", "party_id_type": "urn:unknown"}]},
     "identifiers.0.party_id_type", "code list 'party-id-types'"),
    ("routing-parties", {"certificates": [{"use": "signing", "pem": "garbage"}]},
     "certificates.0.pem", "is not a PEM certificate"),
    ("routing-parties", {"certificates": [{"use": "signing",
     "pem": "-----BEGIN PRIVATE KEY-----\nMIG\n-----END PRIVATE KEY-----"}]},
     "certificates.0.pem", "contains a private key"),
    ("routing-parties", {"certificates": [{"use": "signing", "pem": "EXPIRED"}]},
     "certificates.0.pem", "expired on"),
    ("routing-parties", {"certificates": [{"use": "decoration", "pem": "VALID"}]},
     "certificates.0.use", "code list 'certificate-uses'"),
    ("jurisdiction-criteria", {"instrument": "eio2"}, "instrument", "code list 'instruments'"),
    ("jurisdiction-criteria", {"competence": "judge"}, "competence", "code list 'competences'"),
    ("jurisdiction-criteria", {"stages": ["later"]}, "stages.0", "code list 'stages'"),
    ("jurisdiction-criteria", {"subject_matters": ["jaywalking"]}, "subject_matters.0",
     "code list 'subject-matters'"),
    ("jurisdiction-criteria", {"geo": [{"scheme": "postal-code", "code": "1011"}]}, "geo.0",
     "is not a postal code of DE"),
    ("jurisdiction-criteria", {"geo": [{"scheme": "nuts3", "code": "FR101"}]}, "geo.0",
     "is not a NUTS 3 code of DE"),
    ("jurisdiction-criteria", {"geo": [{"scheme": "nuts2", "code": "DE3"}]}, "geo.0",
     "is not a NUTS 2 code of DE"),
    ("jurisdiction-criteria", {"geo": [{"scheme": "lau", "code": "11 000"}]}, "geo.0",
     "is not a LAU code"),
    ("jurisdiction-criteria", {"geo": [{"scheme": "postal-code-prefix", "code": "10115"}]}, "geo.0",
     "is not a postal code prefix of DE"),
    ("jurisdiction-criteria", {"geo": [{"scheme": "street", "code": "x"}]}, "geo.0.scheme",
     "code list 'geo-schemes'"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "change", "field", "message"), CASES)
def test_bad_value_names_its_field(
    kind: str, change: dict[str, Any], field: str, message: str
) -> None:
    base = {
        "authorities": factories.authority(),
        "routing-parties": factories.routing_party(),
        "jurisdiction-criteria": factories.criterion(),
    }[kind]
    if "certificates" in change:
        pem = change["certificates"][0]["pem"]
        pem = {"EXPIRED": _expired_pem(), "VALID": factories.certificate_pem()}.get(pem, pem)
        change = {"certificates": [change["certificates"][0] | {"pem": pem}]}
    errors = _errors(kind, base | change)
    assert field in errors, errors
    assert message in errors[field]


def test_certificate_facts_are_derived_and_client_values_ignored() -> None:
    pem = factories.certificate_pem(days=100, name="ap.example.eu")
    doc = validate(
        KINDS["routing-parties"],
        factories.routing_party(
            certificates=[
                {"use": "signing", "pem": pem, "sha256": "forged", "subject": "CN=forged"}
            ]
        ),
    )
    cert = doc.model_dump()["certificates"][0]
    assert len(cert["sha256"]) == 64 and cert["sha256"] != "forged"
    assert cert["subject"] == "CN=ap.example.eu,O=cdb-service dev"
    assert cert["not_after"] > dt.datetime.now(dt.UTC) + dt.timedelta(days=99)


@pytest.mark.parametrize(
    ("country", "given", "canonical"),
    [("NL", "1011 ab", "1011AB"), ("PL", "00950", "00-950"), ("LT", "LT-01100", "01100"),
     ("MT", "VLT 1117", "VLT1117"), ("PT", "1000-001", "1000-001"), ("EL", "105 57", "10557")],
)  # fmt: skip
def test_postal_codes_are_normalised(country: str, given: str, canonical: str) -> None:
    from cdb_service.kernel.geo import normalise_postal_code

    assert normalise_postal_code(country, given) == canonical


def test_national_members_belong_to_eurojust() -> None:
    errors = _errors(
        "national-members",
        {"owner": "DE", "country": "DE", "role": "deputy",
         "contact": {"channel": "email", "value": "de@eurojust.example.eu"}},
    )  # fmt: skip
    assert "owned by EJ" in errors["owner"]


def test_maintenance_window_needs_an_end_after_its_start_and_time_zones() -> None:
    base = {
        "owner": "EC",
        "component": "cdb",
        "reason": "upgrade",
        "starts_at": "2027-01-12T20:00:00+01:00",
        "ends_at": "2027-01-12T19:00:00+01:00",
    }
    assert "must be after starts_at" in _errors("maintenance-windows", base)["ends_at"]
    naive = base | {"starts_at": "2027-01-12T20:00:00", "ends_at": "2027-01-12T22:00:00+01:00"}
    assert "time zone" in _errors("maintenance-windows", naive)["starts_at"]


def test_unknown_fields_are_refused_by_name() -> None:
    errors = _errors("authorities", factories.authority(colour="blue"))
    assert "colour" in errors


def test_an_owner_code_is_one_rule_for_every_kind() -> None:
    """As typed (` de `) it is DE everywhere; a wrong one gets the same sentence, whether it
    owns an authority or (with the Commission's EC allowed) a maintenance window."""
    window = {"component": "cdb", "reason": "upgrade", "starts_at": "2027-01-12T20:00:00+01:00",
              "ends_at": "2027-01-12T22:00:00+01:00"}  # fmt: skip
    assert validate(KINDS["authorities"], factories.authority(owner=" de ")).owner == "DE"
    assert validate(KINDS["maintenance-windows"], window | {"owner": " ec"}).owner == "EC"
    on_authority = _errors("authorities", factories.authority(owner="GR"))["owner"]
    on_window = _errors("maintenance-windows", window | {"owner": "gr"})["owner"]
    assert "'GR' is not in the code list 'owners'; Greece is EL" in on_authority
    assert "'GR' is not in the code list 'owners'; Greece is EL" in on_window
    assert "EC" in on_window and "EC" not in on_authority.split("allowed:")[-1]
