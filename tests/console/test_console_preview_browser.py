"""Preview before harm and spreadsheets in the browser (issue 29, items 3 and 4), walked by
a German administrator in Debian's Chromium: a criterion that would tie her new court
with an existing one is named in the preview before anything is saved; she cancels,
fixes the places and saves. She downloads her entries as a workbook, which the test
edits with openpyxl (an address with a postal code that starts with a zero, a new row,
a row removed), and uploads it in merge mode (the removed row is named and kept), then
in replace mode (confirmed, it is deleted). Last, she deletes an entry after confirming.

Every page is checked with axe-core, for horizontal scrolling at 360 px, and
screenshotted at 1280 and 360 px under var/screenshots/console/preview-*.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdb_service.security.dev import DevPki
from tests.console.support import AXE, CHROMIUM, SCREENSHOTS, Api, Browser, browser, origin
from tests.support.service_process import Service, running_service

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make chromium)"),
    pytest.mark.skipif(not AXE.exists(), reason="axe-core is missing: run `make axe`"),
]

EXISTING = "DE:AG-DRESDEN-ALTSTADT"
NEW = "DE:AG-DRESDEN-NEUSTADT"
REMOVED = "DE:AG-TO-BE-REMOVED"
ADDED = "DE:AG-ADDED-IN-EXCEL"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("console-preview")
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


def _authority(service: Service, code: str) -> dict[str, Any] | None:
    with Api(service, "admin-de").http() as http:
        found = http.get("/authorities", params={"code": code})
    assert found.status_code == 200, found.text
    items = found.json()["items"]
    return dict(items[0]) if items else None


def _criteria_of(service: Service, authority: dict[str, Any]) -> list[dict[str, Any]]:
    with Api(service, "admin-de").http() as http:
        found = http.get("/jurisdiction-criteria", params={"authority_id": authority["id"]})
    assert found.status_code == 200, found.text
    return list(found.json()["items"])


def _plant(service: Service) -> None:
    """An existing court competent for EIOs in two of Dresden's postal codes, and a court
    that nothing refers to (the row the clerk will remove from the workbook)."""
    with Api(service, "admin-de").http() as http:
        for code, name in ((EXISTING, "Amtsgericht Dresden-Altstadt"),
                           (REMOVED, "Amtsgericht zum Entfernen")):  # fmt: skip
            made = http.post("/authorities", json={
                "owner": "DE", "code": code, "kind": "court", "names": {"de": name},
                "address": {"street": "Olbrichtplatz 1", "postal_code": "01099",
                            "city": "Dresden", "country": "DE"}})  # fmt: skip
            assert made.status_code == 201, made.text
        geo = [{"scheme": "postal-code", "code": code} for code in ("01067", "01069")]
        made = http.post("/jurisdiction-criteria", json={
            "owner": "DE", "authority_code": EXISTING, "instrument": "eio",
            "competence": "execute", "geo": geo})  # fmt: skip
        assert made.status_code == 201, made.text


def _fill_criterion(b: Browser, places: str) -> None:
    page = b.page
    authority = page.get_by_label("Authority")
    option = authority.locator("option", has_text=NEW)
    authority.select_option(str(option.get_attribute("value")))
    page.get_by_label("Instrument").select_option("eio")
    page.get_by_label("Competence").select_option("execute")
    page.get_by_label("Places").fill(places)


def _edited_workbook(data: bytes, path: Path) -> None:
    """The download, edited as a clerk would in a spreadsheet program: one address, one
    new row, one row removed."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data))
    sheet = book["authorities"]
    header = [c.value for c in sheet[1]]
    col = {name: i for i, name in enumerate(header)}
    rows = list(sheet.iter_rows(min_row=2))
    mine = next(r for r in rows if r[col["code"]].value == NEW)
    # Exported as text cells: a postal code with a leading zero is not a number.
    postal = mine[col["address.postal_code"]]
    assert postal.data_type == "s" and postal.number_format == "@", (
        postal.value,
        postal.number_format,
    )
    assert postal.value == "01097"
    mine[col["address.street"]].value = "Hansastraße 4"
    mine[col["address.postal_code"]].value = "01067"
    removed = next(r for r in rows if r[col["code"]].value == REMOVED)
    sheet.delete_rows(removed[0].row)
    added = [None] * len(header)
    added[col["code"]], added[col["kind"]] = ADDED, "court"
    added[col["names.de"]] = "Amtsgericht aus der Tabelle"
    sheet.append(added)
    # The court's criterion gains a place the existing court has (a tie, named before).
    criteria = book["jurisdiction-criteria"]
    header = [c.value for c in criteria[1]]
    for row in criteria.iter_rows(min_row=2):
        geo = row[header.index("geo")]
        if '"01097"' in str(geo.value):
            geo.value = str(geo.value).replace('"01097"', '"01069"')
    book.save(path)


