"""The gazetteer: postal code → LAU → NUTS3 (→ NUTS2 → NUTS1 → country by prefix).

Reference data, not registry entries: it is replaced per country from Eurostat's
TERCET correspondence files (`NUTS3;CODE` with optional `LAU;LAU_NAME`), read line
by line and written in batches, so memory stays flat and time follows the file's
size. Each load is recorded with a digest of what the country now holds: the
lookup index follows the digests (a load takes effect without a registry write),
the resolve ETag covers them, and a mirror compares them with its source's.

Postal codes are as TERCET keys them: Ireland by Eircode routing key (`A41`), Malta
by locality code (`ATD`); `kernel.geo.postal_unit` takes a sender's full code there.
A postal code may lie in several LAUs or NUTS 3 regions: every pair is kept.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import Integer, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import Base, DateTimeUTC, utcnow
from cdb_service.kernel.codes import COUNTRIES
from cdb_service.kernel.geo import normalise_geo_code, normalise_postal_code

BATCH = 5000


class GazetteerPlace(Base):
    __tablename__ = "gazetteer_places"
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    postal_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    lau: Mapped[str] = mapped_column(String(20), primary_key=True)
    lau_name: Mapped[str | None] = mapped_column(String(200))
    nuts3: Mapped[str] = mapped_column(String(5), primary_key=True, index=True)


class GazetteerLoad(Base):
    __tablename__ = "gazetteer_loads"
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    source: Mapped[str] = mapped_column(String(500))
    loaded_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    place_count: Mapped[int] = mapped_column(Integer)
    # What the country holds (see `_digest`); None only for loads made before it existed.
    digest: Mapped[str | None] = mapped_column(String(64), default=None)


@dataclass(frozen=True)
class Place:
    postal_code: str
    lau: str
    nuts3: str
    lau_name: str | None = None


class GazetteerError(ValueError):
    pass


def _lines(source: str | IO[str]) -> Iterator[str]:
    return iter(source.splitlines(keepends=True)) if isinstance(source, str) else iter(source)


def _cell(value: str) -> str:
    # TERCET quotes values with single quotes ('AT130';'1010'); some copies with double.
    return value.strip().strip("'\"").strip()


def read_tercet(source: str | IO[str], country: str) -> Iterator[Place]:
    """Places of a TERCET-style file, one row at a time; the first bad row's line is named.

    The header is checked at once (a file that is not TERCET is refused before anything
    else happens); rows are read as the caller takes them.
    """
    lines = _lines(source)
    first = next(lines, "")
    delimiter = next((d for d in (";", "\t", ",") if d in first), ";")
    rows = csv.reader(itertools.chain([first], lines), delimiter=delimiter)
    header = [_cell(h).upper() for h in next(rows, [])]
    if "NUTS3" not in header or "CODE" not in header:
        raise GazetteerError("header must name NUTS3 and CODE (TERCET format)")
    return _places(rows, {name: header.index(name) for name in header}, country)


def _places(rows: Iterator[list[str]], at: dict[str, int], country: str) -> Iterator[Place]:
    # A few thousand regions and municipalities over up to half a million rows: each
    # distinct value is checked once (the memo is bounded by what the state has).
    seen: dict[tuple[str, str], str] = {}

    def checked(scheme: str, value: str) -> str:
        found = seen.get((scheme, value))
        if found is None:
            found = seen[(scheme, value)] = normalise_geo_code(country, scheme, value)
        return found

    for number, raw in enumerate(rows, start=2):
        if not any(cell.strip() for cell in raw):
            continue
        cells = [_cell(cell) for cell in raw]
        try:
            postal = normalise_postal_code(country, cells[at["CODE"]])
            nuts3 = checked("nuts3", cells[at["NUTS3"]])
            lau = checked("lau", cells[at["LAU"]]) if "LAU" in at else ""
        except (ValueError, IndexError) as error:
            raise GazetteerError(f"line {number}: {error}") from None
        name = cells[at["LAU_NAME"]] if "LAU_NAME" in at and len(cells) > at["LAU_NAME"] else None
        yield Place(postal, lau, nuts3, name[:200] if name else None)


def _insert_ignoring_repeats(session: AsyncSession) -> Any:
    """INSERT that skips a row already there: a file may list a pair twice."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(GazetteerPlace).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(GazetteerPlace).on_conflict_do_nothing()


def place_line(postal_code: str, lau: str, nuts3: str, lau_name: str | None) -> str:
    return f"{postal_code}\t{lau}\t{nuts3}\t{lau_name or ''}"


