"""Building a `LookupIndex` from one consistent snapshot, and catching it up with the feed.

The build reads the current criteria, entries and gazetteer in one read snapshot and
packs the geo keys (see `index.py`); `catch_up` reads the entry versions after the
index's revision (`db.revisions.changes_after`, the change feed's query) and any
gazetteer load, then applies them to a copy of the index that requests do not read
(both run on the follower's thread, see `follower.py`).
"""

from __future__ import annotations

import datetime as dt
import gc
import sys
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service import metrics
from cdb_service.db import documents
from cdb_service.db import revisions as rev
from cdb_service.db.documents import document_of
from cdb_service.logging import get_logger
from cdb_service.lookup import gazetteer as gazetteer_data
from cdb_service.lookup.gazetteer import GazetteerPlace
from cdb_service.lookup.index import (
    KEY_HEAD,
    KEY_SEP,
    CountryPlaces,
    Criterion,
    Freshness,
    Gazetteer,
    LookupIndex,
    geo_key,
)
from cdb_service.lookup.packed import PackedBuilder, PackedKeys, record
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.jurisdiction_criteria.models import GeoKey, JurisdictionCriterion

log = get_logger("cdb.lookup")
STREAM_CHUNK = 20_000
GAZETTEER_CHUNK = 1000
CHANGES_PAGE = 5000


async def build(sessions: async_sessionmaker[AsyncSession], record: bool = True) -> LookupIndex:
    """A whole index from one snapshot. `record`: it is the worker's own (its figures go
    to the metrics, its objects out of the collector's walks); a snapshot file's builder
    drops it once written."""
    index = LookupIndex()
    async with rev.read_snapshot(sessions) as session:
        index.revision = await rev.head_revision(session)
        for name in (
            "owners",
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
    if record:
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
    countries, wanted = {}, []
    for country, load in loads.items():
        kept = held.countries.get(country)
        if kept is not None and kept.stamp == stamps[country]:
            countries[country] = kept
        else:
            wanted.append((country, stamps[country], load.loaded_at))
    for country, stamp, loaded_at in wanted:
        countries[country] = await load_country(session, country, stamp, loaded_at)
    return Gazetteer(countries, gazetteer_data.identity(stamps))


async def load_country(session: AsyncSession, country: str, stamp: str,
                        loaded_at: dt.datetime) -> CountryPlaces:  # fmt: skip
    here = CountryPlaces(stamp, loaded_at)
    interned: dict[tuple[tuple[str, str], ...], int] = {}
    query = (
        select(GazetteerPlace.postal_code, GazetteerPlace.lau, GazetteerPlace.nuts3)
        .where(GazetteerPlace.country == country)
        .order_by(GazetteerPlace.postal_code)
    )
    # Small chunks: a worker reads a country while it answers; its follower's thread
    # holds the interpreter's lock for a chunk at a time, not for half a million rows.
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


async def catch_up(index: LookupIndex, sessions: async_sessionmaker[AsyncSession],
                   copy: bool = True) -> tuple[LookupIndex, int]:  # fmt: skip
    """Apply every revision after the index's, and any gazetteer load since the last look;
    returns the index that has them and how many versions were applied.

    `copy`: `index` is read by requests, so what changed is applied to a copy of it (made
    once, at the first change; `index` itself when nothing changed), which the caller
    swaps in; False: applied to `index` itself, which nobody reads yet.

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
        if copy and (versions or fresh_gazetteer is not None):
            index, copy = index.forked(), False
        _apply_versions(index, versions)
        if fresh_gazetteer is not None:
            index.gazetteer = fresh_gazetteer
            log.info("gazetteer followed", identity=fresh_gazetteer.identity,
                     countries=len(fresh_gazetteer.countries))  # fmt: skip
        index.freshness.caught_up_to(head, index.revision)
        applied += len(versions)
        if head <= index.revision:
            _record(index, head)
            return index, applied


def _apply_versions(index: LookupIndex, versions: Iterable[rev.EntryVersion]) -> None:
    last = index.revision
    for version in versions:
        document = None if version.operation == rev.Operation.DELETE else dict(version.document)
        index.apply(version.kind, version.entry_id, document)
        last = max(last, version.revision)
    index.revision = last
