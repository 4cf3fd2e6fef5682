"""Text folded for searching: one rule, used for stored search text and for queries alike."""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """Text for searching: case and accents folded away (`München` → `munchen`).

    NFKD splits accented letters into a base letter and combining marks, which are
    dropped; the few letters that do not decompose (ß, ø, ł, đ, æ, œ, ı, þ) are
    spelled out, so that an administrator typing plain ASCII finds them.
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return plain.translate(_NOT_DECOMPOSED)


_NOT_DECOMPOSED = str.maketrans(
    {"ß": "ss", "ø": "o", "ł": "l", "đ": "d", "æ": "ae", "œ": "oe", "ı": "i", "þ": "th", "ð": "d"}
)
