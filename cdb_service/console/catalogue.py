"""What the catalogues must hold beyond the console's own sentences: the contract's words
(each field's label and help, as the forms show them) and the registry's codes a page shows
as words (a revision's operation, a finding's severity, a certificate's use).

The contract's words are taken from the kinds' schemas, not from text in a file, so Babel
extracts them with `extract_contract` (named in babel.cfg): `make messages` adds a new
field's label and help to every catalogue, and the catalogue test fails until they are
translated.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cdb_service.console import widgets
from cdb_service.console.i18n import N_
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.fields import label_of

# Codes the pages show as words (translated with `say`, where they are shown).
WORDS = (
    # a revision's operation (an entry's history)
    N_("create"), N_("update"), N_("delete"),
    # a data-quality finding's severity (the home page)
    N_("error"), N_("warning"), N_("info"),
    # a certificate's use
    N_("signing"), N_("encryption"), N_("tls"),
    # a rollout's change of a certificate
    N_("accepted"), N_("used"), N_("no longer accepted"),
    # a rollout's change of a party's routing
    N_("added"), N_("retired"), N_("name"), N_("endpoint"), N_("identifiers"), N_("roles"),
    N_("services"), N_("certificates"),
    # a batch's change of an entry
    N_("created"), N_("updated"), N_("deleted"), N_("unchanged"),
)  # fmt: skip


def contract_messages() -> Iterator[tuple[str, str]]:
    """(kind, English text) for every label and help text any kind's form shows: each
    field's (nested ones too), a certificate's facts, and a list's filters."""
    for spec in KINDS.values():
        choices: dict[str, list[tuple[str, str]]] = {r.target: [] for r in spec.references}
        for top in widgets.blank(spec, "", choices):
            for w in top.walk():
                info = widgets.info_of(spec, w.path)
                if info is not None:
                    yield spec.name, widgets.title_of(w.path.rsplit(".", 1)[-1], info)
                    if widgets.help_of(info):
                        yield spec.name, widgets.help_of(info)
        for f in spec.filters:
            yield spec.name, label_of(f.name)
    for name in widgets.CERTIFICATE_FACTS:
        yield "routing-parties", label_of(name)


def extract_contract(
    fileobj: Any, keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    """A Babel extraction method: the contract's words (the file it is given is only
    where babel.cfg anchors it)."""
    seen: set[str] = set()
    for kind, text in contract_messages():
        if text not in seen:
            seen.add(text)
            yield 1, "gettext", text, [f"the contract: {kind}"]
