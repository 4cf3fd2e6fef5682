"""A mirror whose gazetteer is missing or behind its source's is not ready.

It would resolve postal codes differently from the service (a NUTS-level court on
the service, the central authority on the mirror), so a load balancer must not
send it traffic. The whole path (feed announcement, signed copy) runs in
`test_mirror.py` against a real source.
"""

from __future__ import annotations

from typing import Any, cast

from litestar.testing import TestClient

from cdb_service.lookup.follower import IndexFollower
from cdb_service.lookup.index import CountryPlaces, Gazetteer, LookupIndex
from cdb_service.mirror.follower import Status
from cdb_service.mirror.serving import serving_app


def test_missing_or_behind_gazetteer_is_not_ready() -> None:
    index = LookupIndex(revision=3)
    follower = IndexFollower(sessions=cast(Any, None), index=index)
    status = Status(source_head=3, gazetteer_source="abc")
    with TestClient(serving_app(follower, status)) as client:
        missing = client.get("/health/ready")
        assert missing.status_code == 503
        assert missing.json()["output"] == "no gazetteer"
        index.gazetteer = Gazetteer({"DE": CountryPlaces("d1", None)}, "abc")
        assert client.get("/health/ready").status_code == 200
        status.gazetteer_source = "def"  # the source loaded a new file
        behind = client.get("/health/ready")
        assert behind.status_code == 503 and "behind" in behind.json()["output"]
        assert behind.json()["mirror"]["gazetteer"] == "abc"
        # Source unreachable since the mirror started: its own copy is served.
        status.gazetteer_source = None
        assert client.get("/health/ready").status_code == 200
        index.gazetteer = Gazetteer()
        assert client.get("/health/ready").status_code == 503
