"""Scheduled acknowledgements (issue 28, "the rollout shows 2/2 confirmed before
use_from"): an agent that holds the next package, verified, to apply at its
effective_from says so (`scheduled_for`); the rollout of the certificate switching into
use counts that target as confirmed while the switch is ahead, so the gauge and the
alert stay quiet for an access point that will switch on time. A package scheduled
later than the change does not confirm it. The applied acknowledgement of the same
digest and target upgrades the scheduled row; a scheduled one after it changes
nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prometheus_client import REGISTRY

from cdb_service.distribution.rollouts import RolloutWatch
from cdb_service.services import Services
from tests.distribution.test_rollouts import factories_sha
from tests.support import factories
from tests.support.api import Api, As

V1 = "/api/v1"
ACKS = f"{V1}/access-points/fr-ap/acknowledgements"


def _ack(digest: str, kind: str, name: str, scheduled_for: dt.datetime | None = None,
         answer: Any = "ok") -> dict[str, Any]:  # fmt: skip
    body = {"package_digest": digest, "target": {"kind": kind, "name": name},
            "applied_at": dt.datetime.now(dt.UTC).isoformat(), "answer": answer}  # fmt: skip
    if scheduled_for is not None:
        body["scheduled_for"] = scheduled_for.isoformat()
    return body


async def _digest(client: As, party: str, at: dt.datetime) -> str:
    got = await client.get(f"{V1}/packages/{party}", params={"at": at.isoformat()})
    assert got.status_code == 200, got.text
    return str(got.headers["CDB-Package-Digest"])


async def _switch(client: As, sha256: str) -> dict[str, Any]:
    """The rollout row of the certificate `sha256` switching into use."""
    got = await client.get(f"{V1}/rollouts")
    assert got.status_code == 200, got.text
    return next(r for r in got.json()["items"] if r["kind"] == "certificate"
                and r["certificate"]["sha256"] == sha256 and "used" in r["changes"])  # fmt: skip


async def _posted(client: As, body: dict[str, Any], status: int) -> dict[str, Any]:
    got = await client.post(ACKS, json=body)
    assert got.status_code == status, got.text
    return dict(got.json())


async def _fr_party(fr: As, use_from: dt.datetime, accept_until: dt.datetime) -> str:
    """fr-ap: its old encryption certificate accepted until `accept_until`, a new one
    accepted now and used from `use_from`; the new one's SHA-256."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    old = factories.certificate_pem(60, "fr-ap-2026")
    new = factories.certificate_pem(400, "fr-ap-2027")
    made = await fr.post(f"{V1}/routing-parties", json=factories.routing_party(
        owner="FR", name="fr-ap", certificates=[
            {"use": "encryption", "pem": old, "accept_until": accept_until.isoformat()},
            {"use": "encryption", "pem": new, "accept_from": now.isoformat(),
             "use_from": use_from.isoformat()},
        ]))  # fmt: skip
    assert made.status_code == 201, made.text
    return factories_sha(new)


