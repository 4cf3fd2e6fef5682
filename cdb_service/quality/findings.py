"""What every quality rule reads and writes: the inputs (one owner's entries, the lookup
index, the day) and a finding (severity, rule, entry, what to do, a stable id).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cdb_service.db.documents import date_of
from cdb_service.lookup.index import LookupIndex

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    message: str
    action: str
    kind: str | None = None
    entry_id: str | None = None
    key: str | None = None
    # What tells two findings of one rule and entry apart (a certificate, an instrument).
    discriminator: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)

    def stable_id(self, owner: str) -> str:
        raw = "|".join((owner, self.rule, self.kind or "", self.entry_id or "", self.discriminator))
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def as_dict(self, owner: str) -> dict[str, Any]:
        return {
            "id": self.stable_id(owner),
            "rule": self.rule,
            "severity": self.severity,
            "kind": self.kind,
            "entry_id": self.entry_id,
            "key": self.key,
            "message": self.message,
            "action": self.action,
            "detail": dict(self.detail),
        }


@dataclass
class Inputs:
    """What the rules read: the owner's current documents and the lookup index."""

    owner: str
    today: dt.date
    review_days: int
    documents: Mapping[str, Sequence[Mapping[str, Any]]]  # kind -> the owner's documents
    index: LookupIndex
    # country -> where its gazetteer was loaded from (a TERCET file name names its NUTS
    # version): findings about geo codes say which version they were checked against.
    gazetteer_sources: Mapping[str, str] = field(default_factory=dict)
    # The notice a certificate rollover gives access points (`quality/rollovers.py`).
    rollover_min_working_days: int = 5
    # Pending switches of certificates into use that the owner's parties are part of, with
    # who has confirmed them (`distribution/rollouts.pending_uses`), and how many working
    # days before use_from an unconfirmed access point is an error (`quality/rollovers.py`).
    rollouts: Sequence[Mapping[str, Any]] = ()
    rollout_alert_working_days: int = 2


def valid_now_or_later(doc: Mapping[str, Any], day: dt.date) -> bool:
    end = date_of(doc.get("valid_to"))
    return end is None or end >= day


def entry_of(kind: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    key = doc.get("code") or doc.get("name") or doc.get("ref") or doc["id"]
    return {"kind": kind, "entry_id": str(doc["id"]), "key": str(key)}
