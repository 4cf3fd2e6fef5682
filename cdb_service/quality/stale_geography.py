"""Criteria on places the gazetteer does not know: a NUTS region that a new NUTS version
dropped (Portugal's PT16E), a municipality merged away.

Such a key matches nothing (senders name today's codes, and postal codes reach NUTS
and LAU only through the gazetteer), so the places it was meant for resolve elsewhere
or nowhere, silently. Postal codes are not checked: a criterion on one matches every
query that names it, in the gazetteer or not (a new code may reach the criterion before
it reaches the gazetteer). Checked only where a gazetteer is loaded for the state (without
one, a postal code reaches nothing but postal-code criteria anyway), and named with
the version the gazetteer was loaded from, so the administrator knows which list to
take the replacement codes from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from cdb_service.lookup.index import Gazetteer
from cdb_service.quality.findings import Finding, Inputs, entry_of, valid_now_or_later

_NUTS_VERSION = re.compile(r"NUTS[-_ ]?(\d{4})", re.IGNORECASE)
SHOWN = 10


def version_of(source: str | None) -> str:
    """How the gazetteer's version is named: "NUTS 2024" from a TERCET file name."""
    if not source:
        return "the loaded gazetteer"
    found = _NUTS_VERSION.search(source)
    return f"NUTS {found.group(1)} (gazetteer {source})" if found else f"the gazetteer {source}"


def _unknown(gazetteer: Gazetteer, country: str, nuts3: set[str],
             geo: Iterable[Mapping[str, Any]]) -> list[str]:  # fmt: skip
    out = []
    for key in geo:
        scheme, code = str(key.get("scheme")), str(key.get("code"))
        if scheme.startswith("nuts"):
            known = any(region.startswith(code) for region in nuts3)
        elif scheme == "lau":
            known = gazetteer.nuts3_of_lau(country, code) is not None
        else:  # postal codes match by name (see above); a country is itself
            known = True
        if not known:
            out.append(f"{scheme} {code}")
    return out


def stale_geography_rules(inputs: Inputs) -> Iterable[Finding]:
    """An error per criterion with geo codes absent from the state's loaded gazetteer."""
    owner, gazetteer = inputs.owner, inputs.index.gazetteer
    if not gazetteer.covers(owner):
        return
    nuts3 = gazetteer.nuts3_codes(owner)
    version = version_of(inputs.gazetteer_sources.get(owner))
    for doc in inputs.documents.get("jurisdiction-criteria", ()):
        if not valid_now_or_later(doc, inputs.today):
            continue
        unknown = _unknown(gazetteer, owner, nuts3, doc.get("geo") or ())
        if not unknown:
            continue
        shown = ", ".join(unknown[:SHOWN]) + (" …" if len(unknown) > SHOWN else "")
        yield Finding(
            "unknown-geo-code", "error",
            f"{len(unknown)} geo code(s) of this criterion are not in {version}: {shown}; "
            "they match no place",
            f"replace them with the codes that now cover those places in {version}, or "
            "remove them",
            detail={"unknown": unknown[:100], "count": len(unknown), "gazetteer": version},
            **entry_of("jurisdiction-criteria", doc),
        )  # fmt: skip
