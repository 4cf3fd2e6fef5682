"""A clean stop: what clients see between SIGTERM and the exit, and when nobody answers.

systemd and Kubernetes give the service a fixed time after SIGTERM, then SIGKILL.
Long polls must not hold it (they answer at once with what there is), a request that
still arrives is a 503 problem with `Retry-After`, an import in flight commits whole or
not at all, and the process is gone within seconds. Once it is gone, nginx answers for
it: a 503 problem with `Retry-After` that tells a writer its write may have been
applied (repeat it with the same Idempotency-Key).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest

from cdb_service.registry.formats.ndjson import export_lines
from cdb_service.security.dev import DevPki, token_for
from cdb_service.settings import Settings
from cdb_service.web.draining import Drain, Draining
from tests.support import factories
from tests.support.api import Api
from tests.support.live import live_service, pg_database
from tests.support.nginx import free_port, requires_nginx, running_nginx
from tests.support.service_process import (
    Service,
    executable,
    make_pki,
    service_env,
    stop,
    wait_ready,
)
from tests.support.tls import client_context

PROBLEM = "application/problem+json"
NOT_READY = "https://cdb.judex.europa.eu/problems/not-ready"
BATCH = 2000  # authorities in the import that is in flight at SIGTERM


def _drain(api: Api) -> Drain:
    drain = api.app.state["drain"]
    assert isinstance(drain, Drain)
    return drain


# --- in process: the drain as a client sees it ------------------------------------------


async def test_a_stopping_instance_answers_new_requests_503_with_retry_after(api: Api) -> None:
    async with api.client("admin-de") as client:
        before = await client.get("/api/v1/code-lists/instruments")
        assert before.status_code == 200, before.text
        _drain(api).begin()
        read = await client.get("/api/v1/code-lists/instruments")
        write = await client.post("/api/v1/authorities", json=factories.authority())
        ready = await client.get("/health/ready")
    retry = str(api.settings.retry_after_s)
    for answer in (read, write, ready):
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith(PROBLEM)
        assert answer.headers["retry-after"] == retry
        assert answer.json()["type"] == NOT_READY
        assert answer.json()["reason"] == "stopping"
    # Nothing of the write was done: the client may repeat it at once elsewhere.
    assert write.json()["write"] == "not-applied"
    assert "write" not in read.json()


async def test_a_long_poll_answers_as_soon_as_the_stop_begins(api: Api) -> None:
    drain = _drain(api)
    async with api.client("reader") as client:
        head = (await client.get("/api/v1/changes", params={"since": 0})).json()["head"]
        # The test client holds the event loop while a request runs: the stop begins
        # from another thread, as a signal would interrupt the worker.
        stop = threading.Timer(0.5, drain.begin)
        stop.start()
        asked = time.monotonic()
        answer = await client.get("/api/v1/changes", params={"since": head, "wait": 60})
        answered = time.monotonic()
        stop.join()
    assert answer.status_code == 200, answer.text
    assert answer.json()["changes"] == [] and answer.json()["next"] == head
    assert drain.since is not None and drain.since - asked >= 0.5  # it was waiting
    assert answered - drain.since < 1, f"answered {answered - drain.since:.2f} s after the stop"


async def test_a_request_the_stop_cuts_before_it_answered_is_a_503_problem() -> None:
    """What outlasts the drain budget is cancelled by uvicorn; the client is told to come
    back, and a writer that its write may have been applied, instead of a bare 500."""
    drain = Drain(retry_after_s=7)
    began = asyncio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        began.set()
        await asyncio.sleep(60)

    sent: list[Any] = []

    async def collect(message: Any) -> None:
        sent.append(message)

    for method, write in (("GET", None), ("POST", "may-have-applied")):
        drain.since = None
        sent.clear()
        middleware = Draining(slow, lambda scope: drain)
        scope = {"type": "http", "method": method, "path": "/api/v1/import", "headers": []}
        began.clear()
        request = asyncio.create_task(middleware(scope, None, collect))  # type: ignore[arg-type]
        await began.wait()
        drain.begin()
        request.cancel()
        await request  # the cancellation ends in the answer
        start, body = sent[0], json.loads(sent[1]["body"])
        assert start["status"] == 503
        assert (b"retry-after", b"7") in start["headers"]
        assert body["reason"] == "stopping" and body.get("write") == write


# --- a real process: SIGTERM with work in flight ----------------------------------------


async def _committed(database_url: str) -> tuple[int, int]:
    """How many of the batch's authorities are in the registry, and in how many revisions."""
    connection = await asyncpg.connect(database_url)
    try:
        row = await connection.fetchrow(
            "SELECT count(*), count(DISTINCT revision) FROM authorities WHERE code LIKE 'DE:STOP-%'"
        )
    finally:
        await connection.close()
    assert row is not None
    return int(row[0]), int(row[1])


