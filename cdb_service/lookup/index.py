"""The data recipient resolution reads, held in memory and kept in step with the registry.

Each worker holds one `LookupIndex`. It is built from one consistent snapshot
(`snapshot.py`), then follows the change feed (`follower.py`): a background task
looks at the head revision a few times a second and applies the entry versions that
came after it. Changes are fetched first and applied in one synchronous step, so a
request never sees half of a revision; the index always says which revision it
reflects.

Memory matters at a million geo keys: keys are flat strings (country, a one- or
two-letter scheme tag, the code: "DEp10115", "DEn3DE300"; see `geo_key`), values a
criterion's small integer. The keys of the snapshot an index is built from are packed
(`lookup.packed`: one buffer, no object per key), so are each country's postal codes
in the gazetteer; a criterion keeps its own keys as one string. Only the keys changed
since the build sit in a dict. Once built, the index's objects are moved out of the
garbage collector's sight (`gc.freeze`): a full collection would otherwise walk them
all, a pause of a tenth of a second at a million keys, in the middle of requests.
"""

from __future__ import annotations

import bisect
import datetime as dt
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from cdb_service.db.documents import date_of
from cdb_service.kernel.geo import postal_unit
from cdb_service.kernel.owners import DEFAULT, Owners
from cdb_service.lookup.packed import MappedText, PackedKeys


def valid_on(entry: Any, day: dt.date) -> bool:
    return (entry.valid_from is None or entry.valid_from <= day) and (
        entry.valid_to is None or entry.valid_to >= day
    )


class Criterion:
    __slots__ = ("authority_id", "competence", "id", "instrument", "keys", "priority", "ref",
                 "stages", "subject_matters", "valid_from", "valid_to")  # fmt: skip

    def __init__(self, doc: dict[str, Any], keys: list[str]) -> None:
        self.id = uuid.UUID(str(doc["id"]))
        self.ref = doc.get("ref")
        self.authority_id = uuid.UUID(str(doc["authority_id"]))
        self.instrument = doc["instrument"]
        self.competence = doc["competence"]
        self.subject_matters = frozenset(doc.get("subject_matters") or ())
        self.stages = frozenset(doc.get("stages") or ())
        self.priority = int(doc.get("priority") or 0)
        self.valid_from, self.valid_to = (
            date_of(doc.get("valid_from")),
            date_of(doc.get("valid_to")),
        )
        # One string, not a list of a thousand: read back only when the criterion changes
        # (in a mapped snapshot, `MappedText`: the bytes stay in the file).
        self.keys: str | MappedText = KEY_SEP.join(keys)

    def key_list(self) -> list[str]:
        return self.keys.split(KEY_SEP) if self.keys else []


class Entry:
    """An authority, routing party, correspondent or member: its document, and its validity."""

    __slots__ = ("doc", "valid_from", "valid_to")

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.valid_from, self.valid_to = (
            date_of(doc.get("valid_from")),
            date_of(doc.get("valid_to")),
        )


# One letter per scheme keeps a million keys small: "DEp10115", "DEn3DE300".
KEY_HEAD = 4  # country and scheme tag: the most a key holds beyond its code
KEY_SEP = "\n"  # never in a geo code (stored text refuses control characters)
SCHEME_TAGS = {"postal-code": "p", "postal-code-prefix": "x", "lau": "l", "nuts3": "n3",
               "nuts2": "n2", "nuts1": "n1", "country": "c"}  # fmt: skip


def geo_key(country: str, scheme: str, code: str) -> str:
    return (
        sys.intern(f"{country}{SCHEME_TAGS[scheme]}{code}")
        if scheme == "country"
        else (f"{country}{SCHEME_TAGS[scheme]}{code}")
    )


class CountryPlaces:
    """One country's gazetteer: postal code → its (LAU, NUTS 3) pairs, LAU → NUTS 3."""

    __slots__ = ("lau_nuts3", "loaded_at", "places", "postal", "stamp")

    def __init__(self, stamp: str, loaded_at: dt.datetime | None) -> None:
        self.stamp = stamp
        self.loaded_at = loaded_at
        # b"10115" -> index into `places` (packed); places[i] = ((lau, nuts3), ...),
        # shared by codes
        self.postal = PackedKeys()
        self.places: list[tuple[tuple[str, str], ...]] = []
        self.lau_nuts3: dict[str, str] = {}  # "11000000" -> "DE300"


