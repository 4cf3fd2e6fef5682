"""The data recipient resolution reads, held in memory and kept in step with the registry.

Each worker holds one `LookupIndex`. It is built from one consistent snapshot,
then follows the change feed: a background task looks at the head revision a few
times a second and applies the entry versions that came after it. Changes are
fetched first and applied in one synchronous step, so a request never sees half
of a revision; the index always says which revision it reflects.

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

import asyncio
import bisect
import contextlib
import datetime as dt
import gc
import sys
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service import metrics
from cdb_service.db import documents
from cdb_service.db import revisions as rev
from cdb_service.db.documents import date_of, document_of
from cdb_service.kernel.geo import postal_unit
from cdb_service.logging import get_logger
from cdb_service.lookup import gazetteer as gazetteer_data
from cdb_service.lookup.gazetteer import GazetteerPlace
from cdb_service.lookup.packed import PackedBuilder, PackedKeys, record
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.jurisdiction_criteria.models import GeoKey, JurisdictionCriterion

log = get_logger("cdb.lookup")
POLL_INTERVAL_S = 0.2
STREAM_CHUNK = 20_000
GAZETTEER_CHUNK = 1000
ANSWER_CACHE_SIZE = 20_000
CHANGES_PAGE = 5000
WAIT_STEP_S = 0.05


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
        # One string, not a list of a thousand: read back only when the criterion changes.
        self.keys = KEY_SEP.join(keys)

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
    gazetteer: Gazetteer = field(default_factory=Gazetteer)
    # Every routing-party certificate's not-after, sorted: answers flag expired ones.
    expiries: list[str] = field(default_factory=list)
    freshness: Freshness = field(default_factory=lambda: Freshness(time.monotonic()))
    # Per (country, instrument, competence): the criteria whose keys name that country,
    # and how many keys each scheme has there. They say why an answer is empty and
    # which query parameters would narrow one (`resolver.narrow_by`).
    by_purpose: dict[tuple[str, str, str], set[int]] = field(default_factory=dict)
    levels: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=dict)

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


# --- loading and following ------------------------------------------------------------------


async def build(sessions: async_sessionmaker[AsyncSession]) -> LookupIndex:
    """A whole index from one snapshot."""
    index = LookupIndex()
    async with rev.read_snapshot(sessions) as session:
        index.revision = await rev.head_revision(session)
        for name in (
            "authorities",
            "routing-parties",
            "national-correspondents",
            "national-members",
        ):
            kind = KINDS[name]
            for entry in (await session.scalars(select(kind.model))).all():
                index.apply(name, entry.id, document_of(kind, entry))
        # Criteria first (without their geo lists), then their keys streamed in key
        # order into a packed table, and each criterion's into its one string: a
        # million keys never sit in memory as a million objects, not even for a moment.
        columns = [c for c in JurisdictionCriterion.__table__.columns if c.name != "geo"]
        for mapping in (await session.execute(select(*columns))).mappings():
            doc = {k: documents.to_json_value(v) for k, v in mapping.items()}
            index.put_criterion(Criterion(doc, []))
        longest = await session.scalar(select(func.max(func.length(GeoKey.code))))
        packer = PackedBuilder(KEY_HEAD + int(longest or 0))
        own: dict[int, bytearray] = {}  # slot -> its keys, KEY_SEP-joined
        order: list[Any] = [GeoKey.country, GeoKey.scheme, GeoKey.code]
        if session.get_bind().dialect.name == "postgresql":
            order = [column.collate("C") for column in order]  # byte order, as the table's
        query = select(GeoKey.entry_id, GeoKey.country, GeoKey.scheme, GeoKey.code)
        query = query.order_by(*order).execution_options(yield_per=STREAM_CHUNK)
        stream = await session.stream(query)
        separator = KEY_SEP.encode()
        async for chunk in stream.partitions():
            for entry_id, country, scheme, code in chunk:
                slot = index.slot_of.get(entry_id)
                criterion = index.criteria[slot] if slot is not None else None
                if criterion is None or slot is None:
                    continue
                key = geo_key(country, scheme, code)
                index.count_key(slot, criterion, key, 1)
                encoded = key.encode()
                packer.add(encoded, slot)
                keys = own.get(slot)
                if keys is None:
                    own[slot] = bytearray(encoded)
                else:
                    keys += separator + encoded
        for slot, keys in own.items():
            criterion = index.criteria[slot]
            if criterion is not None:
                criterion.keys = keys.decode()
        del own
        index.built_geo = packer.build()
        index.gazetteer = await _load_gazetteer(session)
    index.freshness = Freshness(time.monotonic())
    _record(index, index.revision)
    # What was just built lives as long as the index: out of the collector's walks (see
    # the module's docstring). Objects freed later are still freed by their counts.
    gc.freeze()
    return index


def _record(index: LookupIndex, head: int) -> None:
    """The figures an operator watches: what the index answers from, and how fresh."""
    metrics.INDEX_REVISION.set(index.revision)
    metrics.INDEX_SYNCED.set_to_current_time()
    metrics.HEAD_REVISION.set(head)
    loaded = index.gazetteer.loaded_at
    if loaded is not None:
        metrics.GAZETTEER_LOADED.set(loaded.timestamp())
    expired = index.expired_count(dt.datetime.now(dt.UTC).isoformat())
    metrics.CERTIFICATES_EXPIRED.set(expired)
    if expired < len(index.expiries):
        soonest = dt.datetime.fromisoformat(index.expiries[expired])
        metrics.CERTIFICATE_NEXT_EXPIRY.set(soonest.timestamp())


async def _load_gazetteer(session: AsyncSession) -> Gazetteer:
    return await _gazetteer_after(session, Gazetteer()) or Gazetteer()


async def _gazetteer_after(session: AsyncSession, held: Gazetteer) -> Gazetteer | None:
    """The gazetteer the database holds now, reusing `held`'s unchanged countries;
    None when nothing changed. Only countries whose load changed are read."""
    loads = {load.country: load for load in await gazetteer_data.loads(session)}
    stamps = {country: gazetteer_data.stamp_of(load) for country, load in loads.items()}
    if stamps == held.stamps():
        return None
    countries = {}
    for country, load in loads.items():
        kept = held.countries.get(country)
        if kept is not None and kept.stamp == stamps[country]:
            countries[country] = kept
        else:
            countries[country] = await _load_country(session, country, stamps[country],
                                                     load.loaded_at)  # fmt: skip
    return Gazetteer(countries, gazetteer_data.identity(stamps))


async def _load_country(session: AsyncSession, country: str, stamp: str,
                        loaded_at: dt.datetime) -> CountryPlaces:  # fmt: skip
    here = CountryPlaces(stamp, loaded_at)
    interned: dict[tuple[tuple[str, str], ...], int] = {}
    query = (
        select(GazetteerPlace.postal_code, GazetteerPlace.lau, GazetteerPlace.nuts3)
        .where(GazetteerPlace.country == country)
        .order_by(GazetteerPlace.postal_code)
    )
    # Small chunks: a worker reads a country while it answers, and each chunk is handled
    # in one go on the event loop (half a million rows must not stall it for seconds).
    stream = await session.stream(query.execution_options(yield_per=GAZETTEER_CHUNK))
    # Rows come ordered by postal code, so one code's places are adjacent: no second copy.
    key, places = "", list[tuple[str, str]]()
    records: list[bytes] = []
    # By chunk, not by row: an async iteration per row costs more than the row's work.
    async for chunk in stream.partitions():
        for postal_code, lau, nuts3 in chunk:
            if lau:
                here.lau_nuts3.setdefault(sys.intern(lau), sys.intern(nuts3))
            if postal_code != key:
                _place(here, interned, key, places, records)
                key, places = postal_code, []
            places.append((sys.intern(lau), sys.intern(nuts3)))
    _place(here, interned, key, places, records)
    here.postal = PackedKeys(records)
    return here


def _place(here: CountryPlaces, interned: dict[tuple[tuple[str, str], ...], int], key: str,
           places: list[tuple[str, str]], records: list[bytes]) -> None:  # fmt: skip
    if not key:
        return
    frozen = (places[0],) if len(places) == 1 else tuple(sorted(set(places)))
    at = interned.get(frozen)
    if at is None:
        at = interned[frozen] = len(here.places)
        here.places.append(frozen)
    records.append(record(key.encode(), at))


async def catch_up(index: LookupIndex, sessions: async_sessionmaker[AsyncSession]) -> int:
    """Apply every revision after the index's, and any gazetteer load since the last look;
    returns how many versions were applied.

    A gazetteer load writes no revision, so its loads are looked at on every poll (one
    small read): a load takes effect within the follow interval, with no registry write.
    """
    applied = 0
    while True:
        async with rev.read_snapshot(sessions) as session:
            head = await rev.head_revision(session)
            index.freshness.saw(head, index.revision, time.monotonic())
            fresh_gazetteer = await _gazetteer_after(session, index.gazetteer)
            versions = (
                await rev.changes_after(session, index.revision, CHANGES_PAGE)
                if head > index.revision
                else []
            )
        # From here to the end, no await: the whole page of revisions lands at once.
        _apply_versions(index, versions)
        if fresh_gazetteer is not None:
            index.gazetteer = fresh_gazetteer
            log.info("gazetteer followed", identity=fresh_gazetteer.identity,
                     countries=len(fresh_gazetteer.countries))  # fmt: skip
        index.freshness.caught_up_to(head, index.revision)
        applied += len(versions)
        if head <= index.revision:
            _record(index, head)
            return applied


def _apply_versions(index: LookupIndex, versions: Iterable[rev.EntryVersion]) -> None:
    last = index.revision
    for version in versions:
        document = None if version.operation == rev.Operation.DELETE else dict(version.document)
        index.apply(version.kind, version.entry_id, document)
        last = max(last, version.revision)
    index.revision = last


@dataclass
class IndexFollower:
    """Keeps one worker's index current; `/health/ready` reports its age."""

    sessions: async_sessionmaker[AsyncSession]
    interval: float = POLL_INTERVAL_S
    index: LookupIndex | None = None
    _task: asyncio.Task[None] | None = None
    # Encoded answers of this revision: a RIS asks the same questions all day.
    _answers: OrderedDict[Hashable, bytes] = field(default_factory=OrderedDict)
    _answers_at: tuple[int, str, int] = (-1, "", 0)
    # One catch-up at a time per worker: the poller and on-demand waits share it.
    _catching_up: asyncio.Lock = field(default_factory=asyncio.Lock)

    def answer(self, index: LookupIndex, key: Hashable, compute: Callable[[], bytes]) -> bytes:
        """The encoded answer to `key` at the index's revision, computed once per revision."""
        now = dt.datetime.now(dt.UTC).isoformat()
        stamp = (index.revision, index.gazetteer.identity, index.expired_count(now))
        if stamp != self._answers_at:
            self._answers.clear()
            self._answers_at = stamp
        found = self._answers.get(key)
        if found is None:
            found = self._answers[key] = compute()
            if len(self._answers) > ANSWER_CACHE_SIZE:
                self._answers.popitem(last=False)
        else:
            self._answers.move_to_end(key)
        return found

    async def start(self) -> None:
        """Build now if the database allows; otherwise keep trying in the background."""
        await self._build()
        self._task = asyncio.create_task(self._follow(), name="lookup-index-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> None:
        """Catch up with the database now; build the index first if there is none yet."""
        if self.index is None:
            self.index = await build(self.sessions)
        else:
            await catch_up(self.index, self.sessions)

    async def rebuild(self) -> None:
        """A fresh index from a fresh snapshot (the data was replaced); the old one answers
        until the new one is whole."""
        self.index = await build(self.sessions)

    async def _build(self) -> None:
        try:
            self.index = await build(self.sessions)
        except Exception as error:
            log.warning("lookup index could not be built", error=repr(error))
            return
        log.info("lookup index built", revision=self.index.revision,
                 criteria=len(self.index.slot_of), geo_keys=self.index.key_count())  # fmt: skip

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.index is None:
                await self._build()
                continue
            try:
                async with self._catching_up:
                    await catch_up(self.index, self.sessions)
            except Exception as error:
                log.warning("lookup index could not catch up", error=repr(error))

    def freshness(self) -> tuple[float, float] | None:
        """(lag, seconds since the head was last read); None while there is no index."""
        if self.index is None:
            return None
        now = time.monotonic()
        fresh = self.index.freshness
        return fresh.lag(now), now - fresh.checked_at

    async def reached(self, revision: int, wait_s: float) -> bool:
        """Wait, at most `wait_s` s, until this worker's index has applied `revision`.

        Catches up itself rather than waiting for the next poll: a client that just
        wrote through another worker is served as soon as the database allows.
        """
        deadline = time.monotonic() + wait_s
        while True:
            index = self.index
            if index is not None and index.revision >= revision:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):
                    async with self._catching_up:
                        if self.index is None or self.index.revision < revision:
                            await self.refresh()
            except TimeoutError:
                return self.index is not None and self.index.revision >= revision
            except Exception as error:  # the database: keep the bounded wait, report below
                log.warning("lookup index could not catch up on demand", error=repr(error))
                await asyncio.sleep(min(WAIT_STEP_S, max(0.0, deadline - time.monotonic())))
                continue
            if self.index is not None and self.index.revision < revision:
                await asyncio.sleep(min(WAIT_STEP_S, max(0.0, deadline - time.monotonic())))