@pytest.mark.slow
@pytest.mark.serial  # measures how fast polls answer and the process goes: runs alone
def test_sigterm_with_long_polls_an_import_and_an_extract_in_flight(tmp_path: Path) -> None:
    """The Must-show of issue 27 item 5: long polls answer within 1 s, the import commits
    whole or not at all (the registry says which), the process is gone within 10 s."""
    with live_service(tmp_path / "svc") as live:
        with live.client("reader") as reader:
            head = reader.get("/api/v1/changes", params={"since": 0}).json()["head"]
        answered: dict[str, tuple[float, int | str]] = {}

        def long_poll(n: int) -> None:
            with live.client("reader", timeout=90) as client:
                try:
                    got = client.get("/api/v1/changes", params={"since": head, "wait": 60})
                    answered[f"poll-{n}"] = (time.monotonic(), got.status_code)
                except httpx.TransportError as error:
                    answered[f"poll-{n}"] = (time.monotonic(), repr(error))

        lines = export_lines([("authorities", factories.authority(code=f"DE:STOP-{n:05d}"))
                              for n in range(BATCH)])  # fmt: skip
        batch = "".join(line + "\n" for line in lines)

        def import_batch() -> None:
            with live.client("admin-de", timeout=90) as client:
                try:
                    got = client.post("/api/v1/import", content=batch,
                                      headers={"content-type": "application/x-ndjson"})  # fmt: skip
                    answered["import"] = (time.monotonic(), got.status_code)
                except httpx.TransportError as error:
                    answered["import"] = (time.monotonic(), repr(error))

        extract: list[str] = []

        def read_extract(started: threading.Event) -> None:
            with live.client("reader", timeout=90) as client:
                try:
                    with client.stream("GET", "/api/v1/extract") as got:
                        for line in got.iter_lines():
                            extract.append(line)
                            started.set()
                    answered["extract"] = (time.monotonic(), got.status_code)
                except httpx.TransportError as error:
                    answered["extract"] = (time.monotonic(), repr(error))
                finally:
                    started.set()

        polls = [threading.Thread(target=long_poll, args=(n,)) for n in range(3)]
        for thread in polls:
            thread.start()
        time.sleep(1.0)  # the polls are waiting
        extract_started = threading.Event()
        workers = [threading.Thread(target=import_batch),
                   threading.Thread(target=read_extract, args=(extract_started,))]  # fmt: skip
        for thread in workers:
            thread.start()
        assert extract_started.wait(30), "the extract never began"
        time.sleep(0.2)  # the import's body is in, its validation under way
        assert not [k for k in answered if k.startswith("poll")], answered

        sent = time.monotonic()
        live.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):  # said below, with the log
            live.process.wait(timeout=30)
        gone = time.monotonic() - sent
        for thread in [*polls, *workers]:
            thread.join(timeout=30)

        log = (live.root / "serve.log").read_text(errors="replace")[-3000:]
        assert gone < 10, f"the process took {gone:.1f} s to exit:\n{log}"
        for n in range(3):
            at, status = answered[f"poll-{n}"]
            assert status == 200, (status, log)
            assert at - sent < 1, f"a long poll answered {at - sent:.2f} s after SIGTERM"

        # The import was in flight: it answered (or was cut) after SIGTERM.
        assert answered["import"][0] > sent, "the import ended before SIGTERM: enlarge BATCH"
        # The import: all of it in one revision, or none of it; acknowledged means all.
        count, revisions = asyncio.run(_committed(live.database_url))
        assert (count, revisions) in ((0, 0), (BATCH, 1)), (count, revisions)
        if answered["import"][1] == 200:
            assert count == BATCH

        # The extract in flight was finished, not cut: its trailer counts its lines.
        assert answered["extract"][1] == 200, answered["extract"]
        trailer = json.loads(extract[-1])
        assert trailer["type"] == "trailer" and trailer["count"] == len(extract) - 2


@pytest.mark.slow
@pytest.mark.serial  # measures how fast the process goes: runs alone
def test_an_import_that_outlasts_the_drain_budget_is_cut_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """With a 1 s budget, a large import still validating at SIGTERM is cancelled: the
    registry holds all of it or none of it, the answer says which it may be, and the
    process is gone within the budget and seconds."""
    size = 3 * BATCH
    lines = export_lines([("authorities", factories.authority(code=f"DE:STOP-{n:05d}"))
                          for n in range(size)])  # fmt: skip
    batch = "".join(line + "\n" for line in lines)
    with live_service(tmp_path / "svc", CDB_DRAIN_BUDGET_S="1") as live:
        outcome: list[httpx.Response | Exception] = []

        def import_batch() -> None:
            with live.client("admin-de", timeout=90) as client:
                try:
                    ndjson = {"content-type": "application/x-ndjson"}
                    outcome.append(client.post("/api/v1/import", content=batch, headers=ndjson))
                except httpx.TransportError as error:
                    outcome.append(error)

        thread = threading.Thread(target=import_batch)
        thread.start()
        time.sleep(0.5)  # sent, and being validated
        sent = time.monotonic()
        live.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            live.process.wait(timeout=30)
        gone = time.monotonic() - sent
        thread.join(timeout=30)
        assert gone < 10, f"the process took {gone:.1f} s to exit"
        count, revisions = asyncio.run(_committed(live.database_url))
        (answer,) = outcome
        if isinstance(answer, httpx.Response) and answer.status_code == 200:
            assert (count, revisions) == (size, 1)  # it finished inside the budget
        else:
            # Cut: told to come back, and that the write may have been applied (the cut can
            # fall between the commit and the answer), or the connection closed. Either way
            # the import is whole or absent: never a part of it.
            if isinstance(answer, httpx.Response):
                assert answer.status_code == 503 and answer.headers["retry-after"], answer.text
                assert answer.json()["write"] == "may-have-applied", answer.text
            assert (count, revisions) in {(0, 0), (size, 1)}


