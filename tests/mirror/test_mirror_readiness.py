"""A mirror answers no look-up before it knows its copy is the source's.

It would resolve differently from the service: without the gazetteer (a NUTS-level
court on the service, no match on the mirror), with one the source has replaced, or
from the copy it held before a restart while the source moved on. Its `/health/ready`
says so, and every look-up route answers the same condition: 503 `not-ready` with
`Retry-After`, in JSON or XML, never a 200 that a client not looking at readiness would
take for the answer. The whole path against a real source (a restarted mirror polled
from its first moment) runs in `test_mirror_restart.py`.
"""

from __future__ import annotations

from typing import Any, cast

from litestar.testing import TestClient
from lxml import etree

from cdb_service.kernel.problems import NOT_READY
from cdb_service.lookup.follower import IndexFollower
from cdb_service.lookup.index import CountryPlaces, Gazetteer, LookupIndex
from cdb_service.mirror.follower import Status
from cdb_service.mirror.serving import serving_app

LOOKUPS = (
    "/api/v1/resolve?country=DE&instrument=eio&competence=execute&postal_code=10115",
    "/api/v1/resolve/national-member?country=DE",
    "/api/v1/resolve/recipient/DE-NOSUCH",
)


def test_missing_or_behind_gazetteer_is_not_ready() -> None:
    index = LookupIndex(revision=3)
    follower = IndexFollower(settings=cast(Any, None), index=index)
    status = Status(source_head=3, gazetteer_source="abc", settled="caught up")
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


def test_every_lookup_answers_503_with_retry_after_until_the_mirror_is_ready() -> None:
    # A restarted mirror: its old copy loaded (index, gazetteer), the source not yet asked.
    index = LookupIndex(revision=3, gazetteer=Gazetteer({"DE": CountryPlaces("d1", None)}, "abc"))
    follower = IndexFollower(settings=cast(Any, None), index=index)
    status = Status()
    with TestClient(serving_app(follower, status, retry_after_s=4)) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and "caught up" in ready.json()["output"]
        for route in LOOKUPS:
            refused = client.get(route)
            assert refused.status_code == 503, (route, refused.text)
            assert refused.headers["retry-after"] == "4"
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["type"] == NOT_READY.type
            assert refused.json()["retry_after_s"] == 4
            assert "caught up" in refused.json()["detail"]
            # Before any other check: a waiting client is told to wait, not what it asked.
            assert client.get(f"{route}&min_revision=1").status_code == 503
            as_xml = client.get(route, headers={"Accept": "application/xml"})
            assert as_xml.status_code == 503 and as_xml.headers["retry-after"] == "4"
            assert as_xml.headers["content-type"].startswith("application/problem+xml")
            assert etree.fromstring(as_xml.content).findtext("{*}type") == NOT_READY.type

        status.gazetteer_source, status.settled = "abc", "caught up with the source at 3"
        assert client.get("/health/ready").status_code == 200
        answered = client.get(LOOKUPS[0])
        assert answered.status_code == 200 and answered.json()["revision"] == 3
        assert client.get(LOOKUPS[1]).status_code == 200
        assert client.get(LOOKUPS[2]).status_code == 404  # a code it does not know: its answer

        status.gazetteer_source = "def"  # the source replaced its gazetteer: not copied yet
        behind = client.get(LOOKUPS[0])
        assert behind.status_code == 503 and "behind" in behind.json()["detail"]
