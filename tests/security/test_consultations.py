"""Consultations of personal data (issue 31, item 2; Annex I 5.1(d), footnote 1): every read
by an administrator or operator that shows a named person is recorded (who, which entry,
when) in bounded rows, and operators, only they, read the record."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from cdb_service.security.consultations import Consultation, ConsultationLog
from cdb_service.services import Services
from tests.support.api import Api, As

V1 = "/api/v1"
FIXED = dt.datetime(2026, 12, 5, 10, 30, tzinfo=dt.UTC)


def _member(ref: str, person: str | None = "Ada Kowalska") -> dict[str, Any]:
    member: dict[str, Any] = {
        "owner": "EJ", "ref": ref, "country": "PL", "role": "national-member",
        "contact": {"channel": "email", "value": "pl@eurojust.example.eu"},
    }  # fmt: skip
    if person:
        member["person"] = {"name": person, "title": "Prokurator"}
    return member


class Log:
    """The app's log, its timer stopped (the test writes the counts when it chooses) and
    its clock fixed inside one hour (the counts of one window); written and read through
    the test's own sessions."""

    def __init__(self, api: Api, services: Services) -> None:
        self.log: ConsultationLog = api.app.state["consultations"]
        self.log.clock = lambda: FIXED
        self.sessions = services.sessions
        self.retention = self.log.retention

    @classmethod
    async def stopped(cls, api: Api, services: Services) -> Log:
        log = cls(api, services)
        await log.log.stop()
        return log

    @property
    def pending(self) -> int:
        return self.log.pending

    def at(self, instant: dt.datetime) -> None:
        self.log.clock = lambda: instant

    async def flush(self) -> int:
        return await self.log.flush(self.sessions)

    async def purge(self, now: dt.datetime) -> int:
        return await self.log.purge(now, self.sessions)


async def _rows(log: Log) -> list[Consultation]:
    async with log.sessions() as session:
        return list((await session.scalars(select(Consultation).order_by(Consultation.id))).all())


async def _ok(c: As, url: str, **params: Any) -> Any:
    answer = await c.get(url, params=params)
    assert answer.status_code == 200, answer.text
    return answer


async def test_an_administrators_reads_of_a_person_are_recorded_a_readers_are_not(
    api: Api, services: Services
) -> None:
    log = await Log.stopped(api, services)
    async with api.client("admin-ej") as c:
        created = await c.post(f"{V1}/national-members", json=_member("EJ-PL-NM"))
        assert created.status_code == 201, created.text
        entry = created.json()["id"]
        patch = {"If-Match": created.headers["ETag"],
                 "Content-Type": "application/merge-patch+json"}  # fmt: skip
        changed = await c.patch(
            f"{V1}/national-members/{entry}",
            headers=patch,
            json={"person": {"name": "Ada Nowak", "title": "Prokurator"}},
        )
        assert changed.status_code == 200, changed.text
    # A reader sees no person anywhere, and its reads are no consultation.
    async with api.client("reader") as c:
        for url, params in ((f"{V1}/national-members/{entry}", {}),
                            (f"{V1}/national-members", {}),
                            (f"{V1}/national-members/{entry}/history", {}),
                            (f"{V1}/national-members/{entry}/diff", {"from": 1}),
                            (f"{V1}/export", {"owner": "EJ"}),
                            (f"{V1}/changes", {"since": 0})):  # fmt: skip
            answer = await _ok(c, url, **params)
            assert b"Kowalska" not in answer.content and b"Nowak" not in answer.content, url
    await log.flush()
    assert await _rows(log) == [], "a reader's reads are recorded as consultations"

    async with api.client("admin-ej") as c:
        one = await _ok(c, f"{V1}/national-members/{entry}")
        assert one.json()["person"]["name"] == "Ada Nowak"
        await _ok(c, f"{V1}/national-members/{entry}")  # twice: counted, not another row
        await _ok(c, f"{V1}/national-members", revision=created.json()["revision"])
        await _ok(c, f"{V1}/national-members/{entry}/history")
        await _ok(c, f"{V1}/national-members/{entry}/diff", **{"from": 1})
        await _ok(c, f"{V1}/export", owner="EJ", format="csv", kind="national-members")
        await _ok(c, f"{V1}/changes", since=0)
        extract = await _ok(c, f"{V1}/extract", kinds="national-members",
                            headers={"Accept": "application/x-ndjson"})  # fmt: skip
        assert b"Ada Nowak" in extract.content
    await log.flush()
    rows = await _rows(log)
    seen = {(r.action, r.version): r.count for r in rows}
    assert seen == {
        ("entry", 2): 2, ("page", 1): 1, ("history", 1): 1, ("history", 2): 1,
        ("diff", 1): 1, ("diff", 2): 1, ("export", 2): 1, ("changes", 1): 1,
        ("changes", 2): 1, ("extract", 2): 1,
    }  # fmt: skip
    for row in rows:
        assert (row.kind, str(row.entry_id)) == ("national-members", entry)
        assert row.subject == "admin-ej" and row.cert_thumbprint  # who: the certificate too
        assert row.first_at == row.last_at == FIXED
    # An entry without a named person shows none: its reads are no consultation.
    async with api.client("admin-ej") as c:
        bare = await c.post(f"{V1}/national-members", json=_member("EJ-PL-NP", person=None))
        await _ok(c, f"{V1}/national-members/{bare.json()['id']}")
    await log.flush()
    assert len(await _rows(log)) == len(rows)


