"""A mirror never answers before it knows: from the first moment it accepts connections,
every look-up is 503 with Retry-After until it is ready, and its first 200 is the
service's answer (same matches, same revision).

A real source service and a real `cdb-service mirror --serve` process, polled as fast as
it answers, twice: started fresh (it once answered 200 with no match for about 11 s, its
gazetteer not yet copied, while its readiness said 503), and restarted after the source
took a write that changes the answer (it once answered at once from the copy it held).
Restarted while the source is down, it serves the copy it holds, once it knows it
cannot reach the source.
The query is one the service routes to a court, so an answer too early differs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cdb_service.kernel.problems import NOT_READY
from tests.mirror.test_mirror import Source, Writer, _mirror, serving_source
from tests.support.nginx import free_port
from tests.support.service_process import stop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    with serving_source(tmp_path_factory.mktemp("source")) as served:
        yield served


def _first_answers(port: int, query: dict[str, str], log: Path, timeout: float = 90) -> tuple[
    list[httpx.Response], httpx.Response
]:  # fmt: skip
    """Every answer of the mirror's /resolve from its first accepted connection to its first
    200: (the ones before, the 200)."""
    before: list[httpx.Response] = []
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as local:
        while time.monotonic() < deadline:
            try:
                response = local.get("/api/v1/resolve", params=query)
            except httpx.TransportError:  # not listening yet
                time.sleep(0.01)
                continue
            if response.status_code == 200:
                return before, response
            before.append(response)
            time.sleep(0.01)
    tail = log.read_text(errors="replace")[-3000:]
    raise AssertionError(f"no 200 from the mirror in {timeout} s; {len(before)} others\n{tail}")


def _assert_not_ready(answers: list[httpx.Response]) -> None:
    for response in answers:
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) > 0
        assert response.json()["type"] == NOT_READY.type


def _assert_same(mine: httpx.Response, central: httpx.Client, query: dict[str, str]) -> Any:
    theirs = central.get("/api/v1/resolve", params=query)
    assert theirs.status_code == 200, theirs.text
    assert theirs.json()["matches"], "the query must be one the service routes somewhere"
    assert theirs.headers["etag"] == central.get("/api/v1/resolve", params=query).headers["etag"]
    assert mine.json() == theirs.json(), (mine.json(), theirs.json())
    assert mine.headers["etag"] == theirs.headers["etag"]
    return theirs.json()


def test_a_started_or_restarted_mirror_answers_503_until_ready_then_as_the_service(
    source: Source, tmp_path: Path
) -> None:
    writer = Writer.of(source)
    port, log = free_port(), tmp_path / "mirror.log"
    # Bonn: the service routes it to a court by its NUTS 3 region, through the gazetteer.
    code = "53111"
    writer.postal_codes = [code]  # what the source is given below is for it too
    query = {"country": "DE", "instrument": "eio", "competence": "execute", "postal_code": code}
    mirror = _mirror(source, tmp_path, port, delay=0)
    try:
        with source.client("reader") as central:
            # Fresh: an extract to take and a gazetteer to copy before any answer.
            before, first = _first_answers(port, query, log)
            _assert_not_ready(before)
            answer = _assert_same(first, central, query)
            assert answer["matches"][0]["matched_by"]["scheme"] == "nuts3"

            stop(mirror)
            writer.create()  # a criterion for that very postal code: the answer changes
            head = writer.head()
            # Restarted, with a pause after each applied revision: its old copy is loaded
            # at once, and it must not be served while the new revision is on its way.
            mirror = _mirror(source, tmp_path, port, delay=1.0)
            before, first = _first_answers(port, query, log)
            assert before, "the restarted mirror answered 200 before it caught up"
            _assert_not_ready(before)
            answer = _assert_same(first, central, query)
            assert answer["revision"] == head
            assert any(m["criterion"]["ref"] == "MIRROR-0" for m in answer["matches"])
            ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
            assert ready.status_code == 200, ready.text
            assert ready.json()["mirror"]["extracts"] == 0  # resumed, not re-extracted

        # Restarted while the source is down: it cannot catch up, and serves the whole copy
        # it holds (the local fallback), saying so, rather than nothing.
        stop(mirror)
        source.process.kill()
        source.process.wait(timeout=10)
        mirror = _mirror(source, tmp_path, port, delay=0)
        before, first = _first_answers(port, query, log)
        _assert_not_ready(before)
        assert first.json() == answer
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
        assert "unreachable" in ready.json()["mirror"]["settled"]
    finally:
        writer.http.close()
        stop(mirror)
