"""The gazetteer: postal code → LAU → NUTS3 (→ NUTS2 → NUTS1 → country by prefix).

Reference data, not registry entries: it is replaced per country from Eurostat's
TERCET correspondence files (`NUTS3;CODE` with optional `LAU;LAU_NAME`), and each
load is recorded so that readiness can report how fresh it is.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Integer, String, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import Base, DateTimeUTC, utcnow
from cdb_service.kernel.codes import COUNTRIES
from cdb_service.kernel.geo import normalise_geo_code, normalise_postal_code


class GazetteerPlace(Base):
    __tablename__ = "gazetteer_places"
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    postal_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    lau: Mapped[str] = mapped_column(String(20), primary_key=True)
    lau_name: Mapped[str | None] = mapped_column(String(200))
    nuts3: Mapped[str] = mapped_column(String(5), index=True)


class GazetteerLoad(Base):
    __tablename__ = "gazetteer_loads"
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    source: Mapped[str] = mapped_column(String(500))
    loaded_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)
    place_count: Mapped[int] = mapped_column(Integer)


@dataclass(frozen=True)
class Place:
    postal_code: str
    lau: str
    nuts3: str
    lau_name: str | None = None


class GazetteerError(ValueError):
    pass


def read_tercet(text: str, country: str) -> list[Place]:
    """Parse a TERCET-style file; the line number of the first bad row is in the error."""
    sample = text[:2048]
    dialect = csv.Sniffer().sniff(sample, delimiters=";,\t") if sample.strip() else csv.excel
    rows = csv.reader(io.StringIO(text), dialect)
    header = [h.strip().strip("'\"").upper() for h in next(rows, [])]
    if "NUTS3" not in header or "CODE" not in header:
        raise GazetteerError("header must name NUTS3 and CODE (TERCET format)")
    at = {name: header.index(name) for name in header}
    places = []
    for number, raw in enumerate(rows, start=2):
        if not any(cell.strip() for cell in raw):
            continue
        cells = [cell.strip().strip("'\"") for cell in raw]
        try:
            postal = normalise_postal_code(country, cells[at["CODE"]])
            nuts3 = normalise_geo_code(country, "nuts3", cells[at["NUTS3"]])
            lau = normalise_geo_code(country, "lau", cells[at["LAU"]]) if "LAU" in at else ""
        except (ValueError, IndexError) as error:
            raise GazetteerError(f"line {number}: {error}") from None
        name = cells[at["LAU_NAME"]] if "LAU_NAME" in at else None
        places.append(Place(postal, lau, nuts3, name or None))
    return places


async def replace_country(
    sessions: async_sessionmaker[AsyncSession],
    country: str,
    places: Iterable[Place],
    source: str,
) -> int:
    """Replace one country's places in one transaction; return how many were loaded."""
    if country not in COUNTRIES:
        raise GazetteerError(f"{country!r} is not an EU member state code")
    rows = {
        (p.postal_code, p.lau): {
            "country": country,
            "postal_code": p.postal_code,
            "lau": p.lau,
            "lau_name": p.lau_name,
            "nuts3": p.nuts3,
        }
        for p in places
    }
    async with sessions() as session, session.begin():
        await session.execute(delete(GazetteerPlace).where(GazetteerPlace.country == country))
        batch = list(rows.values())
        for start in range(0, len(batch), 5000):
            await session.execute(insert(GazetteerPlace), batch[start : start + 5000])
        await session.merge(GazetteerLoad(
            country=country, source=source, loaded_at=utcnow(), place_count=len(batch)
        ))  # fmt: skip
    return len(rows)


async def oldest_load(session: AsyncSession) -> dt.datetime | None:
    loads = (await session.scalars(select(GazetteerLoad.loaded_at))).all()
    return min(loads) if loads else None


async def places_of(session: AsyncSession, country: str) -> list[GazetteerPlace]:
    query = select(GazetteerPlace).where(GazetteerPlace.country == country)
    return list((await session.scalars(query)).all())