async def test_operators_read_the_consultations_nobody_else_does(api: Api, services: Services
                                                                ) -> None:  # fmt: skip
    log = await Log.stopped(api, services)
    async with api.client("admin-ej") as c:
        created = await c.post(f"{V1}/national-members", json=_member("EJ-PL-NM"))
        entry = created.json()["id"]
        await _ok(c, f"{V1}/national-members/{entry}")
    async with api.client("operator") as c:
        await _ok(c, f"{V1}/national-members/{entry}/history")
    await log.flush()
    async with api.client("operator") as c:
        answer = await _ok(c, f"{V1}/consultations", entry=entry)
        items = answer.json()["items"]
        assert [(i["subject"], i["action"]) for i in items] == [("admin-ej", "entry"),
                                                               ("operator", "history")]  # fmt: skip
        assert all(i["entry_id"] == entry and i["count"] == 1 for i in items)
        mine = await _ok(c, f"{V1}/consultations", who="admin-ej")
        assert [i["action"] for i in mine.json()["items"]] == ["entry"]
        later = await _ok(c, f"{V1}/consultations",
                          since=(FIXED + dt.timedelta(minutes=1)).isoformat())  # fmt: skip
        assert later.json()["items"] == []
        first = await _ok(c, f"{V1}/consultations", limit=1)
        assert len(first.json()["items"]) == 1 and first.json()["next"]
        rest = await _ok(c, f"{V1}/consultations", limit=1, cursor=first.json()["next"])
        assert rest.json()["items"][0]["subject"] == "operator" and rest.json()["next"] is None
    for client in ("admin-ej", "admin-fr", "reader"):
        async with api.client(client) as c:
            refused = await c.get(f"{V1}/consultations", params={"entry": entry})
        assert refused.status_code == 403, client


async def test_a_large_page_is_counted_in_memory_and_written_in_bounded_rows(
    api: Api, services: Services
) -> None:
    log = await Log.stopped(api, services)
    entries = 40
    async with api.client("operator") as c:
        for n in range(entries):
            made = await c.post(f"{V1}/national-members", json=_member(f"EJ-PL-{n:03}"))
            assert made.status_code == 201, made.text
        for _ in range(3):
            page = await _ok(c, f"{V1}/national-members", limit=1000)
            assert len(page.json()["items"]) == entries
    # The requests wrote nothing: the reads wait, counted, for the writer.
    async with log.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Consultation)) == 0
    assert log.pending == entries
    assert await log.flush() == entries
    rows = await _rows(log)
    # One row per entry, however often the page was read in the hour.
    assert len(rows) == entries and {r.count for r in rows} == {3}
    async with api.client("operator") as c:
        await _ok(c, f"{V1}/national-members", limit=1000)
    await log.flush()
    assert len(await _rows(log)) == entries and {r.count for r in await _rows(log)} == {4}
    # The next hour counts in rows of its own; rows past the retention are deleted.
    log.at(FIXED + dt.timedelta(hours=1))
    async with api.client("operator") as c:
        await _ok(c, f"{V1}/national-members", limit=1000)
    await log.flush()
    assert len(await _rows(log)) == 2 * entries
    assert await log.purge(FIXED + log.retention + dt.timedelta(minutes=1)) == entries
    assert len(await _rows(log)) == entries
