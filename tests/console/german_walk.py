"""The German pages the main German walk (test_console_browser.py) does not open, in the
same browser: a revert's and a retirement's preview, a delete's confirmation, a criterion's
tie preview, an upload's results in merge and replace mode (dry runs: nothing applied), and
the operator's choice of owner on his first visit. Each is checked by the walk's Browser
(axe, no horizontal scroll, screenshots at 1280 and 360 px as de-*)."""

from __future__ import annotations

import io
from pathlib import Path

from tests.console.support import Api, Browser
from tests.support.service_process import Service

SCREEN = "DE:AG-BILDSCHIRM"  # a court made for these pages
GONE = "DE:AG-LOESCHEN"  # one nothing refers to: deleted in replace mode, confirmable


def plant(service: Service) -> None:
    with Api(service, "admin-de").http() as http:
        for code, name in ((SCREEN, "Amtsgericht Bildschirm"), (GONE, "Amtsgericht Löschen")):
            made = http.post("/authorities", json={
                "owner": "DE", "code": code, "kind": "court", "names": {"de": name},
                "address": {"street": "Am Markt 1", "postal_code": "01097",
                            "city": "Dresden", "country": "DE"}})  # fmt: skip
            assert made.status_code == 201, made.text
        made = http.post("/jurisdiction-criteria", json={
            "owner": "DE", "authority_code": SCREEN, "instrument": "eio",
            "competence": "execute",
            "geo": [{"scheme": "postal-code", "code": "01099"}]})  # fmt: skip
        assert made.status_code == 201, made.text


def _id(service: Service, code: str) -> str:
    return str(Api(service, "admin-de").first("authorities", owner="DE", code=code)["id"])


def _confirm(b: Browser) -> None:
    b.page.locator("#preview button[name=confirm]").click()


def walk(b: Browser, service: Service, tmp_path: Path) -> None:
    page, base = b.page, b.base
    screen, gone = _id(service, SCREEN), _id(service, GONE)

    # A saved change, then the revert's preview (cancelled).
    page.goto(f"{base}/console/authorities/{screen}/edit")
    page.locator("#field-address-city").fill("Dresden-Neustadt")
    page.get_by_role("button", name="Speichern").click()
    _confirm(b)
    page.locator("form[action$='/revert'] button").first.click()
    preview = page.locator("#preview").inner_text()
    assert "Dresden" in preview, preview
    b.check("de-revert-preview")

    # A criterion that ties with Munich's prosecution: the instrument by its German name.
    page.goto(f"{base}/console/jurisdiction-criteria/new")
    authority = page.get_by_label("Behörde")
    option = authority.locator("option", has_text=SCREEN)
    authority.select_option(str(option.get_attribute("value")))
    instrument = page.get_by_label("Rechtsinstrument")
    assert "Europäische Ermittlungsanordnung" in instrument.inner_text()
    instrument.select_option("eio")
    page.get_by_label("Zuständigkeit").select_option("execute")
    page.get_by_label("Orte").fill("80331")
    page.get_by_role("button", name="Anlegen").click()
    preview = page.locator("#preview").inner_text()
    assert "DE:PROSECUTION-MUNCHEN" in preview, preview
    assert "Europäische Ermittlungsanordnung" in preview, preview
    b.check("de-tie-preview")

    # Retiring the court: what it leaves uncovered, named in German, before anything is saved.
    page.goto(f"{base}/console/authorities/{screen}/delete")
    page.get_by_label("Gültig bis", exact=False).fill("2031-01-31")
    page.locator("button[value=retire]").click()
    preview = page.locator("#preview").inner_text()
    lost = "für Europäische Ermittlungsanordnung (Vollstreckt Ersuchen) nicht mehr abgedeckt"
    assert f"{lost}: 01099" in preview, preview
    b.check("de-retire-preview")

    # Delete asks once more and says it is permanent.
    page.goto(f"{base}/console/authorities/{gone}/delete")
    page.locator("button[value=delete]").click()
    assert page.get_by_role("button", name="Ja, endgültig löschen").count() == 1
    b.check("de-delete-confirm")

    # The owner's workbook, one court left out and one address changed; merge and replace
    # mode's dry runs.
    page.goto(f"{base}/console/import")
    with page.expect_download() as download:
        page.locator("a[href*='format=xlsx']").first.click()
    edited = tmp_path / "dresden.xlsx"
    _without(Path(download.value.path()).read_bytes(), edited)
    for mode in ("merge", "replace"):
        page.goto(f"{base}/console/import")
        page.locator("input#file").set_input_files(str(edited))
        page.get_by_label("Modus").select_option(mode)
        page.get_by_role("button", name="Prüfen (Probelauf)").click()
        main = page.locator("main").inner_text()
        assert "Probelauf von dresden.xlsx" in main and GONE in main, main[:2000]
        b.check(f"de-upload-{mode}")


def _without(data: bytes, path: Path) -> None:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data))
    sheet = book["authorities"]
    header = [c.value for c in sheet[1]]
    rows = list(sheet.iter_rows(min_row=2))
    mine = next(r for r in rows if r[header.index("code")].value == SCREEN)
    mine[header.index("address.street")].value = "Hauptstraße 2"
    gone = next(r for r in rows if r[header.index("code")].value == GONE)
    sheet.delete_rows(gone[0].row)
    book.save(path)


def operator_first_visit(b: Browser) -> None:
    """Signed in as the operator in a browser that never chose an owner: the picker."""
    page, base = b.page, b.base
    page.goto(f"{base}/console/")
    page.get_by_role("link", name="Anmelden").click()
    page.wait_for_url("**/dev-issuer/authorize**")
    page.get_by_role("button", name="operator").click()
    page.wait_for_url(f"{base}/console/")
    assert "Wählen Sie den Inhaber" in page.locator("main").inner_text()
    b.check("de-operator-first-visit")