def _upload(b: Browser, path: Path, mode: str) -> str:
    page = b.page
    page.goto(f"{b.base}/console/import")
    page.locator("input#file").set_input_files(str(path))
    page.get_by_label("Mode").select_option(mode)
    page.get_by_role("button", name="Check (dry run)").click()
    main = page.locator("main").inner_text()
    assert "Dry run" in main, main[:3000]
    return str(main)


def test_a_clerk_previews_downloads_uploads_and_deletes(service: Service, tmp_path: Path) -> None:
    base = origin(service)
    _plant(service)
    with browser(base, SCREENSHOTS) as b:
        page = b.page
        _sign_in(b, base, "admin-de")

        # A new court: what it will be is shown before it is created.
        page.goto(f"{base}/console/authorities/new")
        page.get_by_label("Code", exact=False).first.fill(NEW)
        page.get_by_label("Kind of authority").select_option("court")
        page.locator(".names select").first.select_option("de")
        page.locator(".names input").first.fill("Amtsgericht Dresden-Neustadt")
        page.get_by_label("Street", exact=False).fill("Hauptstraße 1")
        page.get_by_label("Postal code", exact=False).fill("01097")
        page.get_by_label("City", exact=False).fill("Dresden")
        page.get_by_role("button", name="Create").click()
        preview = page.locator("#preview").inner_text()
        assert "Kind of authority" in preview and "court — Court or tribunal" in preview, preview
        assert "Name (German)\nAmtsgericht Dresden-Neustadt" in preview, preview
        assert "Contacts" not in preview  # nothing typed there, nothing said
        assert _authority(service, NEW) is None  # nothing is written before she confirms
        b.check("preview-create-court")
        page.get_by_role("button", name="Confirm and create").click()
        assert "Created" in page.locator("main").inner_text()
        court = _authority(service, NEW)
        assert court is not None

        # Its criterion names a place the existing court has: the preview names the tie.
        page.goto(f"{base}/console/jurisdiction-criteria/new")
        _fill_criterion(b, "01067\n01097\n01099")
        page.get_by_role("button", name="Create").click()
        preview = page.locator("#preview").inner_text()
        assert "A tie with" in preview and EXISTING in preview, preview
        assert "on 1 place: 01067" in preview, preview
        assert "01067, 01097, 01099" in preview  # the places, one after the other
        b.check("preview-tie")
        # She cancels: nothing was created.
        page.get_by_role("link", name="Cancel").first.click()
        assert not _criteria_of(service, court)
        # She fixes the places and saves: no tie now, and she confirms.
        page.goto(f"{base}/console/jurisdiction-criteria/new")
        _fill_criterion(b, "01097\n01099")
        page.get_by_role("button", name="Create").click()
        preview = page.locator("#preview").inner_text()
        assert "A tie with" not in preview and "no tie with another authority" in preview
        page.get_by_role("button", name="Confirm and create").click()
        assert "Created" in page.locator("main").inner_text()
        assert len(_criteria_of(service, court)) == 1
        # A tie by place, not by key: Munich's prosecution is competent for EIOs in all
        # of NUTS 3 DE212, which holds the postal code 80331.
        page.goto(f"{base}/console/jurisdiction-criteria/new")
        _fill_criterion(b, "80331")
        page.get_by_role("button", name="Create").click()
        preview = page.locator("#preview").inner_text()
        assert "A tie with DE:PROSECUTION-MUNCHEN" in preview, preview
        assert "on 1 place: 80331" in preview, preview
        b.check("preview-tie-by-place")
        page.get_by_role("link", name="Cancel").first.click()
        assert len(_criteria_of(service, court)) == 1

        # A confirmation whose form was changed after the preview is previewed again.
        page.goto(f"{base}/console/authorities/{court['id']}/edit")
        page.get_by_label("City", exact=False).fill("Dresden (Neustadt)")
        page.get_by_role("button", name="Save").click()
        page.get_by_label("City", exact=False).fill("Something else")
        page.get_by_role("button", name="Check again").click()
        preview = page.locator("#preview").inner_text()
        assert "Something else" in preview and "Dresden (Neustadt)" not in preview, preview
        assert _authority(service, NEW)["address"]["city"] == "Dresden"  # type: ignore[index]
        page.get_by_role("link", name="Cancel").first.click()

        # The upload page: downloads in the upload's shape, and how to save a CSV.
        page.goto(f"{base}/console/import")
        page.get_by_text("Saving a CSV file from a spreadsheet program").click()
        help_text = page.locator("details.help-csv").inner_text()
        assert "UTF-8" in help_text and "comma" in help_text, help_text
        b.check("preview-upload-page")
        with page.expect_download() as download:
            page.get_by_role("link", name="Every kind as a workbook (XLSX", exact=False).click()
        assert download.value.suggested_filename == "cdb-DE.xlsx"
        workbook = Path(download.value.path()).read_bytes()
        with page.expect_download() as csv_download:
            page.get_by_role("link", name="Authorities as CSV").click()
        csv_text = Path(csv_download.value.path()).read_text(encoding="utf-8")
        assert csv_text.startswith("id,") and NEW in csv_text and ",01097," in csv_text

        edited = tmp_path / "cdb-DE.xlsx"
        _edited_workbook(workbook, edited)

        # Merge mode: the removed row is named, and not deleted.
        main = _upload(b, edited, "merge")
        absent = page.locator("#absent").inner_text()
        assert "Present in the registry, not in your file: not deleted" in absent, absent
        assert REMOVED in absent and "use replace mode to delete them" in absent.lower(), absent
        changes = page.locator("table.changes").inner_text()
        assert ADDED in changes and "created" in changes, changes
        assert NEW in changes and "Address" in changes and "Places" in changes, changes
        effects = page.locator("ul.effects").inner_text()
        assert f"A tie with {EXISTING}" in effects and "on 1 place: 01069" in effects, effects
        # The places the court no longer has for EIOs are named too.
        lost = "1 place no longer covered for European Investigation Order (Executes requests)"
        assert f"{lost}: 01097" in effects, effects
        b.check("preview-upload-merge")
        page.get_by_role("button", name="Apply these changes").click()
        assert "Applied as revision" in page.locator("main").inner_text()
        assert _authority(service, REMOVED) is not None
        mine = _authority(service, NEW)
        assert mine and mine["address"]["postal_code"] == "01067"  # its leading zero kept
        assert mine["address"]["street"] == "Hansastraße 4"
        assert _authority(service, ADDED) is not None

        # Replace mode: the removed row is deleted, once she confirms.
        main = _upload(b, edited, "replace")
        changes = page.locator("table.changes").inner_text()
        assert "deleted" in changes and REMOVED in changes, changes
        assert "not in your file" not in main
        b.check("preview-upload-replace")
        assert _authority(service, REMOVED) is not None  # a dry run wrote nothing
        page.get_by_role("button", name="Confirm: apply and delete", exact=False).click()
        assert "Applied as revision" in page.locator("main").inner_text()
        assert _authority(service, REMOVED) is None

        # Delete: not offered where entries refer to it (the court has its criterion).
        page.goto(f"{base}/console/authorities/{court['id']}/delete")
        assert page.get_by_role("button", name="Delete").count() == 0
        main = page.locator("main").inner_text()
        assert "cannot be deleted while these refer to it" in main
        # Its criterion (no reference of its own) by what it is for, not by a UUID.
        criterion = "Jurisdiction criteria: European Investigation Order, Executes requests"
        assert criterion in main, main
        b.check("preview-delete-blocked")
        # Retiring it instead: what it leaves uncovered is said first, from the day after.
        last = dt.date.today() + dt.timedelta(days=30)
        page.get_by_label("Valid until", exact=False).fill(last.isoformat())
        page.get_by_role("button", name="Retire").click()
        preview = page.locator("#preview").inner_text()
        after = (last + dt.timedelta(days=1)).isoformat()
        assert (
            f"From {after}: 1 place no longer covered for European Investigation Order "
            "(Executes requests): 01099"
        ) in preview
        assert _authority(service, NEW).get("valid_to") is None  # type: ignore[union-attr]
        assert page.get_by_label("Valid until", exact=False).input_value() == last.isoformat()
        b.check("preview-retire")
        page.get_by_role("button", name="Confirm and retire").click()
        message = page.locator("main [role=status]").first.inner_text()
        assert f"is retired: valid until {last.isoformat()}" in message, message
        assert _authority(service, NEW)["valid_to"] == last.isoformat()  # type: ignore[index]
        # The court added in the workbook: retire or delete explained, then confirmed.
        added = _authority(service, ADDED)
        assert added is not None
        page.goto(f"{base}/console/authorities/{added['id']}")
        page.get_by_role("link", name="Retire or delete").click()
        main = page.locator("main").inner_text()
        assert "Retire" in main and "for good" in main, main
        b.check("preview-delete")
        page.get_by_role("button", name="Delete").click()
        main = page.locator("main").inner_text()
        assert "This cannot be undone" in main and "retire it instead" in main, main
        assert _authority(service, ADDED) is not None  # asked once more, nothing deleted
        b.check("preview-delete-confirm")
        page.get_by_role("button", name="Yes, delete permanently").click()
        message = page.locator("main [role=status]").first.inner_text()
        assert "was deleted permanently" in message and ADDED in message, message
        assert _authority(service, ADDED) is None
        b.check("preview-deleted")

    assert not b.violations, "\n".join(b.violations)
    assert not b.problems, "\n".join(b.problems)