def tag_of(key: str) -> str:
    """The scheme tag of a geo key ("p" of "DEp10115", "n3" of "DEn3DE300")."""
    return key[2:4] if key[2] == "n" else key[2]


@dataclass
class Gazetteer:
    """Every country's places, replaced country by country as loads come in."""

    countries: dict[str, CountryPlaces] = field(default_factory=dict)
    # One name for all of it (`gazetteer.identity`): in ETags, the answer cache, the feed.
    identity: str = "none"

    @property
    def loaded_at(self) -> dt.datetime | None:
        times = [c.loaded_at for c in self.countries.values() if c.loaded_at is not None]
        return max(times) if times else None

    def stamps(self) -> dict[str, str]:
        return {country: places.stamp for country, places in self.countries.items()}

    def places_of(self, country: str, postal_code: str) -> tuple[tuple[str, str], ...]:
        """The (LAU, NUTS 3) pairs of a canonical postal code (a full Eircode by its key)."""
        here = self.countries.get(country)
        if here is None:
            return ()
        at = here.postal.get(postal_unit(country, postal_code).encode())
        return here.places[at[0]] if at else ()

    def postal_codes(self, country: str) -> list[str]:
        here = self.countries.get(country)
        return [code.decode() for code in here.postal] if here is not None else []

    def nuts3_of_lau(self, country: str, lau: str) -> str | None:
        here = self.countries.get(country)
        return here.lau_nuts3.get(lau) if here is not None else None

    def covers(self, country: str) -> bool:
        return country in self.countries

    def nuts3_codes(self, country: str) -> set[str]:
        """Every NUTS 3 region the country's places lie in (empty if none is loaded)."""
        here = self.countries.get(country)
        if here is None:
            return set()
        found = {nuts3 for places in here.places for _, nuts3 in places}
        return found | set(here.lau_nuts3.values())


@dataclass
class Freshness:
    """How far behind the registry an index is, as the time a seen revision has waited.

    `checked_at`: when the follower last read the head (monotonic clock).
    `behind_since`: when it first saw a revision it has not applied; None once it has
    applied everything it has seen. Under steady writes the head never stands still,
    yet an index that applies each revision within a poll is fresh: its lag is how
    long a revision waits (to within one poll interval, the time before it is seen),
    not the time since the head last stood still.
    """

    checked_at: float
    behind_since: float | None = None

    def saw(self, head: int, applied: int, now: float) -> None:
        """A look at the head: `applied` is the revision the index reflects."""
        self.checked_at = now
        if head <= applied:
            self.behind_since = None
        elif self.behind_since is None:
            self.behind_since = now

    def caught_up_to(self, head: int, applied: int) -> None:
        """Revisions were applied; everything up to the head last seen is in."""
        if applied >= head:
            self.behind_since = None

    def lag(self, now: float) -> float:
        return 0.0 if self.behind_since is None else max(0.0, now - self.behind_since)


