"""The data-quality report (Annex I 7.6) names planted defects, and nothing else new."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cdb_service.lookup import gazetteer
from cdb_service.lookup.gazetteer import Place
from cdb_service.seeding.load import seed
from cdb_service.services import Services
from tests.support import factories
from tests.support.api import Api, As

V1 = "/api/v1"
MERGE = {"content-type": "application/merge-patch+json"}
YESTERDAY = (dt.date.today() - dt.timedelta(days=1)).isoformat()
IN_THREE_DAYS = (dt.date.today() + dt.timedelta(days=3)).isoformat()


async def _report(c: As, **params: Any) -> dict[str, Any]:
    response = await c.get(f"{V1}/quality", params={"owner": "FR"} | params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _created(c: As, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await c.post(f"{V1}/{kind}", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _court(code: str, **extra: Any) -> dict[str, Any]:
    return factories.authority(
        owner="FR", code=code, names={"fr": f"Tribunal {code}", "en": f"Court {code}"},
        contacts=[{"value": "greffe@justice.example.fr"}], languages=["fr"], **extra,
    )  # fmt: skip


async def _plant_defects(c: As, services: Services) -> None:
    # 1. A certificate that will have expired on the report's day (the registry refuses
    #    certificates that are expired when uploaded: they expire while on record).
    party = (await c.get(f"{V1}/routing-parties", params={"name": "fr-justice-ap"})).json()
    party = party["items"][0]
    certificates = [{"use": x["use"], "pem": x["pem"]} for x in party["certificates"]]
    certificates.append({"use": "encryption", "pem": factories.certificate_pem(1, "soon")})
    url = f"{V1}/routing-parties/{party['id']}"
    tag = {"If-Match": f'"{party["version"]}"'}
    patched = await c.patch(url, json={"certificates": certificates}, headers=MERGE | tag)
    assert patched.status_code == 200, patched.text
    # 2. An authority without a routing party, which a criterion sends senders to.
    await _created(c, "authorities", _court("FR:COURT-NOWHERE"))
    await _created(c, "jurisdiction-criteria", factories.criterion(
        owner="FR", ref="crit-nowhere", authority_code="FR:COURT-NOWHERE",
        geo=[{"scheme": "postal-code", "code": "97100"}]))  # fmt: skip
    # 3. A criterion still pointing at a court retired yesterday.
    await _created(c, "authorities", _court("FR:COURT-OLD", routing_party_name="fr-justice-ap",
                                            valid_to=YESTERDAY))  # fmt: skip
    await _created(c, "jurisdiction-criteria", factories.criterion(
        owner="FR", ref="crit-old", authority_code="FR:COURT-OLD",
        geo=[{"scheme": "postal-code", "code": "97200"}]))  # fmt: skip
    # 4. Two courts tied for the European arrest warrant at 75001 (same rank and priority).
    for code in ("FR:TIE-A", "FR:TIE-B"):
        await _created(c, "authorities", _court(code, routing_party_name="fr-justice-ap"))
        await _created(c, "jurisdiction-criteria", factories.criterion(
            owner="FR", ref=f"crit-{code[3:]}", authority_code=code, instrument="eaw",
            geo=[{"scheme": "postal-code", "code": "75001"}]))  # fmt: skip
    # 5. Corsica enters the gazetteer; no regional criterion names it.
    async with services.sessions() as session:
        known = await gazetteer.places_of(session, "FR")
        places = [Place(p.postal_code, p.lau, p.nuts3, p.lau_name) for p in known]
    places += [Place("20000", "2A004", "FRM01", "Ajaccio"), Place("20090", "2A004", "FRM01")]
    await gazetteer.replace_country(services.sessions, "FR", places, "test: Corsica")


async def test_the_report_names_each_planted_defect_and_nothing_spurious(
    api: Api, services: Services
) -> None:
    await seed(services.batches, services.sessions)
    async with api.client("admin-fr") as c:
        before = await _report(c, date=IN_THREE_DAYS)
        # The seed data is complete for France (other states have real gaps: see below).
        assert before["findings"] == []
        await _plant_defects(c, services)
        after = await _report(c, date=IN_THREE_DAYS)
        again = await _report(c, date=IN_THREE_DAYS)
    assert [f["id"] for f in again["findings"]] == [f["id"] for f in after["findings"]]
    coverage = [f for f in after["findings"] if f["rule"] == "coverage-gap"]
    others = {(f["rule"], f["key"]): f for f in after["findings"] if f["rule"] != "coverage-gap"}
    assert len(others) + len(coverage) == len(after["findings"])
    assert set(others) == {
        ("certificate-expiry", "fr-justice-ap"),
        ("unroutable-authority", "FR:COURT-NOWHERE"),
        ("criterion-on-retired-authority", "crit-old"),
        ("unbroken-tie", None),
    }
    assert others[("certificate-expiry", "fr-justice-ap")]["severity"] == "error"
    assert "expired" in others[("certificate-expiry", "fr-justice-ap")]["message"]
    assert others[("unroutable-authority", "FR:COURT-NOWHERE")]["severity"] == "error"
    tie = others[("unbroken-tie", None)]["detail"]
    assert tie["authorities"] == ["FR:TIE-A", "FR:TIE-B"] and tie["instrument"] == "eaw"
    assert tie["places"] == ["postal-code 75001 (postal-code 75001)"]
    # Corsica is uncovered for every instrument without a country-level fallback, and only it.
    assert coverage
    for finding in coverage:
        assert finding["detail"]["uncovered_nuts3"] == ["FRM01"]
        places = {p["postal_code"] for p in finding["detail"]["uncovered_places"]}
        assert places == {"20000", "20090"}
    assert sorted(f["detail"]["instrument"] for f in coverage) == [
        "eaw", "financial-penalties", "freezing-confiscation"
    ]  # fmt: skip
    assert after["summary"]["error"] == 3 and after["summary"]["info"] == 0


async def test_each_rule_names_its_entry_with_its_severity(api: Api) -> None:
    """Routing, validity, completeness and the certificate tiers, each planted once on an
    owner with no other data (no gazetteer: coverage and ties have nothing to say)."""
    next_month = (dt.date.today() + dt.timedelta(days=40)).isoformat()
    # Days left counted from the report's day: 15, 45 and 75 fall in the 30, 60, 90 tiers
    # whichever side of midnight the test runs.
    certificates = [{"use": "signing", "pem": factories.certificate_pem(days, f"t{days}")}
                    for days in (15, 45, 75)]  # fmt: skip
    async with api.client("admin-fr") as c:
        await _created(c, "routing-parties", factories.routing_party(owner="FR", name="fr-ap"))
        await _created(c, "routing-parties", factories.routing_party(
            owner="FR", name="fr-spare-ap", certificates=certificates))  # fmt: skip
        linked = {"routing_party_name": "fr-ap"}
        await _created(c, "authorities", _court("FR:COMPLETE", **linked))
        await _created(c, "authorities", _court("FR:NEW", valid_from=next_month, **linked))
        await _created(c, "jurisdiction-criteria", factories.criterion(
            owner="FR", ref="crit-early", authority_code="FR:NEW",
            geo=[{"scheme": "postal-code", "code": "75001"}]))  # fmt: skip
        await _created(
            c, "authorities", _court("FR:ENGLISH", **linked) | {"names": {"en": "Court"}}
        )
        await _created(c, "authorities", _court("FR:MUTE", **linked) | {"contacts": []})
        body = await _report(c)
    found = {(f["rule"], f["severity"], f["kind"], f["key"]): f for f in body["findings"]}
    tiers = sorted((f["detail"]["days"] // 30, f["severity"], f["message"])
                   for f in body["findings"] if f["rule"] == "certificate-expiry")  # fmt: skip
    assert set(found) == {
        ("unused-routing-party", "warning", "routing-parties", "fr-spare-ap"),
        ("criterion-before-authority", "warning", "jurisdiction-criteria", "crit-early"),
        ("name-missing", "warning", "authorities", "FR:ENGLISH"),
        ("contact-missing", "warning", "authorities", "FR:MUTE"),
        ("certificate-expiry", "error", "routing-parties", "fr-spare-ap"),
        ("certificate-expiry", "warning", "routing-parties", "fr-spare-ap"),
        ("certificate-expiry", "info", "routing-parties", "fr-spare-ap"),
    }  # fmt: skip
    assert [(t[0], t[1]) for t in tiers] == [(0, "error"), (1, "warning"), (2, "info")]
    for (_, _, message), limit in zip(tiers, ("30", "60", "90"), strict=True):
        assert f"expires within {limit} days" in message
    assert found[("name-missing", "warning", "authorities", "FR:ENGLISH")]["detail"] == {
        "missing": ["fr"]
    }
    early = found[("criterion-before-authority", "warning", "jurisdiction-criteria", "crit-early")]
    assert early["detail"] == {"authority": "FR:NEW", "valid_from": next_month}
    assert body["summary"] == {"error": 1, "warning": 5, "info": 1}  # each once, no more


async def test_who_may_read_it_csv_and_review_period(api: Api, services: Services) -> None:
    await seed(services.batches, services.sessions)
    async with api.client("admin-de") as c:
        refused = await c.get(f"{V1}/quality", params={"owner": "FR"})
        assert refused.status_code == 403
    async with api.client("reader") as c:
        assert (await c.get(f"{V1}/quality", params={"owner": "RO"})).status_code == 403
    async with api.client("operator") as c:
        ro = await _report(c, owner="RO")
        # A real gap of the seed data: some Bucharest postal codes have no penalties court.
        assert [(f["rule"], f["detail"]["instrument"]) for f in ro["findings"]] == [
            ("coverage-gap", "financial-penalties")
        ]
        later = dt.date.today() + dt.timedelta(days=400)
        review = await _report(c, owner="RO", date=later.isoformat(), review_days=365)
        due = [f for f in review["findings"] if f["rule"] == "review-due"]
        assert len(due) > 10 and all(f["severity"] == "info" for f in due)
        csv = await c.get(f"{V1}/quality", params={"owner": "RO", "format": "csv"})
        lines = csv.text.splitlines()
        assert lines[0] == "id,severity,rule,kind,key,entry_id,message,action"
        assert len(lines) == 2 and ",warning,coverage-gap," in lines[1]


def test_the_quality_command(tmp_path: Path) -> None:
    env = os.environ | {"CDB_DATA_DIR": str(tmp_path), "CDB_LOG_LEVEL": "WARNING"}
    env.pop("CDB_DATABASE_URL", None)
    exe = str(Path(sys.executable).with_name("cdb-service"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], env=env, capture_output=True, text=True)

    assert run("migrate").returncode == 0 and run("seed").returncode == 0
    out = run("quality", "--owner", "BE", "--format", "csv")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1].split(",")[2] == "coverage-gap"
    wrong = run("quality", "--owner", "XX")
    assert wrong.returncode == 2 and wrong.stderr.strip().count("\n") == 0


async def test_the_latest_report_of_an_owner_is_counted_in_metrics(
    api: Api, services: Services
) -> None:
    """An operator's dashboard follows the counts per owner and severity over time."""
    from prometheus_client import REGISTRY, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    await seed(services.batches, services.sessions)
    async with api.client("operator") as c:
        ro = await _report(c, owner="RO")
    exported = {
        (sample.labels["owner"], sample.labels["severity"]): sample.value
        for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())
        if family.name == "cdb_quality_findings"
        for sample in family.samples
    }
    for severity, count in ro["summary"].items():
        assert exported[("RO", severity)] == count
    assert exported[("RO", "warning")] == 1


