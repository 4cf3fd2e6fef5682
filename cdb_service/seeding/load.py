"""Load the seed dataset (and, for scale tests, a generated one) as registry batches."""

from __future__ import annotations

import itertools
import math
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.kernel.codes import POSTAL_CODE_SHAPES
from cdb_service.kernel.owners import DEFAULT
from cdb_service.lookup import gazetteer
from cdb_service.lookup.gazetteer import Place
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.batch_items import BatchItem, BatchResult
from cdb_service.registry.store.batches import Batches
from cdb_service.registry.store.validation import validate
from cdb_service.seeding.dataset import SEED_DIR, build, countries, slug

SEED_ACTOR = "seed"


@dataclass
class SeedReport:
    batch: BatchResult
    gazetteer_countries_loaded: int

    def summary(self) -> dict[str, Any]:
        return {
            "revision": self.batch.revision,
            **self.batch.counts(),
            "gazetteer_countries_loaded": self.gazetteer_countries_loaded,
        }


def to_items(entries: list[tuple[str, dict[str, Any]]]) -> list[BatchItem]:
    return [
        BatchItem.of(KINDS[kind], validate(KINDS[kind], doc, ("line", n)), n)
        for n, (kind, doc) in enumerate(entries, start=1)
    ]


async def seed(
    batches: Batches,
    sessions: async_sessionmaker[AsyncSession],
    seed_dir: Path = SEED_DIR,
) -> SeedReport:
    data = build(seed_dir)
    result = await batches.apply(to_items(data.entries), SEED_ACTOR, summary="seed data")
    loaded = await _load_gazetteer(sessions, data.gazetteer, "seed sample gazetteer")
    return SeedReport(result, loaded)


async def _load_gazetteer(
    sessions: async_sessionmaker[AsyncSession], places: dict[str, list[Place]], source: str
) -> int:
    """Add the places a country lacks; loading the same data again is a no-op."""
    loaded = 0
    for country, wanted in places.items():
        async with sessions() as session:
            current = {
                Place(p.postal_code, p.lau, p.nuts3, p.lau_name)
                for p in await gazetteer.places_of(session, country)
            }
        if not set(wanted) <= current:
            await gazetteer.replace_country(sessions, country, current | set(wanted), source)
            loaded += 1
    return loaded


# --- scale data ---------------------------------------------------------------------------

MAX_SCALE = 1_000_000
KEYS_PER_CRITERION = 2_000


def nth_postal_code(shape: str, n: int) -> str | None:
    """The n-th code of a postal-code shape in a fixed order; None past the last."""
    alphabets = {"9": string.digits, "A": string.ascii_uppercase, "X": string.digits}
    slots = [alphabets.get(c) for c in shape]
    capacity = math.prod(len(a) for a in slots if a)
    if n >= capacity:
        return None
    out = []
    for char, alphabet in reversed(list(zip(shape, slots, strict=True))):
        if alphabet is None:
            out.append(char)
        else:
            n, digit = divmod(n, len(alphabet))
            out.append(alphabet[digit])
    return "".join(reversed(out))


async def seed_scale(
    batches: Batches,
    sessions: async_sessionmaker[AsyncSession],
    keys: int,
    seed_dir: Path = SEED_DIR,
) -> SeedReport:
    """About `keys` postal-code geo keys, spread over the member states, deterministic.

    Every generated postal code also enters the gazetteer (mapped to a seed region),
    so that resolution by postal code works at scale as it does on the seed data.
    """
    keys = max(0, min(keys, MAX_SCALE))
    # EIO criteria: for the states that take part in the EIO only (not IE, DK).
    regions = {c["country"]: c["regions"] for c in countries(seed_dir)
               if DEFAULT.takes_part(c["country"], "eio")}  # fmt: skip
    seeded = {cc: {p for r in rs for p in r["postal_codes"]} for cc, rs in regions.items()}
    entries: list[tuple[str, dict[str, Any]]] = []
    places: dict[str, list[Place]] = {}
    remaining = keys
    # Smallest postal-code spaces first: what a 4-digit state cannot hold, the others take.
    by_capacity = sorted(regions, key=lambda cc: (_capacity(POSTAL_CODE_SHAPES[cc]), cc))
    for position, cc in enumerate(by_capacity):
        share = math.ceil(remaining / (len(by_capacity) - position))
        codes = _fresh_codes(POSTAL_CODE_SHAPES[cc], seeded[cc], share)
        remaining -= len(codes)
        base = [
            Place(code, r["lau"], r["nuts3"], r.get("lau_name"))
            for r in regions[cc]
            for code in r["postal_codes"]
        ]
        places[cc] = base
        for index, chunk in enumerate(_chunks(codes, KEYS_PER_CRITERION)):
            region = regions[cc][index % len(regions[cc])]
            entries.append(("jurisdiction-criteria", {
                "owner": cc, "ref": f"{cc}-SCALE-{index}",
                "authority_code": f"{cc}:PROSECUTION-{slug(region['city'])}",
                "instrument": "eio", "competence": "execute", "priority": 500,
                "geo": [{"scheme": "postal-code", "code": code} for code in chunk],
            }))  # fmt: skip
            places[cc] += [Place(c, region["lau"], region["nuts3"], region.get("lau_name"))
                           for c in chunk]  # fmt: skip
    result = await batches.apply(to_items(entries), SEED_ACTOR, summary=f"scale {keys}")
    loaded = await _load_gazetteer(sessions, places, f"generated scale data ({keys} keys)")
    return SeedReport(result, loaded)


def _capacity(shape: str) -> int:
    return math.prod({"9": 10, "A": 26, "X": 10}.get(c, 1) for c in shape)


def _fresh_codes(shape: str, taken: set[str], wanted: int) -> list[str]:
    out: list[str] = []
    for n in itertools.count():
        if len(out) >= wanted:
            break
        code = nth_postal_code(shape, n)
        if code is None:
            break
        if code not in taken:
            out.append(code)
    return out


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
