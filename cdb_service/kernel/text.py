"""Which characters text may hold: one rule for stored fields and query parameters alike."""

from __future__ import annotations

import unicodedata


def _noncharacter(char: str) -> bool:
    code = ord(char)
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def unprintable(text: str, allow: str = "") -> str | None:
    """The first character that text must not hold, if any: controls (C0, DEL, C1) other
    than those in `allow`, lone surrogates and non-characters. NUL breaks PostgreSQL, and
    none of them may appear in XML 1.0."""
    for char in text:
        if char.isprintable() or char in allow:
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Cs") or (category == "Cn" and _noncharacter(char)):
            return char
    return None
