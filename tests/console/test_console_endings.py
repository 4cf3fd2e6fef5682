"""Retire and revert are previewed before they are done, as a save is (issue 29, item 3):
what changes, what it causes (places a retirement leaves without a competent authority,
found by place through the gazetteer), then the person's confirmation, then a message
saying what happened. And a tie by place, not only by an identical key: a court keyed by
one of Munich's postal codes ties with the court competent for Munich's LAU.

One seeded dev service (SQLite) for the module; each test works on its own region.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from typing import Any

import pytest

from cdb_service.security.dev import DevPki
from tests.console.support import Api, confirm_of, csrf_of, sign_in_http
from tests.support.service_process import Service, running_service

pytestmark = pytest.mark.slow
MUNICH = ["80331", "80333", "80335", "80336", "80539"]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("console-endings")
    pki = DevPki(root / "var" / "pki").ensure()
    with running_service(root, {}, ca=pki.ca) as running:
        yield running


def _text(page: str, css_class: str) -> str:
    """The text of a page's first element of this class (tags dropped, entities read)."""
    found = re.search(rf'class="[^"]*\b{css_class}\b[^"]*"[^>]*>(.*?)</(ul|dl|div|section)>',
                      page, re.S)  # fmt: skip
    assert found, f"no .{css_class} on the page: {page[:2000]}"
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))


def _one(api: Api, kind: str, **query: str) -> dict[str, Any]:
    return api.first(kind, **query)


def test_retiring_a_criterion_names_the_places_it_leaves_then_asks(service: Service) -> None:
    de = Api(service, "admin-de")
    criterion = _one(de, "jurisdiction-criteria", owner="DE", ref="DE-EIO-EXECUTE-3")
    assert criterion["geo"] == [{"scheme": "nuts3", "code": "DE212", "country": "DE"}]
    today = dt.date.today()
    path = f"/console/jurisdiction-criteria/{criterion['id']}"
    with sign_in_http(service, "admin-de") as http:
        form = http.get(f"{path}/delete")
        assert 'formaction="' + path + '/retire"' in form.text
        sent = {"csrf": csrf_of(form.text), "expected": str(criterion["version"]),
                "valid_to": today.isoformat()}  # fmt: skip
        preview = http.post(f"{path}/retire", data=sent)
        assert preview.status_code == 200 and "nothing is saved yet" in preview.text
        changes = _text(preview.text, "changes")
        assert "Valid until" in changes and today.isoformat() in changes, changes
        effects = _text(preview.text, "effects")
        # Keyed by a NUTS 3 region, it covers Munich's five postal codes: from tomorrow
        # nobody executes an EIO there (the terrorism-only criterion does not cover all).
        tomorrow = (today + dt.timedelta(days=1)).isoformat()
        assert (
            f"From {tomorrow}: 5 places no longer covered for "
            "European Investigation Order (Executes requests)"
        ) in effects
        assert ", ".join(MUNICH) in effects, effects
        assert _one(de, "jurisdiction-criteria", ref="DE-EIO-EXECUTE-3").get("valid_to") is None
        # A confirmation of another day than the one previewed is previewed again.
        forged = http.post(f"{path}/retire", data=sent | {
            "valid_to": (today + dt.timedelta(days=9)).isoformat(),
            "confirm": confirm_of(preview.text)})  # fmt: skip
        assert forged.status_code == 200 and "nothing is saved yet" in forged.text
        done = http.post(f"{path}/retire", data=sent | {"confirm": confirm_of(preview.text)})
        assert done.status_code == 303, done.text
        page = http.get(done.headers["location"])
        message = _text(page.text, "notice ok")
        assert f"is retired: valid until {today.isoformat()}" in message, message
    assert (
        _one(de, "jurisdiction-criteria", ref="DE-EIO-EXECUTE-3")["valid_to"] == today.isoformat()
    )


