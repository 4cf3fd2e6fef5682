"""Which characters text may hold: one rule for stored fields and query parameters alike."""

from __future__ import annotations

import re
import unicodedata
from typing import Any


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


# What no answer or stored record can carry: C0 controls but tab, newline and return
# (XML 1.0 has no way to write them; PostgreSQL refuses NUL), DEL and C1, lone surrogates
# (not UTF-8 at all) and the non-characters U+FFFE/U+FFFF.
_UNCARRIABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def carriable(value: Any) -> Any:
    """Client text quoted back (in a problem) or recorded (in the audit trail) with each
    character no answer can carry replaced by U+FFFD, through dicts and lists, so that a
    refusal quoting hostile input is still a refusal and not a 500."""
    if isinstance(value, str):
        return _UNCARRIABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {carriable(k): carriable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [carriable(v) for v in value]
    return value
