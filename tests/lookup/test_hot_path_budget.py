"""A fast check that `/resolve` stays on its fast path and cheap: work counted, not timed.

The work is counted in Python function calls, which a busy machine does not change:
one resolve through the whole app (perimeter, gate, fast path, look-up, answer), and a
thousand computed answers in the resolver, over an index with ten thousand keys.

The plain resolve must be answered by the fast path (`lookup/fast.py`), never by the
framework's route: the test sees that the route's handler was not entered, and its
budget lies between what the fast path costs and what the route costs, so a plain
resolve that falls through to the route exceeds it. A change that needs more says why
here. Throughput itself is measured by `make bench`, not by a test.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from cdb_service.lookup import resolver
from cdb_service.lookup.index import Criterion, Entry, LookupIndex, geo_key
from cdb_service.lookup.resolver import Query
from cdb_service.services import Services
from tests.lookup.test_resolve import RESOLVE, _authority, _criterion, _resolve, _scenario
from tests.support.api import Api

# Today (counted in the files below): 98 calls for a remembered answer through the app's fast
# path, 229 for the same request through the framework's route (the fast path disabled),
# 26 per computed answer. The request's budget is the fast path's with room, well short
# of the route's.
BUDGET = {"request": 140, "resolve": 100}
# The code a request runs (not the test client's, nor the follower's database polls).
COUNTED = (
    "/cdb_service/web/",
    "/cdb_service/security/",
    "/cdb_service/lookup/fast",
    "/cdb_service/lookup/controller",
    "/cdb_service/lookup/query",
    "/cdb_service/lookup/deps",
    "/cdb_service/lookup/resolver",
    "/litestar/",
)


# The framework's route for a request and the resolve handler it calls.
ROUTE = ("/litestar/routes/http.py", "/cdb_service/lookup/controller")


class _Calls:
    """A profile hook counting calls into the COUNTED code."""

    def __init__(self) -> None:
        self.count = 0
        self.route_entered = False

    def __call__(self, frame: FrameType, event: str, _: Any) -> None:
        if event == "call" and any(part in frame.f_code.co_filename for part in COUNTED):
            self.count += 1
            if any(part in frame.f_code.co_filename for part in ROUTE):
                self.route_entered = True


def calls(work: Callable[[], Any]) -> tuple[int, Any]:
    counter = _Calls()
    sys.setprofile(counter)
    try:
        result = work()
    finally:
        sys.setprofile(None)
    return counter.count, result


def counting(api: Api) -> list[_Calls]:
    """Count the calls of each request the app serves from now on, in the thread that
    serves it (the test client runs the app in its own); the counts are returned."""
    counts: list[_Calls] = []
    handler = api.app.asgi_handler

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        counter = _Calls()
        sys.setprofile(counter)
        try:
            await handler(scope, receive, send)
        finally:
            sys.setprofile(None)
            counts.append(counter)

    api.app.asgi_handler = counted
    return counts


async def test_one_resolve_through_the_app_stays_within_its_budget(
    api: Api, services: Services
) -> None:
    await _scenario(services)
    await _authority(services, "DE:PC")
    await _criterion(services, "c-pc", "DE:PC", [("postal-code", "10115")])
    await _resolve(api, services, postal_code="10115")  # the index has caught up
    params = {"country": "DE", "instrument": "eio", "competence": "execute",
              "postal_code": "10115"}  # fmt: skip
    async with api.client("reader") as c:
        # Uncompressed, as a connector without gzip asks: the plain case the fast path takes.
        plain = {"accept-encoding": "identity"}
        await c.get(RESOLVE, params=params, headers=plain)  # warm: token, answer cache
        counts = counting(api)
        response = await c.get(RESOLVE, params=params, headers=plain)
        # `min_revision` is not the plain case: the route answers it, and is seen to.
        routed = await c.get(RESOLVE, params=params | {"min_revision": "0"}, headers=plain)
    assert response.status_code == 200 and response.json()["matches"], response.text
    assert routed.status_code == 200 and routed.content == response.content
    fast, route = counts
    assert not fast.route_entered, "the plain /resolve was answered by the framework's route"
    assert fast.count <= BUDGET["request"], f"{fast.count} calls for one cached /resolve"
    assert route.route_entered and route.count > BUDGET["request"], route.count


def _index(keys: int) -> LookupIndex:
    index = LookupIndex(revision=1)
    party_id = "00000000-0000-0000-0000-00000000aaaa"
    index.apply("routing-parties", _uuid(party_id), {
        "id": party_id, "owner": "DE", "name": "de-ap", "identifiers": [{"party_id": "de-ap",
        "party_id_type": "urn:oasis:names:tc:ebcore:partyid-type:unregistered"}],
        "roles": ["responder"], "services": [], "endpoint_url": "https://de-ap.example.eu/msh",
        "certificates": [],
    })  # fmt: skip
    for n in range(10):
        authority_id = f"00000000-0000-0000-0000-{n:012d}"
        index.apply("authorities", _uuid(authority_id), {
            "id": authority_id, "code": f"DE:A{n}", "kind": "court", "owner": "DE",
            "names": {"en": f"A{n}"}, "routing_party_id": party_id,
        })  # fmt: skip
        per = keys // 10
        codes = [f"{n * per + k:05d}" for k in range(per)]
        document = {"id": f"00000000-0000-0000-0001-{n:012d}", "authority_id": authority_id,
                    "instrument": "eio", "competence": "execute", "priority": n}  # fmt: skip
        index.put_criterion(Criterion(document, [geo_key("DE", "postal-code", c) for c in codes]))
    return index


def _uuid(text: str) -> Any:
    import uuid

    return uuid.UUID(text)


def test_a_thousand_computed_answers_stay_within_their_budget() -> None:
    index = _index(10_000)
    queries = [Query("DE", "eio", "execute", _today(), postal_code=f"{n * 7:05d}")
               for n in range(1000)]  # fmt: skip
    counted, answers = calls(lambda: [resolver.resolve(index, q) for q in queries])
    assert all(a["matches"] for a in answers)
    per_answer = counted / len(queries)
    assert per_answer <= BUDGET["resolve"], f"{per_answer:.0f} calls per computed answer"
    # Entries are looked up, not copied: the index keeps one object per entry.
    assert all(isinstance(e, Entry) for e in index.authorities.values())


def _today() -> Any:
    from cdb_service.kernel.calendar import today

    return today()


async def test_the_fast_path_answers_as_the_handler_does(api: Api, services: Services) -> None:
    """`min_revision` sends a request through the framework's route: same answer."""
    await _scenario(services)
    await _authority(services, "DE:PC")
    await _criterion(services, "c-pc", "DE:PC", [("postal-code", "10115")])
    await _resolve(api, services, postal_code="10115")
    params = {"country": "DE", "instrument": "eio", "competence": "execute",
              "postal_code": "10115"}  # fmt: skip
    plain = {"accept-encoding": "identity"}

    def same(a: Any, b: Any) -> None:
        assert (a.status_code, a.content) == (b.status_code, b.content)
        drop = {"x-request-id"}
        assert {k: v for k, v in a.headers.items() if k not in drop} == {
            k: v for k, v in b.headers.items() if k not in drop
        }

    async with api.client("reader") as c:
        fast = await c.get(RESOLVE, params=params, headers=plain)
        framework = await c.get(RESOLVE, params=params | {"min_revision": "0"}, headers=plain)
        same(fast, framework)
        tag = {"if-none-match": fast.headers["etag"]} | plain
        same(await c.get(RESOLVE, params=params, headers=tag),
             await c.get(RESOLVE, params=params | {"min_revision": "0"}, headers=tag))  # fmt: skip
        # What the fast path declines, the handler answers as before.
        wrong = await c.get(RESOLVE, params=params | {"country": "XX"}, headers=plain)
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["loc"] == ["query", "country"]
        bad_date = await c.get(RESOLVE, params=params | {"date": "tomorrow"}, headers=plain)
        assert bad_date.status_code == 400
