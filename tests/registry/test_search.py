"""Search that finds: case and accents folded, across names, addresses and codes; sort; count."""

from __future__ import annotations

from typing import Any

from cdb_service.seeding.load import seed
from cdb_service.services import Services
from tests.support import factories
from tests.support.api import Api, As

V1 = "/api/v1"


async def _codes(c: As, kind: str = "authorities", **params: Any) -> list[str]:
    response = await c.get(f"{V1}/{kind}", params=params)
    assert response.status_code == 200, response.text
    key = "code" if kind == "authorities" else "name"
    return [e[key] for e in response.json()["items"]]


async def test_search_folds_case_and_accents_and_finds_codes(api: Api, services: Services) -> None:
    await seed(services.batches, services.sessions)
    async with api.client("reader") as c:
        # Names only (the codes are ASCII): found through folding alone.
        assert await _codes(c, q="landgericht munchen") == ["DE:COURT-MUNCHEN"]
        assert sorted(await _codes(c, q="munchen i")) == ["DE:COURT-MUNCHEN",
                                                         "DE:PROSECUTION-MUNCHEN"]  # fmt: skip
        assert await _codes(c, q="LANDGERICHT MÜNCHEN") == await _codes(c, q="landgericht munchen")
        both = ["RO:COURT-BUCURESTI", "RO:PROSECUTION-BUCURESTI"]
        assert sorted(await _codes(c, q="tribunalul bucuresti")) == both
        assert sorted(await _codes(c, q="Tribunalul București")) == both
        assert await _codes(c, q="pe langa tribunalul bucuresti") == ["RO:PROSECUTION-BUCURESTI"]
        # A fragment of a code, in any case.
        assert await _codes(c, q="court-karls") == ["DE:COURT-KARLSRUHE"]
        # An address (street) and a name in English.
        assert "FR:CENTRAL-AUTHORITY" in await _codes(c, q="place vendome", owner="FR")
        assert await _codes(c, q="no such court anywhere") == []
        # Routing parties by a party id; wildcards in the query are plain text.
        assert await _codes(c, "routing-parties", q="FR-JUSTICE") == ["fr-justice-ap"]
        assert await _codes(c, q="%") == []


async def test_sort_count_and_a_sorted_walk(api: Api) -> None:
    async with api.client("admin-de") as c:
        for n, name in enumerate(["Zwickau", "Aachen", "Köln", "Bonn", "Essen"]):
            body = factories.authority(code=f"DE:C{n}", names={"de": f"Amtsgericht {name}"})
            assert (await c.post(f"{V1}/authorities", json=body)).status_code == 201
        assert await _codes(c, sort="code") == [f"DE:C{n}" for n in range(5)]
        assert await _codes(c, sort="-code") == [f"DE:C{n}" for n in reversed(range(5))]
        counted = (await c.get(f"{V1}/authorities", params={"q": "amtsgericht", "count": "true",
                                                           "limit": 2})).json()  # fmt: skip
        assert counted["total"] == 5 and len(counted["items"]) == 2
        assert (await c.get(f"{V1}/authorities", params={"q": "koln", "count": "true"})).json()[
            "total"
        ] == 1
        # Without any filter the count is of every entry (it once counted nothing: 1).
        everything = await c.get(f"{V1}/authorities", params={"count": "true", "limit": 1})
        assert everything.json()["total"] == 5
        walked: list[str] = []
        params: dict[str, Any] = {"sort": "-code", "limit": 2}
        while True:
            page = (await c.get(f"{V1}/authorities", params=params)).json()
            walked += [a["code"] for a in page["items"]]
            if not page["next"]:
                break
            params["cursor"] = page["next"]
        assert walked == [f"DE:C{n}" for n in reversed(range(5))]
        other = await c.get(
            f"{V1}/authorities", params={"sort": "code", "cursor": params["cursor"]}
        )
        assert other.status_code == 422  # a cursor of another sort
        wrong = await c.get(f"{V1}/authorities", params={"sort": "kind"})
        assert wrong.status_code == 422 and "sorts by one of" in wrong.text


async def test_search_finds_no_entry_by_a_name_the_caller_may_not_read(api: Api) -> None:
    """Issue 30: `q` with `count=true` was an oracle for named persons (a reader rebuilt a
    hidden name letter by letter). A reader finds a national member by what it sees, never
    by its person; an administrator and an operator, who see the name, find it by it, in
    the current state and as of a revision alike."""
    member = {"owner": "EJ", "ref": "EJ-PL-NM", "country": "PL", "role": "national-member",
              "contact": {"channel": "email", "value": "pl@eurojust.example.eu"},
              "person": {"name": "Grzegorz Brzęczyszczykiewicz",
                         "title": "Prokurator"}}  # fmt: skip
    async with api.client("admin-ej") as c:
        created = await c.post(f"{V1}/national-members", json=member)
    assert created.status_code == 201, created.text
    revision = created.json()["revision"]

    async def found(client: str, q: str, **more: Any) -> tuple[int | None, int]:
        async with api.client(client) as c:
            answer = await c.get(f"{V1}/national-members", params={"q": q, **more})
        assert answer.status_code == 200, answer.text
        return answer.json().get("total"), len(answer.json()["items"])

    for hidden in ("brzeczyszczykiewicz", "Grzegorz B", "g", "prokurator"):
        assert await found("reader", hidden, count="true") == (0, 0), hidden
        assert await found("reader", hidden, revision=revision) == (None, 0), hidden
    # What a reader does see still finds it (the search works; only the name is hidden).
    assert await found("reader", "eurojust.example", count="true") == (1, 1)
    for client in ("admin-ej", "operator"):
        assert await found(client, "brzęczyszczykiewicz", count="true") == (1, 1), client
        assert await found(client, "grzegorz b", revision=revision) == (None, 1), client
        assert await found(client, "eurojust.example", count="true") == (1, 1), client