# --- nginx, when the service is gone ------------------------------------------------------


@requires_nginx
@pytest.mark.slow
def test_nginx_answers_for_a_stopped_service_with_retry_after_and_the_write_s_fate(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path / "pki", ("reader",))
    stopped = tmp_path / "run" / "cdb.sock"  # where the service listened; nobody does now
    with running_nginx(tmp_path / "nginx", upstream=f"unix:{stopped}", cert=pki.server_cert,
                       key=pki.server_key) as nginx:  # fmt: skip
        tls = client_context(pki.ca, pki.cert("reader"), pki.key("reader"))
        with httpx.Client(base_url=nginx.base_url, verify=tls, timeout=10) as client:
            read = client.get("/api/v1/code-lists/instruments")
            write = client.post("/api/v1/authorities", json=factories.authority(),
                                headers={"Idempotency-Key": "stop-1"})  # fmt: skip
    # The service's own default, so that clients see one figure whoever answers.
    retry = str(Settings.model_fields["retry_after_s"].default)
    bodies: list[dict[str, Any]] = []
    for answer in (read, write):
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert answer.headers["retry-after"] == retry
        assert answer.headers["x-request-id"]
        body = answer.json()
        assert body["status"] == 503 and body["retry_after_s"] == int(retry)
        bodies.append(body)
    read_body, write_body = bodies
    # The member and value the service uses for a fault during a commit (web/error_handlers).
    assert write_body["write"] == "may-have-applied"
    assert "Idempotency-Key" in write_body["detail"]
    assert "write" not in read_body


# --- several workers, as the systemd unit runs them -------------------------------------


@pytest.mark.slow
@pytest.mark.serial  # measures how fast polls answer and the processes go: runs alone
def test_sigterm_to_a_multi_worker_service_answers_its_long_polls_and_exits(
    tmp_path: Path,
) -> None:
    """`serve --workers 2` behind its Unix socket, as in deploy/systemd: SIGTERM to the
    supervisor reaches every worker, each answers its long polls within 1 s, and the
    whole service is gone within 10 s (it waited 57.6 s for idle polls before)."""
    data, port = tmp_path / "var", free_port()
    with pg_database() as url:
        env = service_env(data, port, CDB_DATABASE_URL=url, CDB_TLS_MODE="proxy",
                          CDB_AUTO_SEED="false")  # fmt: skip
        # Migrated first: two workers on a fresh database would both try.
        subprocess.run([executable(), "migrate"], env=env, check=True, capture_output=True)
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen([executable(), "serve", "--workers", "2"], env=env,
                                       stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            waitable = Service(process, port, data, log, "http")
            wait_ready(waitable, False)
            pki = DevPki(data / "pki")
            token = token_for(pki, "reader", Settings(port=port).dev_issuer_url(), "cdb-api",
                              "cdb_owner")  # fmt: skip
            # What nginx sends on the socket: the certificate header, and the token.
            certificate = quote(pki.client_cert("reader").read_text(), safe="")
            headers = {"Authorization": f"Bearer {token}", "X-SSL-Client-Cert": certificate}
            answered: dict[int, tuple[float, int | str]] = {}

            def long_poll(n: int) -> None:
                transport = httpx.HTTPTransport(uds=str(data / "cdb.sock"))
                with httpx.Client(transport=transport, base_url="http://cdb", headers=headers,
                                  timeout=90) as client:  # fmt: skip
                    try:
                        got = client.get("/api/v1/changes", params={"since": 0, "wait": 60})
                        answered[n] = (time.monotonic(), got.status_code)
                    except httpx.TransportError as error:
                        answered[n] = (time.monotonic(), repr(error))

            polls = [threading.Thread(target=long_poll, args=(n,)) for n in range(6)]
            for thread in polls:
                thread.start()
            time.sleep(2.0)  # every poll is waiting, in one worker or the other
            assert not answered, answered
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            gone = time.monotonic() - sent
            for thread in polls:
                thread.join(timeout=30)
            tail = log.read_text(errors="replace")[-3000:]
            assert gone < 10, f"the service took {gone:.1f} s to exit:\n{tail}"
            assert sorted(answered) == list(range(6)), answered
            for at, status in answered.values():
                assert status == 200, (status, tail)
                assert at - sent < 1, f"a long poll answered {at - sent:.2f} s after SIGTERM"
        finally:
            stop(process)
