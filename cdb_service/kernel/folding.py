"""Text folded for searching: one rule, used for stored search text and for queries alike."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Collection, Mapping
from typing import Any


def fold(text: str) -> str:
    """Text for searching: case and accents folded away (`München` → `munchen`).

    NFKD splits accented letters into a base letter and combining marks, which are
    dropped; the few letters that do not decompose (ß, ø, ł, đ, æ, œ, ı, þ) are
    spelled out, so that an administrator typing plain ASCII finds them.
    """
    if text.isascii():  # nothing to decompose or spell out: the common case, at C speed
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return decomposed.translate(_combining_dropped()).translate(_NOT_DECOMPOSED)


@functools.cache
def _combining_dropped() -> dict[int, None]:
    """Every combining mark, mapped away (one `str.translate`, not a test per character)."""
    return {code: None for code in range(0x110000) if unicodedata.combining(chr(code))}


_NOT_DECOMPOSED = str.maketrans(
    {"ß": "ss", "ø": "o", "ł": "l", "đ": "d", "æ": "ae", "œ": "oe", "ı": "i", "þ": "th", "ð": "d"}
)


# Not searched: bookkeeping, ids, instants and certificate bodies (noise, and large).
_NOT_SEARCHED = frozenset(
    {"id", "owner", "version", "revision", "valid_from", "valid_to", "search", "search_full", "pem",
     "sha256", "not_after"}
)  # fmt: skip


@functools.lru_cache(maxsize=4096)  # field names: a few dozen, met in every entry
def _searched(name: Any) -> bool:
    name = str(name)
    return name not in _NOT_SEARCHED and not name.endswith(("_id", "_at"))


_SCALARS = frozenset({int, float, bool})


def search_text(values: Mapping[str, Any], hidden: Collection[str] = ()) -> str:
    """The folded text an entry is found by: every text value of its fields, at any depth
    (names in every language, the address, codes, refs, party ids, contacts), except the
    top-level fields in `hidden` (a kind's private fields: a caller who may not read them
    must not find an entry by them either).

    Keys are walked in sorted order, so that the same entry gives the same text whether
    it comes from a write's values, a stored document or a database row (the migration
    that fills it for existing entries).
    """
    parts: list[str] = []

    def walk(value: Any) -> None:
        if type(value) is str:
            parts.append(value)
        elif value is None or type(value) in _SCALARS:
            return
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict | Mapping):  # a dict is answered without the ABC's check
            for name in sorted(value):
                if _searched(name):
                    walk(value[name])
        elif isinstance(value, str):
            parts.append(value)

    walk({n: v for n, v in values.items() if n not in hidden} if hidden else values)
    return fold(" | ".join(parts))