async def test_criteria_on_places_the_gazetteer_no_longer_has_are_errors(
    api: Api, services: Services
) -> None:
    """A NUTS region dropped by a new NUTS version (as PT16E was) matches nothing: the
    report names the criterion, the codes and the version they were checked against."""
    await seed(services.batches, services.sessions)
    async with services.sessions() as session:
        known = await gazetteer.places_of(session, "FR")
        places = [Place(p.postal_code, p.lau, p.nuts3, p.lau_name) for p in known]
    await gazetteer.replace_country(services.sessions, "FR", places,
                                    "pc2024_FR_NUTS-2024_v1.0.csv")  # fmt: skip
    live = places[0]
    async with api.client("admin-fr") as c:
        await _created(c, "authorities", _court("FR:STALE", routing_party_name="fr-justice-ap"))
        await _created(c, "jurisdiction-criteria", factories.criterion(
            owner="FR", ref="crit-stale", authority_code="FR:STALE", instrument="eaw",
            geo=[{"scheme": "nuts3", "code": "FRZ99"}, {"scheme": "lau", "code": live.lau},
                 {"scheme": "postal-code", "code": "97999"},
                 {"scheme": "nuts3", "code": live.nuts3}]))  # fmt: skip
        body = await _report(c, date=IN_THREE_DAYS)
    stale = [f for f in body["findings"] if f["rule"] == "unknown-geo-code"]
    assert [(f["severity"], f["key"]) for f in stale] == [("error", "crit-stale")]
    # A postal code matches a query that names it, gazetteer or not: not a finding.
    assert stale[0]["detail"]["unknown"] == ["nuts3 FRZ99"]
    assert "NUTS 2024" in stale[0]["message"] and "FRZ99" in stale[0]["message"]
