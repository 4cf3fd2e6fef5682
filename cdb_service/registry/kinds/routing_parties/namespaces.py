"""Whose namespace a registered party id is in, read off the id where its scheme says it.

- GS1 Global Location Numbers (ISO 6523 0088): 13 digits, the first three the GS1
  prefix of the member organisation that issued it (400-440 Germany, 300-379 France...);
- Leitweg-IDs (0204) are German e-invoicing addresses;
- DUNS numbers (0060) and LEIs (0199) name no state.

A party id of another state's prefix, or of a scheme that names no state, would go to
whoever registers it first: it is refused unless an operator allowed it on that entry
(`operator_confirmed`, a versioned and audited write like any other).
"""

from __future__ import annotations

from cdb_service.kernel import codes

_TYPE = "urn:oasis:names:tc:ebcore:partyid-type:iso6523:"
GLN, DUNS, LEI, LEITWEG = (f"{_TYPE}{n}" for n in ("0088", "0060", "0199", "0204"))

# The GS1 prefixes of the EU member states' GS1 organisations (first three digits).
GS1_PREFIXES: dict[str, tuple[tuple[int, int], ...]] = {
    "AT": ((900, 919),), "BE": ((540, 549),), "BG": ((380, 380),), "CY": ((529, 529),),
    "CZ": ((859, 859),), "DE": ((400, 440),), "DK": ((570, 579),), "EE": ((474, 474),),
    "EL": ((520, 521),), "ES": ((840, 849),), "FI": ((640, 649),), "FR": ((300, 379),),
    "HR": ((385, 385),), "HU": ((599, 599),), "IE": ((539, 539),), "IT": ((800, 839),),
    "LT": ((477, 477),), "LU": ((540, 549),), "LV": ((475, 475),), "MT": ((535, 535),),
    "NL": ((870, 879),), "PL": ((590, 590),), "PT": ((560, 560),), "RO": ((594, 594),),
    "SE": ((730, 739),), "SI": ((383, 383),), "SK": ((858, 858),),
}  # fmt: skip
EUROJUST_SEAT = "NL"


def _states_of_gln(number: str) -> set[str]:
    prefix = int(number[:3])
    return {state for state, ranges in GS1_PREFIXES.items()
            if any(low <= prefix <= high for low, high in ranges)}  # fmt: skip


def outside_namespace(party_id: str, party_id_type: str, owner: str) -> str | None:
    """Why `owner` may not take this registered party id by itself (None: it may)."""
    home = EUROJUST_SEAT if owner == codes.EUROJUST else owner
    value = party_id.split(":", 1)[1] if ":" in party_id else party_id
    if party_id_type == GLN:
        if len(value) != 13 or not value.isdigit():
            return f"a GLN has 13 digits ({party_id!r} does not)"
        states = _states_of_gln(value)
        if home not in states:
            named = "/".join(sorted(states)) or "no member state"
            return (f"the GLN {party_id!r} has the GS1 prefix {value[:3]} of {named}, "
                    f"not of {owner}")  # fmt: skip
    elif party_id_type == LEITWEG and home != "DE":
        return f"a Leitweg-ID ({party_id!r}) addresses German bodies, not {owner}'s"
    elif party_id_type in (DUNS, LEI):
        return f"a {codes.PARTY_ID_TYPES[party_id_type]} ({party_id!r}) names no member state"
    return None
