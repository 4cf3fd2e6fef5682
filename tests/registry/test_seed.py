"""The seed dataset: complete for 27 states and Eurojust, idempotent, and scalable."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from cdb_service.db.revisions import Revision
from cdb_service.kernel.codes import COUNTRIES, MEMBER_ROLES
from cdb_service.lookup.gazetteer import GazetteerPlace
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.jurisdiction_criteria.models import GeoKey
from cdb_service.seeding.load import nth_postal_code, seed, seed_scale
from cdb_service.services import Services


async def _all(services: Services, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return (await services.reads.collection(KINDS[kind], limit=1000)).items


async def test_seed_covers_every_state_and_a_second_run_creates_no_revision(
    services: Services,
) -> None:
    first = await seed(services.batches, services.sessions)
    assert first.batch.revision == 1
    second = await seed(services.batches, services.sessions)
    assert second.batch.revision is None
    assert second.batch.counts()["created"] == second.batch.counts()["updated"] == 0
    assert second.gazetteer_countries_loaded == 0
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Revision)) == 1

    authorities = await _all(services, "authorities")
    kinds_by_owner = Counter((a["owner"], a["kind"]) for a in authorities)
    for cc in COUNTRIES:
        assert kinds_by_owner[(cc, "central-authority")] == 1, cc
        assert kinds_by_owner[(cc, "prosecution")] >= 2, cc
        assert kinds_by_owner[(cc, "court")] >= 2, cc
    # Names in the national language(s) and English.
    de_court = next(a for a in authorities if a["code"].startswith("DE:COURT-"))
    assert {"de", "en"} <= set(de_court["names"])
    el_court = next(a for a in authorities if a["code"].startswith("EL:COURT-"))
    assert any("\u0370" <= ch <= "\u03ff" for ch in el_court["names"]["el"])

    criteria = await _all(services, "jurisdiction-criteria")
    schemes = {g["scheme"] for c in criteria for g in c["geo"]}
    assert {"country", "nuts2", "nuts3", "postal-code", "postal-code-prefix", "lau"} <= schemes
    instruments = {c["instrument"] for c in criteria}
    assert {"eio", "eaw", "freezing-confiscation", "eurojust-art21", "maintenance"} <= instruments

    members = await _all(services, "national-members")
    assert Counter((m["country"], m["role"]) for m in members) == Counter(
        {(cc, role): 1 for cc in COUNTRIES for role in MEMBER_ROLES}
    )
    assert all(m["owner"] == "EJ" for m in members)
    correspondents = await _all(services, "national-correspondents")
    assert {c["country"] for c in correspondents} == set(COUNTRIES)
    parties = await _all(services, "routing-parties")
    assert len(parties) == len(COUNTRIES) + 1
    assert all(p["certificates"] and p["certificates"][0]["sha256"] for p in parties)
    async with services.sessions() as session:
        countries = await session.scalars(select(GazetteerPlace.country).distinct())
        assert set(countries) == set(COUNTRIES)


async def test_scale_generates_about_n_keys_deterministically(services: Services) -> None:
    await seed(services.batches, services.sessions)
    async with services.sessions() as session:
        before = await session.scalar(select(func.count()).select_from(GeoKey))
    report = await seed_scale(services.batches, services.sessions, 5000)
    assert report.batch.revision == 2
    async with services.sessions() as session:
        after = await session.scalar(select(func.count()).select_from(GeoKey))
    assert after - before == 5000
    again = await seed_scale(services.batches, services.sessions, 5000)
    assert again.batch.revision is None
    assert again.gazetteer_countries_loaded == 0


def test_nth_postal_code_follows_the_national_shape() -> None:
    assert nth_postal_code("99-999", 0) == "00-000"
    assert nth_postal_code("99-999", 1234) == "01-234"
    assert nth_postal_code("9999AA", 27) == "0000BB"
    assert nth_postal_code("9999", 10_000) is None