async def test_a_scheduled_target_counts_until_it_applies_and_a_later_schedule_does_not(
    api: Api, services: Services
) -> None:
    """The switch is an hour ahead; the old certificate is accepted for two. The Domibus
    agent holds the package as of use_from, scheduled for use_from: scheduled, and the
    gauge counts only the connector 4.x directory, which holds the package of the old
    certificate's end (it carries the switch too, but would switch an hour late): stale,
    and named by the quality report. Once it holds the right one: 2/2, gauge 0. The
    Domibus agent applies: its line is confirmed, one row, no longer scheduled."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    use_from, accept_until = now + dt.timedelta(hours=1), now + dt.timedelta(hours=2)
    async with api.client("admin-fr") as fr:
        sha = await _fr_party(fr, use_from, accept_until)
        at_use = await _digest(fr, "fr-ap", use_from)
        at_end = await _digest(fr, "fr-ap", accept_until)
        assert len({at_use, at_end}) == 2

        await _posted(fr, _ack(at_use, "domibus", "gw-1", use_from), 201)
        await _posted(fr, _ack(at_end, "connector4-dir", "c4", accept_until), 201)
        row = await _switch(fr, sha)
        lines = {a["target"]["name"]: a for a in row["access_points"]}
        assert lines["gw-1"]["state"] == "scheduled"
        assert lines["gw-1"]["scheduled_for"] == use_from.isoformat()
        assert lines["gw-1"]["applied_at"] is None
        assert lines["c4"]["state"] == "stale", "scheduled an hour after the switch"
        assert (row["confirmed"], row["scheduled"], row["access_points_total"]) == (1, 1, 2)

        watch = RolloutWatch(services.sessions, 60, 2)
        await watch.refresh()
        labels = {"owner": "FR", "party": "fr-ap", "use": "encryption",
                  "certificate": sha[:16]}  # fmt: skip
        assert REGISTRY.get_sample_value("cdb_rollout_unconfirmed_access_points", labels) == 1
        quality = await fr.get(f"{V1}/quality")
        assert quality.status_code == 200, quality.text
        found = [f["detail"] for f in quality.json()["findings"]
                 if f["rule"] == "rollout-unconfirmed"]  # fmt: skip
        assert [(d["state"], d["rollout"]) for d in found] == [("stale", row["id"])]

        await _posted(fr, _ack(at_use, "connector4-dir", "c4", use_from), 201)
        row = await _switch(fr, sha)
        assert (row["confirmed"], row["scheduled"], row["access_points_total"]) == (2, 2, 2)
        await watch.refresh()
        assert REGISTRY.get_sample_value("cdb_rollout_unconfirmed_access_points", labels) == 0
        quality = await fr.get(f"{V1}/quality")
        assert not [f for f in quality.json()["findings"] if f["rule"] == "rollout-unconfirmed"]

        applied = await _posted(fr, _ack(at_use, "domibus", "gw-1", answer={"id": 8}), 200)
        assert applied["scheduled_for"] is None and applied["answer"] == {"id": 8}
        row = await _switch(fr, sha)
        states = {a["target"]["name"]: a["state"] for a in row["access_points"]}
        assert states == {"gw-1": "confirmed", "c4": "scheduled"}
        assert (row["confirmed"], row["scheduled"]) == (2, 1)


async def test_an_applied_acknowledgement_upgrades_the_scheduled_one_and_not_back(
    api: Api,
) -> None:
    """Schedule, then apply: one row, now applied, with the applied one's applied_at and
    answer. A scheduled acknowledgement of a digest already applied changes nothing."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    async with api.client("admin-fr") as fr:
        await _fr_party(fr, now + dt.timedelta(hours=1), now + dt.timedelta(hours=2))
        due = now + dt.timedelta(hours=1)
        scheduled = await _posted(fr, _ack("d" * 64, "domibus", "gw-1", due, "held"), 201)
        assert scheduled["scheduled_for"] == due.isoformat()
        again = await _posted(fr, _ack("d" * 64, "domibus", "gw-1", due, "held again"), 200)
        assert again == scheduled

        body = _ack("d" * 64, "domibus", "gw-1", answer={"id": 9})
        applied = await _posted(fr, body, 200)
        assert applied["id"] == scheduled["id"] and applied["scheduled_for"] is None
        assert applied["answer"] == {"id": 9}
        assert dt.datetime.fromisoformat(applied["applied_at"]) == dt.datetime.fromisoformat(
            body["applied_at"])  # fmt: skip
        assert applied["received_at"] >= scheduled["received_at"]

        late = await _posted(fr, _ack("d" * 64, "domibus", "gw-1", due, "late"), 200)
        assert late == applied
        listed = await fr.get(ACKS)
        assert listed.status_code == 200, listed.text
        [kept] = listed.json()["items"]
        assert (kept["id"], kept["scheduled_for"], kept["answer"]) == (
            applied["id"], None, {"id": 9})  # fmt: skip


async def test_a_bad_scheduled_for_is_refused_naming_the_field(api: Api) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    async with api.client("admin-fr") as fr:
        await _fr_party(fr, now + dt.timedelta(hours=1), now + dt.timedelta(hours=2))
        good = _ack("e" * 64, "domibus", "gw-1", now + dt.timedelta(hours=1))
        for bad in ("tomorrow", "2027-01-01T10:00:00", "1999-12-31T23:00:00Z",
                    (now - dt.timedelta(hours=1)).isoformat(), 17):  # fmt: skip
            got = await fr.post(ACKS, json=good | {"scheduled_for": bad})
            assert got.status_code == 422, (bad, got.text)
            assert got.headers["content-type"].startswith("application/problem+json")
            assert "scheduled_for" in got.text, got.text
        assert (await fr.get(ACKS)).json()["items"] == []
