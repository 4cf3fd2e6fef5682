"""A German administrator's forms in Debian's Chromium: names added in two languages, a
court and its criterion of three postal codes created, all without typing JSON or a UUID;
every error of a form shown at once, each beside its field.

Every page is checked with axe-core (no serious or critical violation), for horizontal
scrolling at 360 px, and screenshotted at 1280 and 360 px under var/screenshots/console/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from cdb_service.registry.kinds import KINDS
from cdb_service.security.dev import DevPki
from tests.console.support import AXE, CHROMIUM, SCREENSHOTS, Api, Browser, browser, origin
from tests.support.service_process import Service, running_service

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make chromium)"),
    pytest.mark.skipif(not AXE.exists(), reason="axe-core is missing: run `make axe`"),
]

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("console-forms")
    pki = DevPki(root / "var" / "pki").ensure()
    with running_service(root, {}, ca=pki.ca) as running:
        yield running


def _sign_in(b: Browser, base: str, client: str) -> None:
    page = b.page
    page.goto(f"{base}/console/")
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url("**/dev-issuer/authorize**")
    page.get_by_role("button", name=client).click()
    page.wait_for_url(f"{base}/console/")


def _typed_into(b: Browser) -> list[str]:
    """What is in the form's text controls now: no JSON, no UUID may be among it."""
    return list(b.page.eval_on_selector_all(
        "form.entry-form input:not([type=hidden]):not([type=checkbox]), form.entry-form textarea",
        "els => els.map(e => e.value)"))  # fmt: skip


def test_a_clerk_adds_names_and_creates_a_court_with_its_postal_codes(service: Service) -> None:
    base = origin(service)
    # A court with an English name only (the quality report asks for one in German).
    with Api(service, "admin-de").http() as http:
        planted = http.post("/authorities", json={
            "owner": "DE", "code": "DE:AG-ENGLISH-ONLY", "kind": "court",
            "names": {"en": "Local Court with an English name only"}})  # fmt: skip
    assert planted.status_code == 201, planted.text
    court = planted.json()
    with browser(base, SCREENSHOTS) as b:
        page = b.page
        _sign_in(b, base, "admin-de")

        # A court's edit form: its names one row a language, an empty row to add one.
        page.goto(f"{base}/console/authorities/{court['id']}")
        b.check("forms-entry")
        page.get_by_role("link", name="Edit").click()
        b.check("forms-edit")
        rows = page.locator(".names .name-row")
        assert rows.count() == 3  # English, and two empty rows to add a language
        empty = rows.nth(1)
        languages = empty.locator("select option").all_inner_texts()
        assert len(languages) == 25, languages  # "choose…" and the 24 official languages
        empty.locator("select").select_option("fr")
        empty.locator("input").fill("Tribunal cantonal de test")
        empty = rows.nth(2)
        empty.locator("select").select_option("de")
        empty.locator("input").fill("Amtsgericht Prüfstadt")
        assert not any(v.startswith(("{", "[")) or UUID.search(v) for v in _typed_into(b))
        page.get_by_role("button", name="Save").click()
        preview = page.locator("#preview").inner_text()
        assert "Name (French)" in preview and "Tribunal cantonal de test" in preview, preview
        page.get_by_role("button", name="Confirm and save").click()
        main = page.locator("main").inner_text()
        assert "Saved as version" in main, main
        assert "Tribunal cantonal de test" in main and "Amtsgericht Prüfstadt" in main, main

        # A new court: kind and routing party picked from lists, its name in German.
        page.goto(f"{base}/console/authorities/new")
        b.check("forms-create-court")
        page.get_by_label("Code", exact=False).first.fill("DE:AG-PRUEFSTADT")
        page.get_by_label("Kind of authority").select_option("court")
        page.locator(".names select").first.select_option("de")
        page.locator(".names input").first.fill("Amtsgericht Neustadt an der Prüfung")
        page.get_by_label("City", exact=False).fill("Berlin")
        page.get_by_label("Country", exact=False).first.select_option("DE")
        parties = page.get_by_label("Routing party").locator("option").all_inner_texts()
        assert parties and not any(UUID.search(p) for p in parties), parties
        page.get_by_label("Routing party").select_option(index=1)
        page.get_by_role("button", name="Create").click()
        page.get_by_role("button", name="Confirm and create").click()
        main = page.locator("main").inner_text()
        assert "Created" in main, main

        # Its criterion: the court chosen by code and name, three postal codes one a line.
        page.goto(f"{base}/console/jurisdiction-criteria/new")
        b.check("forms-create-criterion")
        authority = page.get_by_label("Authority")
        option = authority.locator("option", has_text="DE:AG-PRUEFSTADT")
        authority.select_option(str(option.get_attribute("value")))
        page.get_by_label("Instrument").select_option("eio")
        page.get_by_label("Competence").select_option("execute")
        page.get_by_label("Places").fill("10115\n10117\n10119")
        assert not any(v.startswith(("{", "[")) or UUID.search(v) for v in _typed_into(b))
        page.get_by_role("button", name="Create").click()
        preview = page.locator("#preview").inner_text()
        assert "10115, 10117, 10119" in preview and "A tie with" in preview, preview
        page.get_by_role("button", name="Confirm and create").click()
        main = page.locator("main").inner_text()
        assert "Created" in main, main
        for code in ("10115", "10117", "10119"):
            assert code in main
        b.check("forms-criterion")

        # The court's page: its jurisdiction, and the tie it now has with the prosecution
        # office whose criterion names two of the same postal codes for the same EIOs.
        page.get_by_role("link", name="DE:AG-PRUEFSTADT", exact=False).first.click()
        jurisdiction = page.locator("section", has=page.get_by_role("heading", name="Jurisdiction"))
        text = jurisdiction.inner_text()
        assert "covering 3 places" in text and "10115, 10117, 10119" in text, text
        assert "Ties with another authority" in text and "DE:PROSECUTION-BERLIN" in text, text
        assert "on 2 places: 10115, 10117" in text, text
        b.check("forms-court-ties")

        # Every error at once, each beside its field and listed at the top.
        page.goto(f"{base}/console/authorities/new")
        page.get_by_label("Code", exact=False).first.fill("FR:WRONG")
        page.get_by_role("button", name="Create").click()
        summary = page.locator("#errors").inner_text()
        assert "Code" in summary and "Kind of authority" in summary and "Name" in summary
        for field in ("#field-code-error", "#field-kind-error", "#field-names-error"):
            assert page.locator(field).is_visible(), field
        b.check("forms-errors")

        # The court's page: its names in every language, its routing party by name.
        page.goto(f"{base}/console/authorities/{court['id']}")
        main = page.locator("main").inner_text()
        assert "Tribunal cantonal de test (French)" in main, main
        assert "Amtsgericht Prüfstadt (German)" in main
        assert not UUID.search(page.locator("dl.facts.entry").inner_text())
        page.locator("details.technical summary").click()  # UUIDs only in there
        assert court["id"] in page.locator("details.technical").inner_text()

        # A routing party's certificates: their facts beside each, a renewal added as PEM
        # text, the form otherwise as it was.
        party = Api(service, "admin-de").first("routing-parties", owner="DE")
        page.goto(f"{base}/console/routing-parties/{party['id']}")
        facts = page.locator("dl.facts.entry").inner_text()
        assert "SHA-256 fingerprint" in facts and "Valid until (not after)" in facts, facts
        b.check("forms-routing-party")
        page.get_by_role("link", name="Edit").click()
        rows = page.locator("fieldset.rows", has=page.locator("legend", has_text="Certificates"))
        assert "Subject" in rows.locator("dl.cert").first.inner_text()
        b.check("forms-edit-routing-party")
        page.get_by_role("button", name="Save").click()
        assert "Nothing was changed" in page.locator("main").inner_text(), page.locator(
            "table.diff"
        ).inner_text()

    assert not b.violations, "\n".join(b.violations)
    assert not b.problems, "\n".join(b.problems)


