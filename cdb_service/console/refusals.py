"""The API's refusals the console shows, in the person's language.

The API's problem details are the contract's English (`kernel/problems.py`, the stores'
checks): a client program reads them, and they stay as they are. The console shows some of
them to a clerk (a write refused because the entry changed meanwhile, a code already
taken, a delete that other entries block, an owner he may not write for): those are
matched here and said in the catalogue's words, with the values the API named. A detail
the console does not know is said as the catalogue has it, else as the API said it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from babel.support import Translations

from cdb_service.console.i18n import N_, gettext
from cdb_service.registry.kinds.fields import label_of

# (the API's sentence, the console's); the groups are the values the console's names.
KNOWN: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), said)
    for pattern, said in (
        (r"^the entry is at version (?P<actual>\d+); you sent If-Match for version "
         r"(?P<expected>\d+)\.",
         N_("Someone changed this entry meanwhile: it is at version {actual} now, and your "
            "change was made to version {expected}. Nothing was changed: open the entry "
            "again and repeat your change.")),
        (r"^another [\w-]+ entry already has (?P<field>\w+) '(?P<key>.*)'$",
         N_("Another entry already has the {field} {key}: choose another.")),
        (r"^cannot delete this [\w-]+ entry: (?P<count>\d+) entries refer to it",
         N_("It cannot be deleted: {count} entries refer to it. Change or delete them first, "
            "or retire it instead.")),
        (r"^cannot delete this [\w-]+ entry: (?P<count>\d+) other owners' entries refer to it",
         N_("It cannot be deleted: {count} entries of other owners refer to it. Retire it "
            "instead.")),
        (r"^an administrator of (?P<mine>.+) cannot change entries of (?P<target>.+)$",
         N_("An administrator of {mine} cannot change entries of {target}.")),
        (r"^changing the registry needs the scope ",
         N_("Your sign-in allows reading only: changing the registry needs the write right "
            "and an owner, which your organisation's identity provider did not give.")),
        (r"^no [\w-]+ entry (?P<key>.+)$",
         N_("There is no such entry ({key}): it may have been deleted.")),
    )
)  # fmt: skip

# The API's fixed sentences the console shows as they are: in the catalogues, so that
# `said` finds them (`registry/store/unit_of_work.py`, `kernel/problems.py`).
FIXED = (
    N_("the lookup data is still loading"),
    N_("the change breaks a reference: another entry still refers to this one"),
    N_("the change would duplicate a unique value (a code, name, ref or party id)"),
    N_("the change conflicts with the registry's integrity rules"),
    N_("already exists"),
)


def said(text: str) -> str:
    """An API sentence in the request's language: the console's words for a refusal it
    knows, the catalogue's for a fixed sentence, else as the API said it."""
    return _said(text, gettext)


def _said(text: str, translate: Callable[[str], str]) -> str:
    for pattern, sentence in KNOWN:
        found = pattern.match(text)
        if found:
            values = found.groupdict()
            if "field" in values:
                values["field"] = translate(label_of(values["field"]))
            return translate(sentence).format(**values)
    return translate(text)


def sayer(catalogue: Translations) -> Callable[[Any], Any]:
    """`say` in the templates: text made elsewhere (an API sentence, a code) in the
    catalogue's words where it has them; anything that is not text, as it is."""

    def say(value: Any) -> Any:
        if isinstance(value, str) and value:
            return _said(value, catalogue.gettext)
        return value

    return say
