"""The console in the user's language: the catalogues are complete (every text the
templates, the console's Python and the contract's fields say is translated into German
and French, its placeholders kept), the browser's Accept-Language chooses among them,
the switch in the header overrides it and is remembered, and times and numbers are
written as each language writes them (Brussels time, the zone named)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from cdb_service.console import i18n
from cdb_service.console.catalogue import contract_messages
from cdb_service.security.dev import DevPki
from tests.console.support import origin, sign_in_http
from tests.support.service_process import Service, running_service
from tests.support.tls import client_context

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "cdb_service" / "console" / "locale"
TRANSLATED = ("de", "fr")
PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}|<[^>]+>")


def _catalogue(language: str) -> dict[str, object]:
    with (LOCALE / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=language)
    return {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalog if m.id}


def _said_now() -> set[str]:
    """Every text the console says today, extracted as `make messages` extracts it."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = extract_from_dir(str(ROOT), method_map, options_map)
    return {m[2] if isinstance(m[2], str) else m[2][0] for m in found}


@pytest.fixture(scope="module")
def said_now() -> set[str]:
    return _said_now()


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_text_of_the_console_is_translated(language: str, said_now: set[str]) -> None:
    """A new string without its German and French fails here: run `make messages` and
    translate it (docs/console-languages.md)."""
    catalogue = _catalogue(language)
    missing = sorted(said_now - set(catalogue))
    assert not missing, f"not in the {language} catalogue (run `make messages`): {missing}"
    for msgid in said_now:
        entry = catalogue[msgid]
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)  # type: ignore[attr-defined]
        assert all(strings), f"{language}: no translation of {msgid!r}"
        assert not entry.fuzzy, f"{language}: the translation of {msgid!r} is marked fuzzy"  # type: ignore[attr-defined]
        for text in strings:
            # Placeholders and markup survive translation: a value or a link is not lost.
            assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(msgid)), (
                language, msgid, text)  # fmt: skip


def test_the_contract_s_labels_and_help_are_in_the_catalogues() -> None:
    texts = {text for _, text in contract_messages()}
    assert "Postal code" in texts and "Street and number." in texts
    i18n.speaking("de")
    try:
        assert i18n.gettext("Postal code") == "Postleitzahl"
        assert i18n.gettext("Street and number.") == "Straße und Hausnummer."
    finally:
        i18n.speaking("en")


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("fr-BE", "fr"),
        ("en-GB,en;q=0.9", "en"),
        ("it-IT,it;q=0.9", "en"),  # no Italian catalogue: English
        ("en;q=0.2, fr;q=0.7, de;q=0.5", "fr"),  # the highest quality wins
        ("de;q=0, fr", "fr"),  # q=0: not acceptable
        ("", "en"),
    ],
)
def test_the_browser_s_language_is_negotiated_among_the_catalogues(
    header: str, language: str
) -> None:
    assert i18n.negotiated(header) == language


def test_times_are_brussels_time_with_the_zone_named_in_each_language() -> None:
    winter = dt.datetime(2027, 1, 5, 20, 0, tzinfo=dt.UTC)
    summer = dt.datetime(2027, 7, 5, 20, 0, tzinfo=dt.UTC)
    expected = {
        "en": ("2027-01-05 21:00 CET", "2027-07-05 22:00 CEST"),
        "de": ("05.01.2027 21:00 MEZ", "05.07.2027 22:00 MESZ"),
        "fr": ("5 janv. 2027 21:00 HNEC", "5 juil. 2027 22:00 HAEC"),
    }
    try:
        for language, (cold, warm) in expected.items():
            i18n.speaking(language)
            assert (i18n.when(winter), i18n.when(summer)) == (cold, warm)
        i18n.speaking("de")
        assert i18n.number(12345) == "12.345"
        i18n.speaking("fr")
        assert i18n.number(12345).replace("\u202f", " ") == "12 345"
    finally:
        i18n.speaking("en")


# --- over HTTP, as a browser asks -----------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("console-languages")
    pki = DevPki(root / "var" / "pki").ensure()
    with running_service(root, {}, ca=pki.ca) as running:
        yield running


@pytest.mark.slow
def test_a_german_browser_gets_german_pages_and_the_switch_is_remembered(
    service: Service,
) -> None:
    with sign_in_http(service, "admin-de") as http:
        german = http.get("/console/", headers={"accept-language": "de-DE,de;q=0.9,en;q=0.5"})
        assert german.status_code == 200
        assert '<html lang="de">' in german.text
        assert "Behörden" in german.text and "Abmelden" in german.text
        assert "administrator of" not in german.text
        listing = http.get("/console/authorities", headers={"accept-language": "de"})
        assert "Einträge (Revision des Registers" in listing.text, listing.text[:2000]
        assert 'aria-current="true" lang="de">Deutsch</span>' in listing.text

        # The switch: French chosen on the list page, which the person is sent back to.
        chosen = http.get("/console/language", params={"to": "fr", "next": "/console/authorities"})
        assert chosen.status_code == 303
        assert chosen.headers["location"] == "/console/authorities"
        cookie = chosen.headers["set-cookie"]
        assert cookie.startswith(f"{i18n.LANGUAGE_COOKIE}=fr;") and "Secure" in cookie
        # Remembered, and stronger than the browser's German.
        again = http.get("/console/authorities", headers={"accept-language": "de"})
        assert '<html lang="fr">' in again.text and "Autorités" in again.text

        # A language without a catalogue changes nothing; the way back is the console only.
        odd = http.get("/console/language", params={"to": "xx", "next": "https://example.org/"})
        assert odd.status_code == 303 and odd.headers["location"] == "/console/"
        assert "set-cookie" not in odd.headers
        back = http.get("/console/language", params={"to": "en", "next": "/console/"})
        assert back.status_code == 303
        english = http.get("/console/", headers={"accept-language": "de"})
        assert '<html lang="en">' in english.text and "Authorities" in english.text


@pytest.mark.slow
def test_field_errors_are_said_in_the_person_s_language(service: Service) -> None:
    with sign_in_http(service, "admin-de") as http:
        http.get("/console/language", params={"to": "de", "next": "/console/"})
        form = http.get("/console/authorities/new")
        assert "Postleitzahl" in form.text and "(Pflichtfeld)" in form.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        empty = {"csrf": csrf.group(1), "owner": "DE", "f:code": ""}
        sent = http.post("/console/authorities/new", data=empty)
        assert sent.status_code == 422
        assert "Der Eintrag wurde nicht gespeichert" in sent.text
        assert "muss ausgefüllt werden" in sent.text, sent.text[:3000]


@pytest.mark.slow
def test_the_sign_in_page_speaks_the_browser_s_language(service: Service) -> None:
    pki = DevPki(service.data_dir / "pki")
    with httpx.Client(base_url=origin(service), verify=client_context(pki.ca)) as http:
        page = http.get("/console/sign-in", headers={"accept-language": "fr-FR,fr;q=0.9"})
        assert '<html lang="fr">' in page.text and "Se connecter" in page.text


def test_every_console_page_chooses_its_language() -> None:
    """A console controller without the hook would answer in English whatever the person
    chose: every controller of the console has it."""
    import importlib
    import pkgutil

    from litestar import Controller

    import cdb_service.console

    for module in pkgutil.iter_modules(cdb_service.console.__path__):
        importlib.import_module(f"cdb_service.console.{module.name}")
    controllers = [c for c in Controller.__subclasses__()
                   if c.__module__.startswith("cdb_service.console.")]  # fmt: skip
    assert len(controllers) >= 6, controllers
    for controller in controllers:
        assert controller.before_request is i18n.speak, controller.__name__
