"""A flood of refused requests from one address is answered 429 early and leaves a few
audit rows, not thousands; a client's own burst is limited by its certificate."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from cdb_service.security.audit import AuditEvent

pytestmark = pytest.mark.serial  # measures time under load: runs alone

AUTHORITIES = "/api/v1/authorities"


async def _audit_rows(services: Any) -> int:
    async with services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


async def test_5000_unauthenticated_requests_get_401_or_429_and_few_audit_rows(
    api: Any, services: Any
) -> None:
    before = await _audit_rows(services)
    statuses: list[int] = []
    retry_after: set[str] = set()
    async with api.client(None) as anonymous:
        for start in range(0, 5000, 100):
            answers = await asyncio.gather(
                *(anonymous.get(f"/api/v1/code-lists/{n}-{'x' * 400}") if n % 2 else
                  anonymous.get(AUTHORITIES) for n in range(start, start + 100))
            )  # fmt: skip
            statuses += [a.status_code for a in answers]
            retry_after |= {a.headers["retry-after"] for a in answers if a.status_code == 429}
    assert set(statuses) <= {401, 429}
    assert statuses.count(429) > 4000, "the flood was not slowed"
    assert retry_after and all(int(s) >= 1 for s in retry_after)
    await api.app.state.gate.refusals.flush(services.sessions, everything=True)
    grown = await _audit_rows(services) - before
    assert grown < 100, f"{grown} audit rows for one flood"
    async with services.sessions() as session:
        counted = (await session.scalars(select(AuditEvent))).all()
    # The trail still says how many there were.
    total = sum((e.detail or {}).get("repeated", 1) for e in counted if e.subject == "anonymous")
    assert total == len(statuses)


async def test_a_flooding_address_does_not_lock_out_a_client_known_to_it(api: Any) -> None:
    """Colleagues behind one address: a client that authenticated lately still gets in
    while a misconfigured neighbour floods; a certificate never seen waits its turn."""
    # A slow refill: on a busy machine the default 5/s would reopen the door for the
    # stranger between the flood and its request.
    api.app.state.gate.limits.anonymous.rate = 0.01
    async with api.client("reader") as reader:
        assert (await reader.get(AUTHORITIES)).status_code == 200
    async with api.client(None) as anonymous:
        await asyncio.gather(*(anonymous.get(AUTHORITIES) for _ in range(300)))
        assert (await anonymous.get(AUTHORITIES)).status_code == 429
    async with api.client("reader") as reader:
        assert (await reader.get(AUTHORITIES)).status_code == 200
    async with api.client("admin-fr") as stranger_to_it:
        assert (await stranger_to_it.get(AUTHORITIES)).status_code == 429


async def test_a_client_over_its_rate_gets_429_with_retry_after(api: Any) -> None:
    gate = api.app.state.gate
    gate.limits.clients.rate, gate.limits.clients.burst = 1.0, 10.0
    async with api.client("reader") as reader:
        started = time.monotonic()
        answers = await asyncio.gather(*(reader.get(AUTHORITIES) for _ in range(30)))
        elapsed = time.monotonic() - started
    statuses = [a.status_code for a in answers]
    # The burst, plus what the rate refilled while the 30 were answered (a busy machine
    # answers them more slowly): everything beyond is refused.
    allowed = 10 + int(elapsed * 1.0) + 1
    assert statuses.count(200) <= allowed and statuses.count(429) >= 30 - allowed, (
        elapsed, statuses)  # fmt: skip
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert "this client certificate" in refused.json()["detail"]
