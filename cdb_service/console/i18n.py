"""The console in the user's language: gettext catalogues (Babel), the language each request
is answered in, and dates and numbers written the way that language writes them.

A language is one catalogue, `locale/<code>/LC_MESSAGES/messages.po`: the console offers
every language that has one (docs/console-languages.md). The wheel carries each catalogue
compiled (`messages.mo`, made by setup.py's build step); a checkout has only the `.po`, which
is compiled in memory on first use, so `make test` and an editable install need no step.

The language is chosen once per request (`speak`, every console controller's
`before_request`): the person's choice from the switch in the page's header (a cookie),
else the browser's Accept-Language negotiated among the catalogues, else English. It is
kept in a context variable, so that the text made in Python for that request (labels, help,
errors, previews) and the template that renders it speak the same language.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, negotiate_locale
from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations
from litestar import Request
from litestar.datastructures import Cookie

from cdb_service.kernel import codes
from cdb_service.kernel.resources import packaged
from cdb_service.web.qvalues import accepted

DEFAULT = "en"
# The person's choice, remembered like an operator's choice of owner (a choice, no secret).
LANGUAGE_COOKIE = "__Host-cdb-console-language"
BRUSSELS = ZoneInfo("Europe/Brussels")
# The zone as each language abbreviates it; a language not listed says CET/CEST.
ZONE_NAMES: Mapping[str, tuple[str, str]] = {"de": ("MEZ", "MESZ"), "fr": ("HNEC", "HAEC")}
# The order of the switch: English first, then by code.
FIRST = ("en",)


def N_(message: str) -> str:
    """Marks text for the catalogue that is translated where it is shown."""
    return message


@dataclass(frozen=True)
class Speech:
    """The language a request is answered in, and the path it asked for (the switch
    links back to it)."""

    language: str = DEFAULT
    here: str = "/console/"


_ENGLISH = Speech()
_current: ContextVar[Speech] = ContextVar("console_speech")


@cache
def available() -> tuple[str, ...]:
    """The languages with a catalogue: English first, then by code."""
    found = sorted(p.parent.parent.name for p in _locale_dir().glob("*/LC_MESSAGES/messages.po"))
    return tuple(sorted(found, key=lambda code: (code not in FIRST, code)))


def _locale_dir() -> Any:
    return packaged("cdb_service.console", "locale")


@cache
def translations(language: str) -> Translations:
    """A language's catalogue: its compiled `.mo` where the wheel has one, else its `.po`
    compiled now (fuzzy entries left out: they fall back to English)."""
    folder = _locale_dir() / language / "LC_MESSAGES"
    compiled = folder / "messages.mo"
    if not (folder / "messages.po").is_file():
        return Translations()  # no catalogue: the English of the templates and the code
    if compiled.is_file():
        with compiled.open("rb") as mo:
            return Translations(mo, domain="messages")
    with (folder / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain="messages")


def names_of_languages() -> list[tuple[str, str]]:
    """The switch's entries: each language by its own name (Deutsch, Français)."""
    return [(code, (Locale.parse(code).get_display_name(code) or code).capitalize())
            for code in available()]  # fmt: skip


@cache
def language_names(language: str) -> tuple[tuple[str, str], ...]:
    """The EU's official languages (the names' code list) named in `language` (CLDR's
    names, through Babel): Deutsch names German "Deutsch", French "allemand"."""
    names = Locale.parse(language).languages
    return tuple((code, names.get(code, english)) for code, english in codes.LANGUAGES.items())


# The EU's codes that are not ISO 3166's (Greece is EL in the EU, GR in ISO and CLDR).
ISO_TERRITORY = {"EL": "GR"}


def country_name(code: str, english: str) -> str:
    """A country by its name in the request's language (CLDR's); English, and a code no
    country has (EJ, EC), as given."""
    language = current().language
    if language == DEFAULT:
        return english
    territories = Locale.parse(language).territories
    return str(territories.get(ISO_TERRITORY.get(code, code), english))


