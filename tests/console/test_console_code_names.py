"""The registry's own code lists (instruments, competences, stages…) named in the page's
language in the console, while the API keeps the contract's English; the API's common
refusals and the sign-in's failures said in the page's language too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cdb_service.console import i18n, refusals, widgets
from cdb_service.console.catalogue import code_list_messages, extract_contract
from cdb_service.console.pages import label_of
from cdb_service.console.signin import SignInFailed
from cdb_service.kernel import codes
from cdb_service.kernel.problems import stale
from cdb_service.registry.kinds import KINDS


@pytest.fixture
def german() -> Iterator[None]:
    i18n.speaking("de")
    yield
    i18n.speaking("en")


def test_every_name_of_the_registry_s_code_lists_is_extracted_for_the_catalogues() -> None:
    """So that the catalogue test fails while a new code's name is untranslated."""
    extracted = {text for _, _, text, _ in extract_contract(None, None, None, None)}
    own = [name for name in codes.CODE_LISTS if name not in i18n.NAMED_BY_CLDR]
    assert {name for name, _ in code_list_messages()} == set(own)
    for name in own:
        assert set(codes.CODE_LISTS[name].values()) <= extracted, name


@pytest.mark.usefixtures("german")
def test_a_german_form_offers_the_instruments_by_their_official_german_names() -> None:
    controls = widgets.blank(KINDS["jurisdiction-criteria"], "DE", {"authorities": []})
    options = dict(next(w for w in controls if w.path == "instrument").options)
    assert options["eio"] == "eio — Europäische Ermittlungsanordnung (Richtlinie 2014/41/EU)"
    assert options["eaw"].endswith("Europäischer Haftbefehl (Rahmenbeschluss 2002/584/JI)")
    stages = dict(next(w for w in controls if w.path == "stages").options)
    assert stages["trial"] == "trial — Hauptverfahren"
    # A criterion's label in a list or a preview: the short names, the page's language.
    criterion = {"ref": "DE-1", "instrument": "eio", "competence": "execute", "geo": [{}]}
    label = label_of(KINDS["jurisdiction-criteria"], criterion)
    assert label == "DE-1 Europäische Ermittlungsanordnung, Vollstreckt Ersuchen: 1 Ort"
    # The contract (the API, `GET /code-lists`) keeps its English.
    assert codes.INSTRUMENTS["eio"] == "European Investigation Order (Directive 2014/41/EU)"


def test_french_names_and_an_unknown_code_as_it_is() -> None:
    i18n.speaking("fr")
    try:
        assert i18n.code_name("instruments", "eio") == (
            "Décision d'enquête européenne (directive 2014/41/UE)"
        )
        assert i18n.code_name("instruments", "eio", short=True) == "Décision d'enquête européenne"
        assert i18n.code_name("instruments", "no-such-act") == "no-such-act"
    finally:
        i18n.speaking("en")


@pytest.mark.usefixtures("german")
def test_the_api_s_common_refusals_are_said_in_the_page_s_language() -> None:
    problem = stale(3, 4)
    said = refusals.said(problem.detail)
    assert said.startswith("Jemand hat diesen Eintrag inzwischen geändert: Er ist jetzt in "
                           "Version 4"), said  # fmt: skip
    assert refusals.said("another authorities entry already has code 'DE:X'") == (
        "Ein anderer Eintrag hat bereits Code DE:X: Wählen Sie einen anderen Wert."
    )
    blocked = "cannot delete this authorities entry: 2 entries refer to it (cascade=true …)"
    assert refusals.said(blocked).startswith("Er kann nicht gelöscht werden: 2 Einträge")
    # A sentence the console does not know: as the API said it.
    assert refusals.said("something new") == "something new"


@pytest.mark.usefixtures("german")
def test_a_failed_sign_in_is_said_in_the_page_s_language() -> None:
    failed = SignInFailed("the identity provider did not answer ({error})", error="timeout")
    assert str(failed) == "the identity provider did not answer (timeout)"  # the log's
    assert failed.said() == "der Identitätsanbieter hat nicht geantwortet (timeout)"
    rejected = SignInFailed("the identity provider's tokens were not accepted: {why}",
                            why="the identity provider sent no ID token")  # fmt: skip
    assert rejected.said() == ("die Token des Identitätsanbieters wurden nicht angenommen: der "
                               "Identitätsanbieter hat kein ID-Token gesendet")  # fmt: skip