def test_retiring_an_authority_names_the_places_its_criteria_leave(service: Service) -> None:
    de = Api(service, "admin-de")
    prosecution = _one(de, "authorities", code="DE:PROSECUTION-BERLIN")
    path = f"/console/authorities/{prosecution['id']}"
    with sign_in_http(service, "admin-de") as http:
        form = http.get(f"{path}/delete")
        preview = http.post(f"{path}/retire", data={
            "csrf": csrf_of(form.text), "expected": str(prosecution["version"]),
            "valid_to": "2030-06-30"})  # fmt: skip
        assert preview.status_code == 200 and "nothing is saved yet" in preview.text
        effects = _text(preview.text, "effects")
        assert (
            "From 2030-07-01: 5 places no longer covered for "
            "European Investigation Order (Executes requests)"
        ) in effects
        assert "10115" in effects, effects
        # A day that is no date is refused, said in a sentence, and nothing written.
        wrong = http.post(f"{path}/retire", data={
            "csrf": csrf_of(form.text), "expected": str(prosecution["version"]),
            "valid_to": "2030-13-45"})  # fmt: skip
        assert wrong.status_code == 422 and "Nothing was changed" in wrong.text, wrong.text
        assert "Valid until:" in _text(wrong.text, "notice error"), wrong.text
    assert _one(de, "authorities", code="DE:PROSECUTION-BERLIN").get("valid_to") is None


def test_a_revert_shows_what_comes_back_before_it_is_done(service: Service) -> None:
    de = Api(service, "admin-de")
    court = _one(de, "authorities", code="DE:COURT-BONN")
    city = court["address"]["city"]
    court = de.patch("authorities", court, {"address": {"city": "Bonn-Beuel"}})
    path = f"/console/authorities/{court['id']}"
    with sign_in_http(service, "admin-de") as http:
        entry = http.get(path)
        assert "Make version 1 current…" in entry.text
        sent = {"csrf": csrf_of(entry.text), "version": "1", "expected": str(court["version"])}
        preview = http.post(f"{path}/revert", data=sent)
        assert preview.status_code == 200 and "nothing is saved yet" in preview.text
        assert f"Make version 1 of {court['code']}" in preview.text
        changes = _text(preview.text, "changes")
        assert "Address: City" in changes and "Bonn-Beuel" in changes and city in changes
        assert _one(de, "authorities", code="DE:COURT-BONN")["address"]["city"] == "Bonn-Beuel"
        done = http.post(f"{path}/revert", data=sent | {"confirm": confirm_of(preview.text)})
        assert done.status_code == 303, done.text
        message = _text(http.get(done.headers["location"]).text, "notice ok")
        assert "Version 1 of DE:COURT-BONN" in message and "current again, as version 3" in message
    assert _one(de, "authorities", code="DE:COURT-BONN")["address"]["city"] == city


def test_a_tie_by_place_is_named_in_the_preview_and_on_the_entry_page(service: Service) -> None:
    """Munich's court is competent for EAWs by Munich's LAU; a criterion keyed by one of
    its postal codes ties with it there, although no key is the same."""
    de = Api(service, "admin-de")
    karlsruhe = _one(de, "authorities", code="DE:COURT-KARLSRUHE")
    with sign_in_http(service, "admin-de") as http:
        form = http.get("/console/jurisdiction-criteria/new?owner=DE")
        sent = {"csrf": csrf_of(form.text), "owner": "DE", "f:authority_id": karlsruhe["id"],
                "f:instrument": "eaw", "f:competence": "execute",
                "f:geo": "80331\n76131"}  # fmt: skip
        preview = http.post("/console/jurisdiction-criteria/new", data=sent)
        assert preview.status_code == 200 and "nothing is saved yet" in preview.text
        effects = _text(preview.text, "effects")
        assert "A tie with DE:COURT-MUNCHEN" in effects and "on 1 place: 80331." in effects
        assert "more precisely" in effects, effects  # a postal code inside its LAU
        created = http.post("/console/jurisdiction-criteria/new",
                            data=sent | {"confirm": confirm_of(preview.text)})  # fmt: skip
        assert created.status_code == 303, created.text
        page = http.get(f"/console/authorities/{karlsruhe['id']}")
        jurisdiction = page.text.split('id="h-jurisdiction"', 1)[1].split("</section>", 1)[0]
        ties = html.unescape(re.sub(r"<[^>]+>", " ", jurisdiction))
        assert "Ties with another authority" in ties and "DE:COURT-MUNCHEN" in ties, ties
        assert "on 1 place: 80331" in ties, ties
