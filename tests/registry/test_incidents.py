"""Incidents (Annex I 6.10): opened, updated and closed, never deleted; the probe's copy."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cdb_service.kernel.problems import Problem
from cdb_service.probe.config import ProbeConfig
from cdb_service.probe.runner import Prober
from cdb_service.probe.store import Recorded, Store
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.security.audit import AuditEvent
from cdb_service.services import Services
from tests.support.api import Api, As

V1 = "/api/v1"
URL = f"{V1}/incidents"
UTC = dt.UTC


def _incident(**changes: Any) -> dict[str, Any]:
    started = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=20)
    body = {
        "owner": "EC", "ref": "inc-1", "component": "cdb",
        "description": "lookups fail with 503",
        "started_at": started.isoformat(),
        "expected_recovery_at": (started + dt.timedelta(hours=2)).isoformat(),
    }  # fmt: skip
    return body | changes


def _at(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _ids(c: As, **params: str) -> list[str]:
    response = await c.get(URL, params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_an_operator_opens_updates_and_closes_an_incident_never_deleting_it(
    api: Api, services: Services
) -> None:
    before = dt.datetime.now(UTC) - dt.timedelta(seconds=1)
    async with api.client("operator") as c:
        created = await c.post(URL, json=_incident())
        assert created.status_code == 201, created.text
        assert created.headers["etag"] == '"1"'
        first = created.json()
        assert created.headers["location"] == f"{URL}/{first['id']}"
        assert (first["status"], first["source"], first["ended_at"]) == ("open", "operator", None)
        # notified_at: the moment the registry published it; detected_at defaults to it.
        notified = _at(first["notified_at"])
        assert before <= notified <= dt.datetime.now(UTC)
        assert first["detected_at"] == first["notified_at"]
        url = f"{URL}/{first['id']}"

        # Server-set fields sent back (or forged) are ignored; detected_at left out is kept.
        forged = _incident(description="still failing", notified_at="2020-01-01T00:00:00Z",
                           status="closed")  # fmt: skip
        updated = await c.put(url, json=forged, headers={"If-Match": '"1"'})
        assert updated.status_code == 200, updated.text
        second = updated.json()
        assert second["version"] == 2 and second["description"] == "still failing"
        assert (second["notified_at"], second["status"]) == (first["notified_at"], "open")
        assert second["detected_at"] == first["detected_at"]

        # The document as read goes back unchanged (a client's read-modify-write).
        later = (_at(second["started_at"]) + dt.timedelta(hours=3)).isoformat()
        moved = await c.put(url, json=second | {"expected_recovery_at": later},
                            headers={"If-Match": '"2"'})  # fmt: skip
        assert moved.status_code == 200, moved.text
        assert _at(moved.json()["expected_recovery_at"]) == _at(later)

        assert await _ids(c, status="open") == [first["id"]]
        assert await _ids(c, status="closed") == []

        # Closing = setting ended_at; status follows.
        ended = dt.datetime.now(UTC).replace(microsecond=0).isoformat()
        closed = await c.put(url, json=moved.json() | {"ended_at": ended},
                             headers={"If-Match": '"3"'})  # fmt: skip
        assert closed.status_code == 200, closed.text
        done = closed.json()
        assert (done["status"], _at(done["ended_at"]), done["version"]) == ("closed", _at(ended), 4)
        assert done["notified_at"] == first["notified_at"]
        assert await _ids(c, status="open") == []
        assert await _ids(c, status="closed") == [first["id"]]
        # The same filter on a past revision reads the stored documents.
        assert await _ids(c, status="open", revision=str(first["revision"])) == [first["id"]]
        assert await _ids(c, status="open", source="operator", component="cdb") == []

        # Never deleted: closed instead.
        refused = await c.delete(url, headers={"If-Match": '"4"'})
        assert refused.status_code == 409
        assert "close it instead" in refused.json()["detail"]
        assert (await c.get(url)).json()["version"] == 4
        assert (await c.put(url, json=done)).status_code == 428
        assert (await c.put(url, json=done, headers={"If-Match": '"3"'})).status_code == 412

        history = (await c.get(f"{url}/history")).json()["items"]
        assert [v["version"] for v in history] == [4, 3, 2, 1]
        assert [v["document"]["status"] for v in history] == ["closed", "open", "open", "open"]

    async with api.client("reader") as c:
        assert await _ids(c) == [first["id"]]
        assert (await c.post(URL, json=_incident(ref="inc-2"))).status_code == 403

    async with services.sessions() as session:
        events = (await session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all()
    writes = [(e.action, e.outcome) for e in events if "incidents" in e.action]
    assert writes == [("create incidents", "ok"), *[("update incidents", "ok")] * 3,
                      ("delete incidents", "rejected-409")]  # fmt: skip


async def test_who_may_open_incidents(api: Api) -> None:
    """Operators for any owner; a state's administrator for its own owner only, never EC."""
    async with api.client("admin-de") as c:
        ec = await c.post(URL, json=_incident())
        assert ec.status_code == 403, ec.text
        national = await c.post(URL, json=_incident(owner="DE", component="connector"))
        assert national.status_code == 201, national.text
    de = national.json()
    async with api.client("admin-fr") as c:
        body = _incident(owner="DE", description="not mine")
        changed = await c.put(f"{URL}/{de['id']}", json=body, headers={"If-Match": '"1"'})
        assert changed.status_code == 403
    async with api.client("operator") as c:
        assert (await c.post(URL, json=_incident())).status_code == 201
        body = _incident(owner="DE", component="connector", description="seen by the operator")
        changed = await c.put(f"{URL}/{de['id']}", json=body, headers={"If-Match": '"1"'})
        assert changed.status_code == 200, changed.text
        assert len(await _ids(c, owner="DE")) == 1
        # The natural key is (owner, ref): the same ref again for the same owner is refused.
        assert (await c.post(URL, json=_incident())).status_code == 409


