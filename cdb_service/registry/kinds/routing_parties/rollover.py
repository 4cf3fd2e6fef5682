"""Two-phase certificate rollover: each certificate of a party has a window in which access
points accept it (in their truststores) and, inside it, a moment from which it is used
(for encryption and signing).

    accept_from ≤ use_from < accept_until     (defaults: notBefore, notBefore, notAfter)

In Domibus only one certificate per party and use is active, so a switch happens at one
moment for every sender: the new certificate must be in every access point's truststore
before its `use_from`, and the old one stays accepted past it. A rollover is the pair
(the certificate in use, the one whose `use_from` comes next) of one use:

* a gap, where the old one stops being accepted before the new one is used, leaves a
  time in which no certificate of that use is usable: refused when written (a gap that
  lies wholly in the past is history, not a plan);
* the quality report names rollovers whose phases are shorter than the notice access
  points need (`quality/rollovers.py`).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Window:
    use: str
    sha256: str
    subject: str
    accept_from: dt.datetime
    use_from: dt.datetime
    accept_until: dt.datetime

    @classmethod
    def of(cls, certificate: Mapping[str, Any]) -> Window | None:
        """From a certificate as stored; None for one stored before windows existed
        (then its own validity is its window, which the document does not hold)."""
        try:
            return cls(str(certificate.get("use")), str(certificate.get("sha256")),
                       str(certificate.get("subject")), _instant(certificate["accept_from"]),
                       _instant(certificate["use_from"]),
                       _instant(certificate["accept_until"]))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None


def _instant(value: Any) -> dt.datetime:
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def rollovers(windows: Iterable[Window]) -> Iterator[tuple[Window, Window]]:
    """(replaced, replacing) pairs: per use, each certificate and the next by `use_from`."""
    by_use: dict[str, list[Window]] = {}
    for window in windows:
        by_use.setdefault(window.use, []).append(window)
    for same in by_use.values():
        ordered = sorted(same, key=lambda w: (w.use_from, w.sha256))
        yield from itertools.pairwise(ordered)


def gap(windows: Iterable[Window], now: dt.datetime) -> str | None:
    """Why these certificates leave a time with no usable certificate of some use, from
    now on; None when they do not."""
    for old, new in rollovers(windows):
        if old.accept_until < new.use_from and new.use_from > now:
            return (
                f"the {new.use} certificate {new.subject} is used from "
                f"{new.use_from.isoformat()}, but the one it replaces ({old.subject}) is "
                f"accepted only until {old.accept_until.isoformat()}: no {new.use} "
                "certificate would be usable in between; move use_from earlier or keep the "
                "old one accepted longer (accept_until)"
            )
    return None
