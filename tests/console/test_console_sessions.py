"""Console sessions over plain HTTP: the cookie's attributes, CSRF tokens, sign-out and the
idle timeout, a stale edit form, and the audit trail naming the person.

One dev service for the module with an idle timeout of two seconds
(`CDB_CONSOLE_IDLE_TIMEOUT_S`), so that the timeout is seen without waiting long.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from cdb_service.registry.kinds.incidents.schemas import IncidentIn
from cdb_service.security.dev import DevPki
from tests.console.support import (
    Api,
    confirm_of,
    csrf_of,
    origin,
    previewed_then_confirmed,
    sign_in_http,
)
from tests.support.service_process import Service, running_service
from tests.support.tls import client_context

pytestmark = pytest.mark.slow
IDLE_S = 2
BURST = 40


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("console-sessions")
    pki = DevPki(root / "var" / "pki").ensure()
    # A small burst of refusals per address: the last test floods the sign-in start.
    variables = {"CDB_CONSOLE_IDLE_TIMEOUT_S": str(IDLE_S),
                 "CDB_RATE_LIMIT_ANONYMOUS_BURST": str(BURST),
                 "CDB_RATE_LIMIT_ANONYMOUS": "0.2"}  # fmt: skip
    with running_service(root, variables, ca=pki.ca) as running:
        yield running


def test_the_session_cookie_is_locked_down(service: Service) -> None:
    with sign_in_http(service, "admin-fr") as http:
        home = http.get("/console/")
        assert home.status_code == 200 and "administrator of FR" in home.text
        cookie = next(c for c in http.cookies.jar if c.name == "__Host-cdb-console")
        assert cookie.secure and cookie.path == "/"
        assert cookie.has_nonstandard_attr("HttpOnly")
        assert str(cookie.get_nonstandard_attr("SameSite")).lower() == "strict"
        assert home.headers["cache-control"] == "no-store"
        policy = home.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy
        assert "<script" not in home.text


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(service: Service) -> None:
    court = Api(service, "admin-fr").first("authorities", owner="FR")
    with sign_in_http(service, "admin-fr") as http:
        form = http.get(f"/console/authorities/{court['id']}/edit")
        token = csrf_of(form.text)
        fields = {"expected": str(court["version"]), "f:address.street": "Forged street 1"}
        for sent in (fields, fields | {"csrf": "not-the-token"}):
            refused = http.post(f"/console/authorities/{court['id']}/edit", data=sent)
            assert refused.status_code == 403
            assert "security token" in refused.text
        assert (
            Api(service, "admin-fr").first("authorities", owner="FR")["version"] == court["version"]
        )
        # The same form with its token goes through: the refusal was the token's alone.
        accepted = previewed_then_confirmed(http, f"/console/authorities/{court['id']}/edit",
                                            fields | {"csrf": token})  # fmt: skip
        assert accepted.status_code == 303, accepted.text


def test_after_sign_out_the_cookie_opens_nothing(service: Service) -> None:
    with sign_in_http(service, "admin-fr") as http:
        cookie = http.cookies.get("__Host-cdb-console")
        home = http.get("/console/")
        out = http.post("/console/sign-out", data={"csrf": csrf_of(home.text)})
        assert out.status_code == 303 and out.headers["location"] == "/console/signed-out"
        # The old cookie, sent again as a thief would: sign-in page, not the console.
        http.cookies.set("__Host-cdb-console", str(cookie), domain="localhost")
        again = http.get("/console/")
        assert again.status_code == 302 and "/console/sign-in" in again.headers["location"]


def test_an_idle_session_ends(service: Service) -> None:
    with sign_in_http(service, "admin-fr") as http:
        assert http.get("/console/").status_code == 200
        time.sleep(IDLE_S + 0.5)
        idle = http.get("/console/")
        assert idle.status_code == 302 and "/console/sign-in" in idle.headers["location"]
        # A form sent with the ended session says so and saves nothing.
        sent = http.post("/console/sign-out", data={"csrf": "whatever"})
        assert sent.status_code == 401 and "session has ended" in sent.text


def test_a_stale_form_says_who_changed_what_and_saves_nothing(service: Service) -> None:
    fr = Api(service, "admin-fr")
    court = fr.first("authorities", owner="FR", q="lyon")
    with sign_in_http(service, "admin-fr") as http:
        form = http.get(f"/console/authorities/{court['id']}/edit")
        token = csrf_of(form.text)
        # Meanwhile, a colleague changes the city through the API.
        fr.patch("authorities", court, {"languages": ["fr", "en"]})
        sent = http.post(f"/console/authorities/{court['id']}/edit", data={
            "csrf": token, "expected": str(court["version"]),
            "f:address.street": "3 rue nouvelle",
        })  # fmt: skip
        assert sent.status_code == 409
        assert "Someone else changed this entry" in sent.text
        assert "languages" in sent.text and "3 rue nouvelle" in sent.text
        now = fr.first("authorities", owner="FR", q="lyon")
        assert now["version"] == court["version"] + 1
        assert now["address"].get("street") != "3 rue nouvelle"


def test_the_audit_trail_names_the_person(service: Service) -> None:
    before = service.audit_seq()
    court = Api(service, "admin-fr").first("authorities", owner="FR", q="marseille")
    with sign_in_http(service, "admin-fr") as http:
        form = http.get(f"/console/authorities/{court['id']}/edit")
        sent = previewed_then_confirmed(http, f"/console/authorities/{court['id']}/edit", {
            "csrf": csrf_of(form.text), "expected": str(court["version"]),
            "f:address.street": "Place Monthyon",
        })  # fmt: skip
        assert sent.status_code == 303, sent.text
        german = Api(service, "admin-de").first("authorities", owner="DE")
        refused = http.get(f"/console/authorities/{german['id']}/edit")
        assert refused.status_code == 403
    events = service.audit_after(before)
    write = [e for e in events if e["outcome"] == "ok" and e["subject"] == "admin-fr (admin-fr)"]
    assert write, events
    denied = [e for e in events if e["outcome"] != "ok" and "admin-fr" in e["subject"]]
    assert denied, events


def _total(html: str) -> int:
    found = re.search(r'<p class="total" role="status">(\d+) entr', html)
    assert found, html[:2000]
    return int(found.group(1))


def test_lists_search_filter_count_and_page(service: Service) -> None:
    with sign_in_http(service, "admin-fr") as http:
        lyon = http.get("/console/authorities", params={"q": "LYON"})
        assert lyon.status_code == 200 and _total(lyon.text) == 2
        assert "Tribunal judiciaire de Lyon" in lyon.text or "Lyon Judicial Court" in lyon.text
        one = http.get("/console/authorities", params={"code": "FR:COURT-LYON", "q": "lyon"})
        assert _total(one.text) == 1 and "FR:COURT-LYON" in one.text
        fr = http.get("/console/authorities")
        assert "administrator of FR" in fr.text and "DE:" not in fr.text
    with sign_in_http(service, "operator") as http:
        every = http.get("/console/authorities")
        total = _total(every.text)
        owners = set(re.findall(r"</a></td><td>([A-Z]{2})</td>", every.text))
        assert total > 25 and len(owners) > 1, owners  # every owner's, not only one
        mark = re.search(r'href="(/console/authorities\?[^"]*after=[^"]+)"', every.text)
        assert mark, "no next page link"
        second = http.get(mark.group(1).replace("&amp;", "&"))
        assert second.status_code == 200 and "page 2" in second.text
        first_ids = set(re.findall(r"/console/authorities/([0-9a-f-]{36})", every.text))
        second_ids = set(re.findall(r"/console/authorities/([0-9a-f-]{36})", second.text))
        assert second_ids and not first_ids & second_ids


def test_the_console_search_finds_no_one_by_a_hidden_name(service: Service) -> None:
    """The console's search, like the API's, finds a national member by its person only
    for those who may read the name (issue 30)."""
    member = {"owner": "EJ", "ref": "EJ-CZ-NM", "country": "CZ", "role": "national-member",
              "contact": {"channel": "email", "value": "cz@eurojust.example.eu"},
              "person": {"name": "Přemysl Otakar"}}  # fmt: skip
    with Api(service, "admin-ej").http() as http:
        assert http.post("/national-members", json=member).status_code == 201
    with sign_in_http(service, "reader") as http:
        hidden = http.get("/console/national-members", params={"q": "premysl"})
        assert hidden.status_code == 200 and _total(hidden.text) == 0
        seen = http.get("/console/national-members", params={"q": "cz@eurojust"})
        assert _total(seen.text) == 1  # found by what a reader sees
    for client in ("admin-ej", "operator"):
        with sign_in_http(service, client) as http:
            found = http.get("/console/national-members", params={"q": "PŘEMYSL"})
            assert _total(found.text) == 1, client


def test_an_erased_person_is_gone_from_the_console(service: Service) -> None:
    """Issue 31: after `cdb-service erase`, the entry's console page (and its history)
    shows `[erased]` where the name was, to those who could read it."""
    import os
    import subprocess

    from tests.support.service_process import executable

    member = {"owner": "EJ", "ref": "EJ-SK-NM", "country": "SK", "role": "national-member",
              "contact": {"channel": "email", "value": "sk@eurojust.example.eu"},
              "person": {"name": "Ľudovít Štúr"}}  # fmt: skip
    with Api(service, "admin-ej").http() as http:
        created = http.post("/national-members", json=member)
    assert created.status_code == 201, created.text
    entry = created.json()["id"]
    page = f"/console/national-members/{entry}"
    with sign_in_http(service, "admin-ej") as http:
        assert "Ľudovít Štúr" in http.get(page).text
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDB_")}
    env["CDB_DATA_DIR"] = str(service.data_dir)
    done = subprocess.run([executable(), "erase", "national-members", entry, "--reason",
                           "data subject's request"], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    with sign_in_http(service, "admin-ej") as http:
        shown = http.get(page)
    assert shown.status_code == 200
    assert "Štúr" not in shown.text and "Stur" not in shown.text
    assert "[erased]" in shown.text


def test_a_registered_third_country_is_offered_in_the_console(service: Service) -> None:
    """Issue 31: once an operator registers Norway, the console's owner choice and its
    upload form offer it beside the member states."""
    with Api(service, "operator").http() as http:
        registered = http.post("/owners", json={"code": "NO", "name": "Norway",
                                                "instruments": ["maintenance"]})  # fmt: skip
    assert registered.status_code == 201, registered.text
    with sign_in_http(service, "operator") as http:
        for path in ("/console/", "/console/import"):
            shown = http.get(path)
            assert shown.status_code == 200
            assert re.search(r'<option value="NO"[^>]*>NO Norway', shown.text), path


def test_the_console_search_forgives_a_transliterated_umlaut(service: Service) -> None:
    with sign_in_http(service, "reader") as http:
        for typed in ("Muenchen", "München", "munchen"):
            found = http.get("/console/authorities", params={"q": typed, "owner": "DE"})
            assert found.status_code == 200 and "DE:COURT-MUNCHEN" in found.text, typed


def test_retire_or_delete_shows_referrers_first(service: Service) -> None:
    fr = Api(service, "admin-fr")
    court = fr.first("authorities", owner="FR", q="lille")
    with sign_in_http(service, "admin-fr") as http:
        form = http.get(f"/console/authorities/{court['id']}/delete")
        assert form.status_code == 200
        assert "/console/jurisdiction-criteria/" in form.text  # its criteria refer to it
        token = csrf_of(form.text)
        refused = http.post(f"/console/authorities/{court['id']}/delete", data={
            "csrf": token, "expected": str(court["version"]), "action": "delete"})  # fmt: skip
        assert refused.status_code == 409
        # Retiring is offered instead, and previewed before it is done.
        retire = f"/console/authorities/{court['id']}/retire"
        sent = {"csrf": token, "expected": str(court["version"]), "valid_to": "2027-06-30"}
        retired = previewed_then_confirmed(http, retire, sent)
        assert retired.status_code == 303, retired.text
    after = fr.first("authorities", owner="FR", q="lille")
    assert after["valid_to"] == "2027-06-30" and after["version"] == court["version"] + 1


def test_an_operator_records_an_incident(service: Service) -> None:
    with sign_in_http(service, "operator") as http:
        form = http.get("/console/incidents/new", params={"owner": "EC"})
        assert form.status_code == 200 and "New entry: Incidents of EC" in form.text
        sent = http.post("/console/incidents/new", data={
            "csrf": csrf_of(form.text), "owner": "EC", "f:component": "cdb",
            "f:description": "database failover", "f:started_at": "2026-11-29T10:00:00+01:00",
            "f:expected_recovery_at": "not a time",
        })  # fmt: skip
        assert sent.status_code == 422
        assert 'aria-invalid="true"' in sent.text and "expected_recovery_at" in sent.text
        # Each field's help is its description in the contract, tied to the input; a field
        # in error is described by its help and its message.
        started = IncidentIn.model_fields["started_at"].description
        assert started
        help_text = f'<p class="help" id="field-started-at-help">{started.capitalize()}.'
        assert help_text in form.text
        assert 'aria-describedby="field-started-at-help"' in form.text
        assert ('aria-describedby="field-expected-recovery-at-help '
                'field-expected-recovery-at-error"') in sent.text  # fmt: skip
        fixed = previewed_then_confirmed(http, "/console/incidents/new", {
            "csrf": csrf_of(sent.text), "owner": "EC", "f:component": "cdb",
            "f:description": "database failover", "f:started_at": "2026-11-29T10:00:00+01:00",
            "f:expected_recovery_at": "2026-11-29T12:00:00+01:00",
        })  # fmt: skip
        assert fixed.status_code == 303 and "/console/incidents/" in fixed.headers["location"]
    with sign_in_http(service, "admin-fr") as http:
        # An administrator cannot choose the Commission: the form is for her own owner.
        form = http.get("/console/incidents/new", params={"owner": "EC"})
        assert "Incidents of FR" in form.text and "Incidents of EC" not in form.text


def test_a_save_is_previewed_and_only_the_previewed_form_is_confirmed(service: Service) -> None:
    """Preview before harm (issue 29): the first post of a form writes nothing and shows
    the change by the form's labels; a confirmation whose token is forged, or whose form
    differs from the one previewed, is previewed again; only the previewed form saves."""
    fr = Api(service, "admin-fr")
    court = fr.first("authorities", owner="FR", q="paris")
    path = f"/console/authorities/{court['id']}/edit"
    with sign_in_http(service, "admin-fr") as http:
        token = csrf_of(http.get(path).text)
        sent = {"csrf": token, "expected": str(court["version"]),
                "f:address.city": "Paris (Île de la Cité)"}  # fmt: skip
        preview = http.post(path, data=sent)
        assert preview.status_code == 200 and "nothing is saved yet" in preview.text
        shown = preview.text.split('<dl class="changes">', 1)[1].split("</dl>", 1)[0]
        assert "<dt>Address: City</dt>" in shown and "address.city" not in shown, shown
        confirm = confirm_of(preview.text)
        for forged in (sent | {"confirm": "0" * 64},
                       sent | {"confirm": confirm, "f:address.city": "Elsewhere"}):  # fmt: skip
            again = http.post(path, data=forged)
            assert again.status_code == 200 and "nothing is saved yet" in again.text
        assert fr.first("authorities", owner="FR", q="paris")["version"] == court["version"]
        saved = http.post(path, data=sent | {"confirm": confirm})
        assert saved.status_code == 303, saved.text
    now = fr.first("authorities", owner="FR", q="paris")
    assert now["address"]["city"] == "Paris (Île de la Cité)"
    with sign_in_http(service, "admin-fr") as http:
        # What the API would refuse (a code already used) is said at once, not previewed.
        form = http.get("/console/authorities/new")
        taken = http.post("/console/authorities/new", data={
            "csrf": csrf_of(form.text), "owner": "FR", "f:code": "FR:COURT-LYON",
            "f:kind": "court", "f:names.lang": "fr", "f:names.text": "Doublon"})  # fmt: skip
        assert taken.status_code == 409 and "nothing is saved yet" not in taken.text
        assert "The entry was not saved" in taken.text


def test_a_flood_of_sign_in_starts_is_refused_and_stores_nothing_more(service: Service) -> None:
    before = len(service.query("SELECT token_hash FROM console_sessions"))
    pki = DevPki(service.data_dir / "pki")
    with httpx.Client(base_url=origin(service), verify=client_context(pki.ca)) as http:
        answers = [http.get("/console/auth/start") for _ in range(BURST + 10)]
    codes = [a.status_code for a in answers]
    assert set(codes) == {303, 429} and codes.count(303) <= BURST, codes
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1 and "Too many requests" in refused.text
    stored = len(service.query("SELECT token_hash FROM console_sessions"))
    assert stored - before == codes.count(303)  # a refused start stores nothing
