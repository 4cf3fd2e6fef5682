"""The console as a French administrator uses it, in Debian's Chromium through Playwright.

One dev service (SQLite, seeded, the dev issuer) for the module. Planted through the API
first: a French court whose name has accents, and an expired certificate on France's
routing party. Every page the walk opens is checked with axe-core (no serious or critical
violation), for CSP errors and requests to other origins, for horizontal scrolling, and
screenshotted at 1280 and 360 px under var/screenshots/console/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdb_service.security.dev import DevPki
from tests.console.support import (
    AXE,
    CHROMIUM,
    SCREENSHOTS,
    Api,
    browser,
    origin,
    renewed_certificate_pem,
    soon_expired_certificate_pem,
)
from tests.support.service_process import Service, running_service

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make chromium)"),
    pytest.mark.skipif(not AXE.exists(), reason="axe-core is missing: run `make axe`"),
]

COURT = "Tribunal judiciaire de Besançon"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("console")
    pki = DevPki(root / "var" / "pki").ensure()  # the dev PKI, made before the service starts
    with running_service(root, {}, ca=pki.ca) as running:
        yield running


@pytest.fixture(scope="module")
def planted(service: Service) -> dict[str, str]:
    fr = Api(service, "admin-fr")
    court = fr.first("authorities", owner="FR", q="paris")
    with fr.http() as http:
        created = http.post("/authorities", json={
            "owner": "FR", "code": "FR:TJ-BESANCON", "kind": "court",
            "names": {"fr": COURT}, "languages": ["fr"],
            "address": {"street": "1 rue Mégevand", "postal_code": "25000",
                        "city": "Besançon", "country": "FR"},
            "routing_party_id": court.get("routing_party_id"),
        })  # fmt: skip
    assert created.status_code == 201, created.text
    party = fr.first("routing-parties", owner="FR")
    certificates = [{"use": c["use"], "pem": c["pem"]} for c in party.get("certificates", [])]
    certificates.append({"use": "encryption", "pem": soon_expired_certificate_pem(2)})
    fr.patch("routing-parties", party, {"certificates": certificates})
    time.sleep(2.5)
    german = Api(service, "admin-de").first("authorities", owner="DE")
    return {"court": created.json()["id"], "german": german["id"], "party": party["name"],
            "party_id": party["id"]}  # fmt: skip


def test_a_french_administrator_corrects_a_court_and_uploads_a_batch(
    service: Service, planted: dict[str, str], tmp_path: Path
) -> None:
    base = origin(service)
    with browser(base, SCREENSHOTS) as b:
        page = b.page
        # Sign in: the console sends the browser to the dev issuer, whose page has a
        # button per dev client.
        page.goto(f"{base}/console/")
        assert "/console/sign-in" in page.url
        b.check("sign-in")
        page.get_by_role("link", name="Sign in").click()
        page.wait_for_url("**/dev-issuer/authorize**")
        b.check("dev-issuer")
        page.get_by_role("button", name="admin-fr").click()
        page.wait_for_url(f"{base}/console/")
        assert "administrator of FR" in page.locator("header").inner_text()

        # Home: the planted expired certificate, among counts and findings.
        certificates = page.locator(
            "section", has=page.get_by_role("heading", name="Certificates expiring within 60 days")
        )
        assert "Expired" in certificates.inner_text()
        assert planted["party"] in certificates.inner_text()
        b.check("home")

        # Search a court by its name typed without accents.
        page.get_by_role("link", name="Authorities").first.click()
        b.check("list")
        page.get_by_label("Search", exact=False).fill("besancon")
        page.get_by_role("button", name="Search").click()
        page.get_by_role("link", name=COURT, exact=False).click()
        b.check("entry")

        # Edit the address: only the street changes; the entry is at version 2.
        page.get_by_role("link", name="Edit").click()
        b.check("edit")
        page.get_by_label("Street", exact=False).fill("2 rue Mégevand")
        page.get_by_role("button", name="Save").click()
        preview = page.locator("#preview").inner_text()
        assert "Address: Street" in preview and "2 rue Mégevand" in preview, preview
        b.check("edit-preview")
        page.get_by_role("button", name="Confirm and save").click()
        assert "Saved as version 2" in page.locator("main").inner_text()
        diff = page.locator("table.diff")
        assert "1 rue Mégevand" in diff.inner_text() and "2 rue Mégevand" in diff.inner_text()
        b.check("entry-diff")

        # Revert to version 1: what comes back is shown first; confirmed, a third version.
        page.get_by_role("button", name="Make version 1 current").click()
        preview = page.locator("#preview").inner_text()
        assert "Address: Street" in preview and "1 rue Mégevand" in preview, preview
        assert "Saved" not in page.locator("main").inner_text()
        b.check("revert-preview")
        page.get_by_role("button", name="Confirm and revert").click()
        message = page.locator("main [role=status]").first.inner_text()
        assert "Version 1 of" in message and "current again, as version 3" in message, message
        assert "1 rue Mégevand" in page.locator("dl.facts.entry").inner_text()

        # A batch with one bad row: the row's message; fixed, a dry run, then applied.
        bad = tmp_path / "courts.csv"
        bad.write_text("code,kind,names.fr\nFR:TJ-TEST-1,court,Tribunal de test un\n"
                       "FR:TJ-TEST-2,tribunal,Tribunal de test deux\n")  # fmt: skip
        page.get_by_role("link", name="Upload a batch").click()
        b.check("upload")
        page.locator("input#file").set_input_files(str(bad))
        page.get_by_label("Kind of a CSV file").select_option("authorities")
        page.get_by_role("button", name="Check (dry run)").click()
        errors = page.locator("table.errors").inner_text()
        assert "row 3" in errors and "kind" in errors and "FR:TJ-TEST-2" in errors, errors
        b.check("upload-errors")
        bad.write_text("code,kind,names.fr\nFR:TJ-TEST-1,court,Tribunal de test un\n"
                       "FR:TJ-TEST-2,court,Tribunal de test deux\n")  # fmt: skip
        page.locator("input#file").set_input_files(str(bad))
        page.get_by_label("Kind of a CSV file").select_option("authorities")
        page.get_by_role("button", name="Check (dry run)").click()
        assert "Dry run" in page.locator("main").inner_text()
        assert page.locator("table.changes").inner_text().count("created") == 2
        b.check("upload-dry-run")
        page.get_by_role("button", name="Apply these changes").click()
        assert "Applied as revision" in page.locator("main").inner_text()
        b.check("upload-applied")

        # Retire or delete shows the referrers first; a new entry's form.
        page.goto(f"{base}/console/authorities/{planted['court']}/delete")
        b.check("delete")
        page.goto(f"{base}/console/authorities/new")
        assert page.get_by_label("Name in this language").first.is_visible()
        b.check("create")

        # Who would receive an EIO for Paris: the answer senders get, ranked, with routing.
        page.get_by_role("link", name="Who would receive this?").click()
        page.get_by_label("Country").select_option("FR")
        page.get_by_label("Instrument").select_option("eio")
        page.get_by_label("Competence").select_option("execute")
        page.get_by_label("Postal code (optional)").fill("75001")
        page.get_by_role("button", name="Ask").click()
        answer = page.locator("main section").inner_text()
        assert "FR:" in answer and "fr-justice-ap" in answer, answer
        b.check("resolve")

        # The notice rule of a planned maintenance window, for the times typed.
        page.goto(f"{base}/console/maintenance-windows")
        page.get_by_role("link", name="Check the notice rule").click()
        page.get_by_label("Starts (Brussels time)").fill("2027-03-02T21:00")
        page.get_by_label("Ends (Brussels time)").fill("2027-03-03T02:00")
        page.get_by_role("button", name="Check the notice").click()
        rule = page.locator("main [role=status]").inner_text()
        assert "10 working days' notice needed" in rule and "preferred hours" in rule, rule
        b.check("maintenance-notice")

        # The expired certificate, rotated: replaced by its renewal in one revision.
        page.goto(f"{base}/console/routing-parties/{planted['party_id']}")
        page.get_by_role("link", name="Rotate a certificate").click()
        old = page.locator("option", has_text="fr-old-ap").get_attribute("value")
        page.get_by_label("Certificate to replace").select_option(str(old))
        page.get_by_label("Renewed certificate (PEM)").fill(renewed_certificate_pem())
        b.check("rotate")
        page.get_by_role("button", name="Rotate").click()
        assert "Certificate replaced in 1 routing party" in page.locator("main").inner_text()

        # Another owner's entry: its edit form is refused with a page that says why.
        answer = page.goto(f"{base}/console/authorities/{planted['german']}/edit")
        assert answer is not None and answer.status == 403
        assert "cannot change entries of DE" in page.locator("main").inner_text()
        b.check("forbidden")

        # Sign out: the session is gone; the console asks to sign in again.
        page.goto(f"{base}/console/")
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/console/signed-out")
        b.check("signed-out")
        page.goto(f"{base}/console/")
        assert "/console/sign-in" in page.url

    assert not b.violations, "\n".join(b.violations)
    assert not b.problems, "\n".join(b.problems)
    for name in b.checked:
        for width in (1280, 360):
            assert (SCREENSHOTS / f"{name}-{width}.png").stat().st_size > 5_000


def test_a_german_administrator_sees_every_page_in_german(
    service: Service, planted: dict[str, str], tmp_path: Path
) -> None:
    """The same pages in German (the browser asks for de-DE), screenshotted as de-*: the
    longer German words must not push anything off a 360 px screen."""
    base = origin(service)
    party = Api(service, "admin-de").first("routing-parties", owner="DE")
    with browser(base, SCREENSHOTS, locale="de-DE") as b:
        page = b.page
        page.goto(f"{base}/console/")
        assert page.locator("html").get_attribute("lang") == "de"
        b.check("de-sign-in")
        page.get_by_role("link", name="Anmelden").click()
        page.wait_for_url("**/dev-issuer/authorize**")
        page.get_by_role("button", name="admin-de").click()
        page.wait_for_url(f"{base}/console/")
        assert "Administrator für DE" in page.locator("header").inner_text()
        assert "Zertifikate, die innerhalb von 60 Tagen ablaufen" in page.content()
        b.check("de-home")

        page.get_by_role("navigation", name="Konsole").get_by_role("link", name="Behörden").click()
        assert "Einträge (Revision des Registers" in page.locator("main").inner_text()
        b.check("de-list")
        page.goto(f"{base}/console/authorities/{planted['german']}")
        assert "Technische Angaben" in page.locator("main").inner_text()
        b.check("de-entry")

        # Edit: the preview in German; cancelled, nothing saved.
        page.get_by_role("link", name="Bearbeiten").click()
        b.check("de-edit")
        page.get_by_label("Straße", exact=False).fill("Neue Straße 1")
        page.get_by_role("button", name="Speichern").click()
        assert "Vor dem Speichern prüfen" in page.locator("#preview").inner_text()
        b.check("de-edit-preview")
        page.locator("#preview").get_by_role("link", name="Abbrechen").click()

        # A new entry sent empty: every error beside its field, in German.
        page.goto(f"{base}/console/authorities/new")
        b.check("de-create")
        page.get_by_role("button", name="Anlegen").click()
        errors = page.locator("#errors").inner_text()
        assert "Der Eintrag wurde nicht gespeichert" in errors and "muss ausgefüllt" in errors
        b.check("de-create-errors")

        page.goto(f"{base}/console/authorities/{planted['german']}/delete")
        assert "Gültigkeit beenden oder löschen?" in page.locator("main").inner_text()
        b.check("de-delete")

        # An upload with one bad row, then its dry run (not applied).
        bad = tmp_path / "gerichte.csv"
        bad.write_text("code,kind,names.de\nDE:AG-TEST-1,court,Amtsgericht Test eins\n"
                       "DE:AG-TEST-2,gericht,Amtsgericht Test zwei\n")  # fmt: skip
        page.get_by_role("link", name="Datei hochladen").click()
        b.check("de-upload")
        page.locator("input#file").set_input_files(str(bad))
        page.get_by_label("Art einer CSV-Datei").select_option("authorities")
        page.get_by_role("button", name="Prüfen (Probelauf)").click()
        assert "Nichts wurde übernommen" in page.locator("main").inner_text()
        b.check("de-upload-errors")
        bad.write_text("code,kind,names.de\nDE:AG-TEST-1,court,Amtsgericht Test eins\n")
        page.locator("input#file").set_input_files(str(bad))
        page.get_by_label("Art einer CSV-Datei").select_option("authorities")
        page.get_by_role("button", name="Prüfen (Probelauf)").click()
        assert "Probelauf von gerichte.csv" in page.locator("main").inner_text()
        b.check("de-upload-dry-run")

        page.get_by_role("link", name="Wer würde das erhalten?").click()
        page.get_by_label("Land").select_option("DE")
        page.get_by_label("Rechtsinstrument").select_option("eio")
        page.get_by_label("Zuständigkeit").select_option("execute")
        page.get_by_role("button", name="Abfragen").click()
        assert "Antwort (Revision des Registers" in page.locator("main").inner_text()
        b.check("de-resolve")

        page.goto(f"{base}/console/maintenance-notice?starts_at=2027-03-02T21:00"
                  "&ends_at=2027-03-03T02:00")  # fmt: skip
        assert "Arbeitstage Vorlauf nötig" in page.locator("main").inner_text()
        b.check("de-maintenance-notice")
        page.goto(f"{base}/console/rotate/{party['id']}")
        b.check("de-rotate")
        page.goto(f"{base}/console/rollouts")
        b.check("de-rollouts")

        answer = page.goto(f"{base}/console/authorities/{planted['court']}/edit")
        assert answer is not None and answer.status == 403
        assert "Nicht erlaubt" in page.locator("h1").inner_text()
        b.check("de-forbidden")

        # The switch: English for this person from now on, on the page it was chosen on.
        page.goto(f"{base}/console/authorities")
        page.get_by_role("navigation", name="Sprache").get_by_role("link", name="English").click()
        assert page.url.endswith("/console/authorities")
        assert page.locator("html").get_attribute("lang") == "en"
        page.get_by_role("navigation", name="Language").get_by_role("link", name="Deutsch").click()
        assert page.locator("html").get_attribute("lang") == "de"

        page.get_by_role("button", name="Abmelden").click()
        page.wait_for_url("**/console/signed-out")
        b.check("de-signed-out")

    assert not b.violations, "\n".join(b.violations)
    assert not b.problems, "\n".join(b.problems)
    for name in b.checked:
        for width in (1280, 360):
            assert (SCREENSHOTS / f"{name}-{width}.png").stat().st_size > 5_000