# The code lists CLDR names (through Babel); every other list's names are the registry's
# own, translated through the catalogue (cdb_service/console/catalogue.py extracts them).
NAMED_BY_CLDR = ("countries", "owners", "languages")


def localised(code_list: str, values: Mapping[str, str]) -> dict[str, str]:
    """A code list's names in the request's language: CLDR's for countries, owners and
    languages, the catalogue's for the registry's own lists (instruments, competences…).
    The API and `GET /code-lists` keep the contract's English."""
    if code_list in ("countries", "owners"):
        return {code: country_name(code, name) for code, name in values.items()}
    if code_list == "languages":
        names = dict(language_names(current().language))
        return {code: names.get(code, name) for code, name in values.items()}
    return {code: gettext(name) if name else name for code, name in values.items()}


def code_name(code_list: str, code: Any, *, short: bool = False) -> str:
    """One code's name in the request's language (`localised`); `short`, without the legal
    reference in parentheses that ends many of them ("European Investigation Order", for a
    sentence or a label; pick lists give the whole name). A code the list does not hold
    (an old value, a typo in a file), as it is."""
    names: Mapping[str, str] = codes.CODE_LISTS.get(code_list, {})
    if code not in names:
        return "" if code is None else str(code)
    name = localised(code_list, {code: names[code]})[code]
    return name.split(" (", 1)[0] if short else name


def negotiated(header: str) -> str:
    """The best of the catalogues for an Accept-Language header (q-values honoured)."""
    wanted = [tag.replace("-", "_") for tag in accepted(header)]
    return negotiate_locale(wanted, list(available())) or DEFAULT


def chosen(request: Request[Any, Any, Any]) -> str:
    """The person's choice (the cookie), else the browser's, else English."""
    asked = request.cookies.get(LANGUAGE_COOKIE, "")
    if asked in available():
        return asked
    return negotiated(request.headers.get("accept-language", ""))


async def speak(request: Request[Any, Any, Any]) -> None:
    """Every console request: the language it is answered in (a `before_request` hook)."""
    query = f"?{request.url.query}" if request.url.query else ""
    _current.set(Speech(chosen(request), request.url.path + query))


def current() -> Speech:
    """The request's language (English outside a console request)."""
    return _current.get(_ENGLISH)


def speaking(language: str) -> None:
    """Answer in `language` from here on in this context (tests, and the CLI's pages)."""
    _current.set(Speech(language if language in available() else DEFAULT))


def language_cookie(language: str) -> Cookie:
    return Cookie(key=LANGUAGE_COOKIE, value=language, path="/", secure=True, httponly=True,
                  samesite="strict", max_age=400 * 24 * 3600)  # fmt: skip


def gettext(message: str) -> str:
    return str(translations(current().language).gettext(message))


def ngettext(singular: str, plural: str, n: int) -> str:
    return str(translations(current().language).ngettext(singular, plural, n))


_ = gettext


def when(value: Any) -> str:
    """An instant in Europe/Brussels, the zone named: `2026-03-02 21:00 CET` in English,
    `02.03.2026 21:00 MEZ` in German, `2 mars 2026 21:00 HNEC` in French."""
    if value in (None, ""):
        return ""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if not isinstance(value, dt.datetime):
        return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    local = value.astimezone(BRUSSELS)
    language = current().language
    if language == DEFAULT:
        return str(local.strftime("%Y-%m-%d %H:%M %Z"))
    winter, summer = ZONE_NAMES.get(language, ("CET", "CEST"))
    zone = summer if local.dst() else winter
    day = format_date(local, "medium", locale=language)
    return f"{day} {format_time(local, 'short', tzinfo=BRUSSELS, locale=language)} {zone}"


def number(value: Any) -> str:
    """A count as the language writes it (1,234 · 1.234 · 1 234)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return str(format_decimal(value, locale=current().language))
