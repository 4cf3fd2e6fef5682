"""The hash chain behind extracts and the audit trail: each link covers the one before it.

A link is SHA-256 over the previous link and this item's canonical text, so a
changed, inserted or removed item breaks every link after it and is found by
position. Extracts chain their lines; the audit trail chains its events.
"""

from __future__ import annotations

import hashlib

GENESIS = "0" * 64


def link(previous: str, text: str) -> str:
    return hashlib.sha256(f"{previous}\n{text}".encode()).hexdigest()


def link_bytes(previous: str, text: bytes) -> str:
    """`link` of a text already UTF-8 (the same value, without decoding it first)."""
    digest = hashlib.sha256(f"{previous}\n".encode())
    digest.update(text)
    return digest.hexdigest()
