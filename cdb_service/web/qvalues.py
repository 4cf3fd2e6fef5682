"""Weighted list headers (RFC 9110 §12.4.2), read one way for every header that has them:
`Accept-Language` (the console's language) and `Accept-Encoding` (the streamed gzip).

`Accept` is litestar's (`web/negotiation.py`): media ranges have wildcards and
specificity besides weights."""

from __future__ import annotations

import re

_QVALUE = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")


def accepted(header: str) -> list[str]:
    """The items a client accepts, the most wanted first (ties in the order given): an
    item weighted `q=0` is refused, and so is one whose weight is not one (RFC 9110's
    qvalue: 0 to 1, three decimals at most; not `q=abc`, `q=2`, `q=inf`), since the
    client meant to weigh it and its weight is unknown."""
    wanted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        item, *params = part.split(";")
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                weight = float(value) if _QVALUE.fullmatch(value.strip()) else 0.0
        if item.strip() and weight > 0:
            wanted.append((-weight, position, item.strip()))
    return [item for _, _, item in sorted(wanted)]