async def _digest(session: AsyncSession, country: str) -> tuple[str, int]:
    """(digest, rows): the sum of every row's SHA-256 modulo 2^256.

    A sum does not depend on the order the rows come in, so PostgreSQL's collation and
    SQLite's give the same digest for the same content (the service's and a mirror's).
    """
    total = count = 0
    query = select(GazetteerPlace.postal_code, GazetteerPlace.lau, GazetteerPlace.nuts3,
                   GazetteerPlace.lau_name).where(GazetteerPlace.country == country)  # fmt: skip
    stream = await session.stream(query.execution_options(yield_per=BATCH))
    async for chunk in stream.partitions():
        for row in chunk:
            line = place_line(*row).encode()
            total = (total + int.from_bytes(hashlib.sha256(line).digest(), "big")) % (1 << 256)
        count += len(chunk)
    return f"{total:064x}", count


async def _batches(
    places: Iterable[Place] | AsyncIterable[Place], country: str
) -> AsyncIterator[list[dict[str, Any]]]:
    def row(p: Place) -> dict[str, Any]:
        return {"country": country, "postal_code": p.postal_code, "lau": p.lau,
                "lau_name": p.lau_name, "nuts3": p.nuts3}  # fmt: skip

    if isinstance(places, AsyncIterable):
        batch: list[dict[str, Any]] = []
        async for place in places:
            batch.append(row(place))
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
        return
    rows = (row(p) for p in places)
    while batch := list(itertools.islice(rows, BATCH)):
        yield batch


async def replace_country(
    sessions: async_sessionmaker[AsyncSession],
    country: str,
    places: Iterable[Place] | AsyncIterable[Place],
    source: str,
    expect_digest: str | None = None,
) -> int:
    """Replace one country's places in one transaction; return how many it now holds.

    `expect_digest` (a mirror copying its source): refused, and nothing changed, when
    what was loaded is not what the source holds.
    """
    if country not in COUNTRIES:
        raise GazetteerError(f"{country!r} is not an EU member state code")
    async with sessions() as session, session.begin():
        await session.execute(delete(GazetteerPlace).where(GazetteerPlace.country == country))
        statement = _insert_ignoring_repeats(session)
        async for batch in _batches(places, country):
            await session.execute(statement, batch)
        digest, count = await _digest(session, country)
        if expect_digest is not None and digest != expect_digest:
            raise GazetteerError(
                f"{country}: the places loaded have digest {digest}, not {expect_digest}"
            )
        await session.merge(GazetteerLoad(
            country=country, source=source[:500], loaded_at=utcnow(), place_count=count,
            digest=digest,
        ))  # fmt: skip
    return count


async def remove_country(sessions: async_sessionmaker[AsyncSession], country: str) -> None:
    async with sessions() as session, session.begin():
        await session.execute(delete(GazetteerPlace).where(GazetteerPlace.country == country))
        await session.execute(delete(GazetteerLoad).where(GazetteerLoad.country == country))


async def loads(session: AsyncSession) -> list[GazetteerLoad]:
    """Every country's last load, by country."""
    return list(await session.scalars(select(GazetteerLoad).order_by(GazetteerLoad.country)))


def stamp_of(load: GazetteerLoad) -> str:
    """What identifies a country's gazetteer: its digest (older loads: their time)."""
    return load.digest or f"{load.place_count}@{load.loaded_at.isoformat()}"


def identity(stamps: dict[str, str]) -> str:
    """One short name for a whole gazetteer (every country's stamp): ETags, the feed."""
    text = ";".join(f"{country}={stamps[country]}" for country in sorted(stamps))
    return hashlib.sha256(text.encode()).hexdigest()[:16] if stamps else "none"


async def places_of(session: AsyncSession, country: str) -> list[GazetteerPlace]:
    query = select(GazetteerPlace).where(GazetteerPlace.country == country)
    return list((await session.scalars(query)).all())


async def stream_places(
    session: AsyncSession, country: str
) -> AsyncIterator[tuple[str, str, str, str | None]]:
    """(postal code, LAU, NUTS 3, LAU name) of one country, in chunks."""
    query = select(GazetteerPlace.postal_code, GazetteerPlace.lau, GazetteerPlace.nuts3,
                   GazetteerPlace.lau_name).where(GazetteerPlace.country == country)  # fmt: skip
    stream = await session.stream(query.execution_options(yield_per=BATCH))
    async for chunk in stream.partitions():
        for postal_code, lau, nuts3, lau_name in chunk:
            yield postal_code, lau, nuts3, lau_name