@dataclass
class LookupIndex:
    revision: int = -1
    criteria: list[Criterion | None] = field(default_factory=list)
    slot_of: dict[uuid.UUID, int] = field(default_factory=dict)
    # The keys of the snapshot the index was built from (packed), and the keys changed
    # since, each with its whole current value (() when no criterion has it any more).
    built_geo: PackedKeys = field(default_factory=PackedKeys)
    geo: dict[str, tuple[int, ...]] = field(default_factory=dict)
    authorities: dict[uuid.UUID, Entry] = field(default_factory=dict)
    authority_by_code: dict[str, uuid.UUID] = field(default_factory=dict)
    parties: dict[uuid.UUID, Entry] = field(default_factory=dict)
    correspondents: dict[uuid.UUID, Entry] = field(default_factory=dict)
    members: dict[uuid.UUID, Entry] = field(default_factory=dict)
    # The operators' `owners` entries, and the owners and participation they make.
    owner_entries: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    owners: Owners = DEFAULT
    gazetteer: Gazetteer = field(default_factory=Gazetteer)
    # Every routing-party certificate's not-after, sorted: answers flag expired ones.
    expiries: list[str] = field(default_factory=list)
    freshness: Freshness = field(default_factory=lambda: Freshness(time.monotonic()))
    # Per (country, instrument, competence): the criteria whose keys name that country,
    # and how many keys each scheme has there. They say why an answer is empty and
    # which query parameters would narrow one (`resolver.narrow_by`).
    by_purpose: dict[tuple[str, str, str], set[int]] = field(default_factory=dict)
    levels: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=dict)

    def forked(self) -> LookupIndex:
        """A copy to apply the next page of the feed to while requests read this one (it
        replaces this one whole). Every container `apply` changes is copied; what it
        only ever replaces (criteria, entries, the packed keys, the gazetteer) is shared."""
        return replace(
            self, criteria=list(self.criteria), slot_of=dict(self.slot_of), geo=dict(self.geo),
            authorities=dict(self.authorities), authority_by_code=dict(self.authority_by_code),
            parties=dict(self.parties), correspondents=dict(self.correspondents),
            members=dict(self.members), owner_entries=dict(self.owner_entries),
            by_purpose={purpose: set(slots) for purpose, slots in self.by_purpose.items()},
            levels={purpose: dict(counts) for purpose, counts in self.levels.items()},
        )  # fmt: skip

    # --- criteria and their geo keys ----------------------------------------------------

    def slots_at(self, key: str) -> tuple[int, ...]:
        found = self.geo.get(key)
        return found if found is not None else self.built_geo.get(key.encode())

    def criteria_at(self, key: str) -> tuple[Criterion, ...]:
        criteria = self.criteria
        return tuple(c for c in (criteria[s] for s in self.slots_at(key)) if c is not None)

    def key_count(self) -> int:
        """Geo keys with at least one slot (a changed key counted once)."""
        changed = sum(1 for k in self.geo if self.built_geo.get(k.encode()))
        return len(self.built_geo) - changed + sum(1 for v in self.geo.values() if v)

    def put_criterion(self, criterion: Criterion) -> None:
        self.drop_criterion(criterion.id)
        self.criteria.append(criterion)
        slot = self.slot_of[criterion.id] = len(self.criteria) - 1
        for key in criterion.key_list():
            self.count_key(slot, criterion, key, 1)
            present = self.slots_at(key)
            if slot not in present:
                self.geo[key] = (*present, slot)

    def count_key(self, slot: int, criterion: Criterion, key: str, step: int) -> None:
        purpose = (key[:2], criterion.instrument, criterion.competence)
        if step > 0:
            self.by_purpose.setdefault(purpose, set()).add(slot)
        else:
            self.by_purpose.get(purpose, set()).discard(slot)
        levels = self.levels.setdefault(purpose, {})
        levels[tag_of(key)] = levels.get(tag_of(key), 0) + step

    def drop_criterion(self, criterion_id: uuid.UUID) -> None:
        slot = self.slot_of.pop(criterion_id, None)
        if slot is None:
            return
        criterion = self.criteria[slot]
        self.criteria[slot] = None
        if criterion is None:
            return
        for key in criterion.key_list():
            self.count_key(slot, criterion, key, -1)
            self.geo[key] = tuple(s for s in self.slots_at(key) if s != slot)

    # --- entries ------------------------------------------------------------------------

    def apply(self, kind: str, entry_id: uuid.UUID, document: dict[str, Any] | None) -> None:
        """One entry version: `document` None means the entry is gone."""
        if kind == "jurisdiction-criteria":
            if document is None:
                self.drop_criterion(entry_id)
            else:
                keys = [geo_key(g["country"], g["scheme"], g["code"]) for g in document["geo"]]
                self.put_criterion(Criterion(document, keys))
            return
        if kind == "owners":
            if document is None:
                self.owner_entries.pop(entry_id, None)
            else:
                self.owner_entries[entry_id] = document
            self.owners = Owners.of(self.owner_entries.values())
            return
        table = {
            "authorities": self.authorities,
            "routing-parties": self.parties,
            "national-correspondents": self.correspondents,
            "national-members": self.members,
        }.get(kind)
        if table is None:
            return
        if kind == "authorities":
            old = self.authorities.get(entry_id)
            if old is not None:
                self.authority_by_code.pop(old.doc["code"], None)
            if document is not None:
                self.authority_by_code[document["code"]] = entry_id
        if document is None:
            table.pop(entry_id, None)
        else:
            table[entry_id] = Entry(document)
        if kind == "routing-parties":
            self.expiries = sorted(
                c["not_after"] for e in self.parties.values()
                for c in e.doc.get("certificates") or () if c.get("not_after")
            )  # fmt: skip

    def expired_count(self, now: str) -> int:
        """How many certificates have expired by `now` (ISO instant): changes as time passes."""
        return bisect.bisect_right(self.expiries, now)
