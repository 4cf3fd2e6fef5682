"""The administration API: versioned reads and safe writes, as an administrator sees them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

from sqlalchemy import select

from cdb_service.distribution import feed
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.batch_items import BatchItem
from cdb_service.registry.store.validation import validate
from cdb_service.security.audit import AuditEvent
from cdb_service.services import Services
from tests.support import factories
from tests.support.api import Api

V1 = "/api/v1"


async def _create(api: Api, who: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    async with api.client(who) as c:
        response = await c.post(f"{V1}/{kind}", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_create_read_etag_and_conditional_get(api: Api) -> None:
    created = await _create(api, "admin-de", "authorities", factories.authority())
    async with api.client("reader") as c:
        got = await c.get(f"{V1}/authorities/{created['id']}")
        assert got.status_code == 200
        assert got.headers["etag"] == '"1"'
        assert got.json() == created
        again = await c.get(f"{V1}/authorities/{created['id']}", headers={"If-None-Match": '"1"'})
        assert again.status_code == 304
        listed = await c.get(f"{V1}/authorities", params={"code": "DE:COURT-1"})
        assert [a["id"] for a in listed.json()["items"]] == [created["id"]]
        assert listed.json()["revision"] == 1


async def test_lost_update_protection(api: Api) -> None:
    created = await _create(api, "admin-de", "authorities", factories.authority())
    url = f"{V1}/authorities/{created['id']}"
    async with api.client("admin-de") as first, api.client("operator") as second:
        tag_a = (await first.get(url)).headers["etag"]
        tag_b = (await second.get(url)).headers["etag"]
        body_a = factories.authority(names={"de": "Fassung A", "en": "Version A"})
        body_b = factories.authority(names={"de": "Fassung B"}, languages=["de"])
        results = await asyncio.gather(
            first.put(url, json=body_a, headers={"If-Match": tag_a}),
            second.put(url, json=body_b, headers={"If-Match": tag_b}),
        )
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200, 412]
        winner = next(r for r in results if r.status_code == 200).json()
        loser = next(r for r in results if r.status_code == 412)
        assert loser.headers["content-type"] == "application/problem+json"
        stored = (await first.get(url)).json()
    assert stored == winner
    assert stored["names"] in (body_a["names"], body_b["names"])
    assert (
        stored["languages"]
        == (body_a if stored["names"] == body_a["names"] else body_b)["languages"]
    )
    assert stored["version"] == 2


async def test_writes_need_if_match(api: Api) -> None:
    created = await _create(api, "admin-de", "authorities", factories.authority())
    url = f"{V1}/authorities/{created['id']}"
    async with api.client("admin-de") as c:
        missing = await c.put(url, json=factories.authority())
        assert missing.status_code == 428
        stale = await c.delete(url, headers={"If-Match": '"7"'})
        assert stale.status_code == 412
        assert (await c.get(url)).json()["version"] == 1
        gone = await c.delete(url, headers={"If-Match": '"1"'})
        assert gone.status_code == 204
        assert (await c.get(url)).status_code == 404
        history = (await c.get(f"{url}/history")).json()["items"]
    assert [h["operation"] for h in history] == ["delete", "create"]


async def test_idempotency_key_returns_the_first_result(api: Api) -> None:
    await _create(api, "admin-de", "authorities", factories.authority())
    body = factories.criterion()
    del body["ref"]  # without a natural key, only the idempotency key prevents duplicates
    async with api.client("admin-de") as c:
        headers = {"Idempotency-Key": "order-1"}
        sequential = [await c.post(f"{V1}/jurisdiction-criteria", json=body, headers=headers)
                      for _ in range(3)]  # fmt: skip
        concurrent = await asyncio.gather(*(
            c.post(f"{V1}/jurisdiction-criteria", json=body, headers={"Idempotency-Key": "order-2"})
            for _ in range(3)
        ))  # fmt: skip
        other = await c.post(f"{V1}/jurisdiction-criteria", json=body | {"priority": 1},
                             headers={"Idempotency-Key": "order-1"})  # fmt: skip
        listed = (await c.get(f"{V1}/jurisdiction-criteria")).json()["items"]
    assert {r.status_code for r in [*sequential, *concurrent]} == {201}
    assert len({r.json()["id"] for r in sequential}) == 1
    assert len({r.json()["id"] for r in concurrent}) == 1
    assert [r.headers.get("idempotent-replayed") for r in sequential] == [None, "true", "true"]
    assert len(listed) == 2
    assert other.status_code == 422


async def test_point_in_time_reads_and_history(api: Api) -> None:
    created = await _create(api, "admin-de", "authorities", factories.authority())
    url = f"{V1}/authorities/{created['id']}"
    states = [created]
    async with api.client("admin-de") as c:
        for n in (2, 3):
            body = factories.authority(names={"en": f"Name {n}"})
            response = await c.put(url, json=body, headers={"If-Match": f'"{n - 1}"'})
            assert response.status_code == 200
            states.append(response.json())
        for state in states:
            past = await c.get(url, params={"revision": state["revision"]})
            assert past.json() == state
        history = (await c.get(f"{url}/history")).json()["items"]
        assert [h["version"] for h in history] == [3, 2, 1]
        assert [h["document"] for h in history] == list(reversed(states))
        assert {h["actor"] for h in history} == {"admin-de"}
        assert (await c.get(url, params={"revision": 0})).status_code == 404
        future = await c.get(f"{V1}/authorities", params={"revision": 99})
        assert future.status_code == 422


async def test_owner_scoping_on_every_write_route(api: Api, services: Services) -> None:
    fr = await _create(api, "admin-fr", "authorities",
                       factories.authority(owner="FR", code="FR:COURT-1"))  # fmt: skip
    url = f"{V1}/authorities/{fr['id']}"
    async with api.client("admin-de") as c:
        attempts = [
            await c.post(f"{V1}/authorities", json=factories.authority(owner="FR", code="FR:X")),
            await c.put(url, json=factories.authority(owner="FR", code="FR:COURT-1"),
                        headers={"If-Match": '"1"'}),
            await c.put(url, json=factories.authority(owner="DE", code="DE:TAKEN"),
                        headers={"If-Match": '"1"'}),
            await c.delete(url, headers={"If-Match": '"1"'}),
        ]  # fmt: skip
    assert [a.status_code for a in attempts] == [403, 403, 403, 403]
    assert all(a.headers["content-type"] == "application/problem+json" for a in attempts)
    async with api.client("reader") as c:
        assert (await c.get(url)).json() == fr
        assert (await c.get(f"{V1}/authorities", params={"owner": "FR"})).json()["items"] == [fr]
    # Every attempt is in the trail: at once, or as a count of repeats of the same attempt
    # once its window is written.
    await api.app.state.gate.refusals.flush(services.sessions, everything=True)
    async with services.sessions() as session:
        denied = (
            await session.scalars(select(AuditEvent).where(AuditEvent.outcome == "denied-403"))
        ).all()
    assert sum((e.detail or {}).get("repeated", 1) for e in denied) == 4
    assert {e.target for e in denied} == {f"POST {V1}/authorities", f"PUT {url}", f"DELETE {url}"}


async def test_reader_cannot_write_and_named_persons_stay_hidden(api: Api) -> None:
    member = {"owner": "EJ", "ref": "EJ-DE-NM", "country": "DE", "role": "national-member",
              "contact": {"channel": "email", "value": "de@eurojust.example.eu"},
              "person": {"name": "A. Example"}}  # fmt: skip
    created = await _create(api, "admin-ej", "national-members", member)
    assert created["person"] == {"name": "A. Example", "title": None}
    async with api.client("reader") as c:
        refused = await c.post(f"{V1}/national-members", json=member | {"ref": "other"})
        as_reader = (await c.get(f"{V1}/national-members/{created['id']}")).json()
    assert refused.status_code == 403
    assert "person" not in as_reader


async def test_named_persons_are_hidden_from_readers_on_every_surface(api: Api) -> None:
    """Annex I 5.5: one rule (the kind's private fields, the policy) for entries, pages,
    history, the change feed and extracts; administrators and operators see them."""
    member = {"owner": "EJ", "ref": "EJ-FR-NM", "country": "FR", "role": "national-member",
              "contact": {"channel": "email", "value": "fr@eurojust.example.eu"},
              "person": {"name": "B. Example"}}  # fmt: skip
    created = await _create(api, "admin-ej", "national-members", member)
    url = f"{V1}/national-members/{created['id']}"

    async def surfaces(client: str) -> list[Any]:
        async with api.client(client) as c:
            page = (await c.get(f"{V1}/national-members")).json()["items"]
            history = (await c.get(f"{url}/history")).json()["items"]
            feed = (await c.get(f"{V1}/changes", params={"since": 0})).json()["changes"]
            extract = (await c.get(f"{V1}/extract", params={"kinds": "national-members"})).text
        lines = [json.loads(line) for line in extract.splitlines()[1:-1]]
        return [
            (await _get_json(api, client, url)),
            page[0],
            history[0]["document"],
            feed[0]["document"],
            lines[0]["document"],
        ]

    assert all("person" not in document for document in await surfaces("reader"))
    for client in ("admin-ej", "operator"):
        seen = await surfaces(client)
        assert all(d["person"] == {"name": "B. Example", "title": None} for d in seen), client


async def _get_json(api: Api, client: str, url: str) -> Any:
    async with api.client(client) as c:
        return (await c.get(url)).json()


async def test_if_none_match_lists_weak_tags_and_star(api: Api) -> None:
    created = await _create(api, "admin-de", "authorities", factories.authority())
    url = f"{V1}/authorities/{created['id']}"
    async with api.client("reader") as c:
        for held in ('"1"', 'W/"1"', '"7", "1"', "*"):
            response = await c.get(url, headers={"If-None-Match": held})
            assert response.status_code == 304, held
            assert response.headers["etag"] == '"1"'
        stale = await c.get(url, headers={"If-None-Match": '"2"'})
        assert stale.status_code == 200 and stale.json()["id"] == created["id"]


async def test_referenced_authority_is_409_naming_referrers_unless_cascade(
    api: Api, services: Services
) -> None:
    authority = await _create(api, "admin-de", "authorities", factories.authority())
    criterion = await _create(api, "admin-de", "jurisdiction-criteria", factories.criterion())
    url = f"{V1}/authorities/{authority['id']}"
    async with api.client("admin-de") as c:
        blocked = await c.delete(url, headers={"If-Match": '"1"'})
        assert blocked.status_code == 409
        assert blocked.json()["referrers"] == [
            {"kind": "jurisdiction-criteria", "id": criterion["id"], "key": "crit-1", "owner": "DE"}
        ]
        cascaded = await c.delete(url, params={"cascade": "true"}, headers={"If-Match": '"1"'})
        assert cascaded.status_code == 204
        assert (await c.get(f"{V1}/jurisdiction-criteria/{criterion['id']}")).status_code == 404
        page = await feed.changes_page(services.sessions, feed.FeedQuery(2, 10),
                                       dt.timedelta(days=30))  # fmt: skip
        changes = page["changes"]
    assert {(c["kind"], c["operation"]) for c in changes} == {
        ("jurisdiction-criteria", "delete"),
        ("authorities", "delete"),
    }
    assert {c["revision"] for c in changes} == {3}


async def test_bad_input_is_a_clear_4xx(api: Api) -> None:
    async with api.client("admin-de") as c:
        invalid = await c.post(f"{V1}/authorities", json=factories.authority(kind="tribunal"))
        malformed = await c.post(f"{V1}/authorities", content=b"{oops",
                                 headers={"content-type": "application/json"})  # fmt: skip
        unknown = await c.get(f"{V1}/authorities", params={"onwer": "DE"})
        bad_cursor = await c.get(f"{V1}/authorities", params={"cursor": "garbage"})
        bad_id = await c.get(f"{V1}/authorities/not-a-uuid")
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["loc"] == ["kind"]
    assert malformed.status_code == 400
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["loc"] == ["query", "onwer"]
    assert bad_cursor.status_code == 400
    assert bad_id.status_code in (400, 404)
    for response in (invalid, malformed, unknown, bad_cursor, bad_id):
        assert response.headers["content-type"] == "application/problem+json"


async def test_pagination_walks_10000_entries_once_while_writes_happen(
    api: Api, services: Services
) -> None:
    spec = KINDS["authorities"]
    items = [BatchItem.of(spec, validate(spec, factories.authority(code=f"DE:P{n:05d}")), n)
             for n in range(10_000)]  # fmt: skip
    await services.batches.apply(items, "loader")
    stop = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            doc = validate(spec, factories.authority(code=f"DE:NEW{n}"))
            await services.writes.create(spec, doc, "writer")
            n += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    seen: list[str] = []
    async with api.client("reader") as c:
        params: dict[str, Any] = {"limit": 1000}
        while True:
            page = (await c.get(f"{V1}/authorities", params=params)).json()
            seen += [item["code"] for item in page["items"]]
            if not page["next"]:
                break
            params = {"limit": 1000, "cursor": page["next"]}
    stop.set()
    await task
    assert len(seen) == len(set(seen)) == 10_000
    assert set(seen) == {f"DE:P{n:05d}" for n in range(10_000)}
