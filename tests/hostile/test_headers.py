"""Headers a browser or an intermediary acts on: no sniffing, HSTS on the service's own
TLS port, nothing with named persons or credentials kept in a cache."""

from __future__ import annotations

from typing import Any

from tests.support import factories

V1 = "/api/v1"


async def test_api_answers_are_not_stored_and_public_lookups_revalidate(api: Any) -> None:
    async with api.client("admin-de") as admin:
        created = await admin.post(f"{V1}/authorities", json=factories.authority("DE", "DE:H-1"))
        entry = await admin.get(created.headers["location"])
        resolve = await admin.get(f"{V1}/resolve?country=DE&instrument=eio&competence=execute")
    for answer in (created, entry):
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["strict-transport-security"].startswith("max-age=")
    assert "no-cache" in resolve.headers["cache-control"]  # kept, but revalidated by ETag


async def test_a_refusal_and_a_health_check_carry_the_same_protections(api: Any) -> None:
    async with api.client(None) as anonymous:
        refused = await anonymous.get(f"{V1}/authorities")
        health = await anonymous.get("/health/live")
    assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"
    for answer in (refused, health):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "strict-transport-security" in answer.headers