def _errors(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(Problem) as caught:
        validate(KINDS["incidents"], document)
    assert caught.value.status == 422
    return {".".join(map(str, e.loc)): e.msg for e in caught.value.errors}


def test_validation_names_the_wrong_field() -> None:
    body = _incident()
    start = _at(body["started_at"])
    before = (start - dt.timedelta(minutes=1)).isoformat()
    assert "time zone" in _errors(body | {"started_at": "2027-01-12T20:00:00"})["started_at"]
    assert _errors(body | {"ended_at": before}) == {"ended_at": "must not be before started_at"}
    assert "detected_at" in _errors(body | {"detected_at": before})
    assert _errors(body | {"expected_recovery_at": before}) == {
        "expected_recovery_at": "must be after started_at"
    }
    # Annex I 6.10: an operator's open incident carries the expected recovery time …
    missing = _errors(body | {"expected_recovery_at": None})
    assert "expected recovery time" in missing["expected_recovery_at"]
    # … a closed one need not, nor the probe's (it cannot know).
    validate(KINDS["incidents"], body | {"expected_recovery_at": None, "ended_at": start})
    validate(KINDS["incidents"], body | {"expected_recovery_at": None, "source": "probe"})
    assert "source" in _errors(body | {"source": "robot"})
    assert "owner" in _errors(body | {"owner": "X1"})
    assert "status" not in _errors(body | {"status": "closed", "component": ""})


# --- the probe's copy -----------------------------------------------------------------------


class _SyncOver:
    """The probe's synchronous client calls, made through the in-process async client."""

    def __init__(self, client: As, loop: asyncio.AbstractEventLoop) -> None:
        self.client, self.loop = client, loop

    def _wait(self, call: Coroutine[Any, Any, Any]) -> httpx.Response:
        response: httpx.Response = asyncio.run_coroutine_threadsafe(call, self.loop).result(30)
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._wait(self.client.get(url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._wait(self.client.post(url, **kwargs))

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._wait(self.client.put(url, **kwargs))


async def test_the_probe_opens_and_closes_its_copy_keeping_what_an_operator_added(
    api: Api, tmp_path: Path
) -> None:
    config = ProbeConfig(target="https://cdb.test", store=tmp_path / "probe.sqlite3",
                         incident_token=api.token("operator"))  # fmt: skip
    store = Store(config.store)
    loop = asyncio.get_running_loop()
    try:
        async with api.client("operator") as c:
            prober = Prober(config, store)

            @contextmanager
            def client(timeout: float, tls: Any = None) -> Iterator[_SyncOver]:
                yield _SyncOver(c, loop)

            prober._client = client  # type: ignore[method-assign,assignment]
            started = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=3)
            detected = started + dt.timedelta(seconds=30)
            opened = store.open_incident(started, detected, "outage detected by the probe: connect",
                                         "connect", None)  # fmt: skip
            await asyncio.to_thread(prober._notify_service, opened.id)

            remote_id = store.incident(opened.id).remote_id  # type: ignore[union-attr]
            assert remote_id is not None
            copy = (await c.get(f"{URL}/{remote_id}")).json()
            assert (copy["owner"], copy["source"], copy["status"]) == ("EC", "probe", "open")
            assert copy["component"] == "cdb" and copy["expected_recovery_at"] is None
            assert (_at(copy["started_at"]), _at(copy["detected_at"])) == (started, detected)
            assert _at(copy["notified_at"]) > detected

            # An operator adds the expected recovery time to the probe's copy.
            recovery = (started + dt.timedelta(hours=1)).isoformat()
            edited = await c.put(f"{URL}/{remote_id}",
                                 json=copy | {"expected_recovery_at": recovery},
                                 headers={"If-Match": '"1"'})  # fmt: skip
            assert edited.status_code == 200, edited.text

            # The probe sees the service again: it closes its copy, the operator's edit stays.
            ended = started + dt.timedelta(minutes=2)
            store.close_incident(opened.id, ended)
            await asyncio.to_thread(prober._notify_service, opened.id)
            closed = (await c.get(f"{URL}/{remote_id}")).json()
            assert (closed["status"], _at(closed["ended_at"]), closed["version"]) == (
                "closed", ended, 3,
            )  # fmt: skip
            assert _at(closed["expected_recovery_at"]) == _at(recovery)
            assert store.incident(opened.id).remote_version == 3  # type: ignore[union-attr]

            # A POST whose answer was lost: the next try finds the copy by its ref.
            store.db.execute("UPDATE incidents SET remote_id = NULL, remote_version = NULL")
            await asyncio.to_thread(prober._notify_service, opened.id)
            assert store.incident(opened.id).remote_id == remote_id  # type: ignore[union-attr]
            assert len(await _ids(c)) == 1
    finally:
        store.close()


async def test_an_incident_the_service_refuses_is_queued_and_delivered_later_also_after_a_restart(
    api: Api, tmp_path: Path
) -> None:
    """Never lost: refused (a token without the operator role, then no service at all), the
    incident waits in the probe's store; a probe started again on that store delivers it."""
    path = tmp_path / "probe.sqlite3"
    loop = asyncio.get_running_loop()
    reachable = True

    def prober_with(token: str, store: Store, c: As) -> Prober:
        config = ProbeConfig(target="https://cdb.test", store=path, incident_token=token)
        prober = Prober(config, store)

        @contextmanager
        def client(timeout: float, tls: Any = None) -> Iterator[_SyncOver]:
            if not reachable:
                raise httpx.ConnectError("connection refused")
            yield _SyncOver(c, loop)

        prober._client = client  # type: ignore[method-assign,assignment]
        return prober

    async with api.client("operator") as c:
        store = Store(path)
        try:
            # A reader's token: the service answers 403 to the probe's post.
            prober = prober_with(api.token("reader"), store, c)
            started = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=3)
            opened = store.open_incident(started, started, "outage detected by the probe: connect",
                                         "connect", None)  # fmt: skip
            await asyncio.to_thread(prober._deliver_queued)
            assert [i.id for i in store.undelivered()] == [opened.id]
            assert await _ids(c) == []
            # The service is unreachable, and the outage ends meanwhile: still queued.
            reachable = False
            store.close_incident(opened.id, started + dt.timedelta(minutes=1))
            await asyncio.to_thread(prober._deliver_queued)
            assert [i.id for i in store.undelivered()] == [opened.id]
        finally:
            store.close()

        # The probe is restarted on its store with the right credentials, the service is back.
        reachable = True
        store = Store(path)
        try:
            prober = prober_with(api.token("operator"), store, c)
            # every recorded sample retries the queue (here inline: no `run` loop)
            sample = Recorded(dt.datetime.now(UTC), True, None, None, 5.0, False)
            await asyncio.to_thread(prober._record, sample)
            assert store.undelivered() == []
            [remote] = await _ids(c)
            copy = (await c.get(f"{URL}/{remote}")).json()
            assert copy["status"] == "closed"
            assert _at(copy["ended_at"]) == started + dt.timedelta(minutes=1)
        finally:
            store.close()
