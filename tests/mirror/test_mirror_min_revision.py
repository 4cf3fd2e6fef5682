"""The mirror's resolve routes honour `min_revision` as documented: 200 or 503, never 500.

The mirror mounts the service's own `ResolveController`; the routes ask for the
parts they need by name, and the mirror's app must hold each one (it once held no
`settings` or `reads`, and every `min_revision` was a 500). A mirror cannot tell a
revision its source never wrote from one it has not received yet: a revision it
lacks is waited for, briefly, then answered 503 with Retry-After, never 422.
"""

from __future__ import annotations

from typing import Any, cast

from litestar.testing import TestClient

from cdb_service.lookup.follower import IndexFollower
from cdb_service.lookup.index import CountryPlaces, Gazetteer, LookupIndex
from cdb_service.mirror.follower import Status
from cdb_service.mirror.serving import serving_app

RESOLVE = "/api/v1/resolve?country=DE&instrument=eio&competence=execute"
DESK = "/api/v1/resolve/national-member?country=DE"


def test_min_revision_on_the_mirror_is_answered_200_or_503() -> None:
    # A ready mirror's index at revision 3, with no database behind it: catching up on
    # demand fails, as it does while the mirror's own database is away.
    gazetteer = Gazetteer({"DE": CountryPlaces("d1", None)}, "abc")
    follower = IndexFollower(settings=cast(Any, None), index=LookupIndex(3, gazetteer=gazetteer))
    status = Status(source_head=3, gazetteer_source="abc", settled="caught up")
    app = serving_app(follower, status, wait_s=0.2, retry_after_s=7)
    with TestClient(app) as client:
        for route in (RESOLVE, DESK):
            reached = client.get(f"{route}&min_revision=1")
            assert reached.status_code == 200, reached.text
            assert reached.json()["revision"] == 3
            assert reached.content == client.get(route).content
            behind = client.get(f"{route}&min_revision=4")
            assert behind.status_code == 503, behind.text
            assert behind.headers["retry-after"] == "7"
            assert behind.json()["min_revision"] == 4
        # A bad query is still the client's mistake, named, before any wait.
        wrong = client.get(f"{RESOLVE.replace('country=DE', 'country=XX')}&min_revision=1")
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["loc"] == ["query", "country"]