def test_an_operator_s_choice_of_owner_is_remembered(service: Service) -> None:
    base = origin(service)
    with browser(base, SCREENSHOTS) as b:
        page = b.page
        _sign_in(b, base, "operator")
        assert "Choose the owner" in page.locator("main").inner_text()
        b.check("forms-operator-first-visit")
        page.get_by_label("Owner").select_option("DE")
        page.get_by_role("button", name="Show").click()
        assert "Germany (DE)" in page.locator("h1").inner_text()
        # The next visit opens on the same owner, and the lists are that owner's.
        page.goto(f"{base}/console/")
        assert "Germany (DE)" in page.locator("h1").inner_text()
        page.goto(f"{base}/console/authorities")
        assert "Authorities of DE" in page.locator("h1").inner_text()
        # Its filters are pick lists (a kind, a routing party by name), never a UUID typed.
        page.get_by_label("Kind of authority").select_option("court")
        parties = page.get_by_label("Routing party").locator("option").all_inner_texts()
        assert "de-justice-ap" in parties and not any(UUID.search(p) for p in parties)
        page.get_by_role("button", name="Search").click()
        listed = page.locator("table.list").inner_text()
        assert "DE:COURT-BONN" in listed and "DE:PROSECUTION-BONN" not in listed, listed
        b.check("forms-operator-list")
    assert not b.violations, "\n".join(b.violations)
    assert not b.problems, "\n".join(b.problems)


def test_every_kind_s_form_sent_back_unchanged_changes_nothing(service: Service) -> None:
    """Each kind's edit form, shown and saved as it is, writes no new version: what the
    form shows reads back as the entry it was made from (dates, times in Brussels,
    places, certificates, names)."""
    base = origin(service)
    api = Api(service, "operator")
    with api.http() as http:  # kinds the seed has none of: times, a recurrence
        for kind, body in (
            ("maintenance-windows", {"owner": "EC", "component": "cdb", "reason": "upgrade",
                                     "starts_at": "2027-03-02T21:00:00+01:00",
                                     "ends_at": "2027-03-02T23:30:00+01:00",
                                     "recurrence": {"frequency": "weekly", "weekday": "tuesday",
                                                    "time": "21:00", "duration_minutes": 150}}),
            ("incidents", {"owner": "EC", "component": "cdb", "description": "failover",
                           "started_at": "2026-11-29T10:00:00+01:00",
                           "expected_recovery_at": "2026-11-29T12:00:00+01:00"}),
        ):  # fmt: skip
            made = http.post(f"/{kind}", json=body)
            assert made.status_code == 201, made.text
    tried = []
    with browser(base, SCREENSHOTS) as b:
        page = b.page
        _sign_in(b, base, "operator")
        for kind in KINDS:
            with api.http() as http:
                found = http.get(f"/{kind}", params={"limit": "1"}).json().get("items") or []
            if not found:
                continue
            entry = found[0]
            page.goto(f"{base}/console/{kind}/{entry['id']}/edit")
            page.get_by_role("button", name="Save").click()
            main = page.locator("main").inner_text()
            assert "Nothing was changed" in main, f"{kind}: {main[:2000]}"
            tried.append(kind)
    assert set(tried) >= {"authorities", "routing-parties", "jurisdiction-criteria",
                          "national-correspondents", "national-members",
                          "maintenance-windows", "incidents"}, tried  # fmt: skip
