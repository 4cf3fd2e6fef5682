"""Acknowledgements and rollout status (issue 28 items 3 and 4, the registry's side): an
access point confirms the package it applied; `GET /rollouts` shows, per change of a
certificate's window, who has confirmed the package that carries it, who runs a stale
one; the gauge the alert reads; another owner sees and acknowledges none of it."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from prometheus_client import REGISTRY

from cdb_service.distribution.rollouts import RolloutWatch, alert_from
from cdb_service.kernel.calendar import default_calendar
from cdb_service.services import Services
from tests.support import factories
from tests.support.api import Api, As

V1 = "/api/v1"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _ack(digest: str, kind: str, name: str, answer: Any = "ok") -> dict[str, Any]:
    return {"package_digest": digest, "target": {"kind": kind, "name": name},
            "applied_at": dt.datetime.now(dt.UTC).isoformat(), "answer": answer}  # fmt: skip


async def _digest(client: As, party: str, at: dt.datetime | None = None) -> str:
    params = {"at": at.isoformat()} if at else {}
    got = await client.get(f"{V1}/packages/{party}", params=params)
    assert got.status_code == 200, got.text
    return str(got.headers["CDB-Package-Digest"])


def _switch(items: list[dict[str, Any]], sha256: str) -> dict[str, Any]:
    return next(r for r in items if r["kind"] == "certificate"
                and r["certificate"]["sha256"] == sha256 and "used" in r["changes"])  # fmt: skip


async def _rollouts(client: As, **params: Any) -> dict[str, Any]:
    got = await client.get(f"{V1}/rollouts", params=params)
    assert got.status_code == 200, got.text
    return dict(got.json())


async def test_a_rollover_is_confirmed_target_by_target_and_others_stay_out(
    api: Api, services: Services
) -> None:
    """FR's new encryption certificate is accepted now and used in a few seconds. Its
    administrator's agent (Domibus) and the access point itself (connector 4.x directory,
    with the party's TLS certificate as its client certificate) acknowledge the package
    as of use_from: 2/2 confirmed; a connector-ng that applied the package of before the
    change shows stale. DE's administrator neither acknowledges FR's party nor sees it."""
    old = factories.certificate_pem(60, "fr-ap-2026")
    new = factories.certificate_pem(400, "fr-ap-2027")
    tls = api.pki.client_cert("reader").read_text()  # the access point's client certificate
    use_from = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=6)
    new_sha = factories_sha(new)
    async with (api.client("admin-fr") as fr, api.client("admin-de") as de,
                api.client("reader") as ap, api.client("operator") as op):  # fmt: skip
        party = factories.routing_party(owner="FR", name="fr-ap", certificates=[
            {"use": "encryption", "pem": old,
             "accept_until": (NOW + dt.timedelta(days=20)).isoformat()},
            {"use": "encryption", "pem": new, "accept_from": NOW.isoformat(),
             "use_from": use_from.isoformat()},
            {"use": "tls", "pem": tls},
        ])  # fmt: skip
        made = await fr.post(f"{V1}/routing-parties", json=party)
        assert made.status_code == 201, made.text
        before = await _digest(fr, "fr-ap")
        at_use = await _digest(fr, "fr-ap", use_from)
        assert before != at_use

        # Nobody has confirmed yet: one access point, unconfirmed.
        row = _switch((await _rollouts(op))["items"], new_sha)
        assert row["pending"] is True and row["confirmed"] == 0
        assert [a["state"] for a in row["access_points"]] == ["unconfirmed"]
        watch = RolloutWatch(services.sessions, 60, 2)
        await watch.refresh()
        labels = {"owner": "FR", "party": "fr-ap", "use": "encryption",
                  "certificate": new_sha[:16]}  # fmt: skip
        assert REGISTRY.get_sample_value("cdb_rollout_unconfirmed_access_points", labels) == 1
        assert REGISTRY.get_sample_value("cdb_rollout_alert_from_timestamp_seconds", labels) == (
            alert_from(use_from, 2, default_calendar()).timestamp()
        )

        quality = await fr.get(f"{V1}/quality")
        assert quality.status_code == 200, quality.text
        found = [f for f in quality.json()["findings"] if f["rule"] == "rollout-unconfirmed"]
        assert [(f["severity"], f["key"]) for f in found] == [("error", "fr-ap")]

        first = await fr.post(f"{V1}/access-points/fr-ap/acknowledgements",
                              json=_ack(at_use, "domibus", "gw-1", {"id": 7}))  # fmt: skip
        assert first.status_code == 201, first.text
        again = await fr.post(f"{V1}/access-points/fr-ap/acknowledgements",
                              json=_ack(at_use, "domibus", "gw-1", {"id": 7}))  # fmt: skip
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        mine = await ap.post(f"{V1}/access-points/fr-ap/acknowledgements",
                             json=_ack(at_use, "connector4-dir", "c4"))  # fmt: skip
        assert mine.status_code == 201, mine.text

        row = _switch((await _rollouts(fr))["items"], new_sha)
        assert (row["confirmed"], row["access_points_total"]) == (2, 2)
        assert {a["target"]["kind"] for a in row["access_points"]} == {"domibus", "connector4-dir"}
        assert all(a["package_digest"] == at_use for a in row["access_points"])
        await watch.refresh()
        assert REGISTRY.get_sample_value("cdb_rollout_unconfirmed_access_points", labels) == 0
        quality = await fr.get(f"{V1}/quality")
        assert not [f for f in quality.json()["findings"] if f["rule"] == "rollout-unconfirmed"]

        stale = await fr.post(f"{V1}/access-points/fr-ap/acknowledgements",
                              json=_ack(before, "connector-ng", "ng-1"))  # fmt: skip
        assert stale.status_code == 201
        row = _switch((await _rollouts(fr))["items"], new_sha)
        states = {a["target"]["name"]: a["state"] for a in row["access_points"]}
        assert states == {"gw-1": "confirmed", "c4": "confirmed", "ng-1": "stale"}
        assert (row["confirmed"], row["access_points_total"]) == (2, 3)

        # Another owner's administrator, an operator and a plain reader may not acknowledge.
        for who in (de, op):
            refused = await who.post(f"{V1}/access-points/fr-ap/acknowledgements",
                                     json=_ack(at_use, "domibus", "x"))  # fmt: skip
            assert refused.status_code == 403, refused.text
        assert (await _rollouts(de))["items"] == []
        assert (await ap.get(f"{V1}/rollouts")).status_code == 403

        # At use_from the change is history, still confirmed.
        await asyncio.sleep(max(0.0, (use_from - dt.datetime.now(dt.UTC)).total_seconds() + 1))
        row = _switch((await _rollouts(fr))["items"], new_sha)
        assert row["pending"] is False and row["confirmed"] == 2
        assert all(r["kind"] != "certificate" or r["certificate"]["sha256"] != new_sha
                   or "used" not in r["changes"]
                   for r in (await _rollouts(fr, pending="true"))["items"])  # fmt: skip


def factories_sha(pem: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()


async def test_hostile_acknowledgements_are_refused_with_the_field_named(api: Api) -> None:
    async with api.client("admin-fr") as fr:
        made = await fr.post(f"{V1}/routing-parties", json=factories.routing_party(
            owner="FR", name="fr-ap", certificates=[
                {"use": "encryption", "pem": factories.certificate_pem(100, "fr")}]))  # fmt: skip
        assert made.status_code == 201, made.text
        good = _ack("a" * 64, "domibus", "gw-1")
        future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
        cases: list[tuple[dict[str, Any], str]] = [
            (good | {"package_digest": "A" * 64}, "package_digest"),
            (good | {"package_digest": "a" * 65}, "package_digest"),
            (good | {"target": {"kind": "tomcat", "name": "x"}}, "kind"),
            (good | {"target": {"kind": "domibus", "name": "x\ny"}}, "name"),
            (good | {"target": {"kind": "domibus", "name": "x" * 101}}, "name"),
            (good | {"applied_at": future}, "applied_at"),
            (good | {"applied_at": "2026-12-05T10:00:00"}, "applied_at"),
            (good | {"answer": "x" * 5000}, "answer"),
            (good | {"answer": {"a": [[[[[[[[[["deep"]]]]]]]]]]}}, "answer"),
            (good | {"extra": 1}, "extra"),
            ({k: v for k, v in good.items() if k != "target"}, "target"),
        ]
        for body, field in cases:
            got = await fr.post(f"{V1}/access-points/fr-ap/acknowledgements", json=body)
            assert got.status_code in (400, 422), (field, got.status_code, got.text)
            assert got.headers["content-type"].startswith("application/problem+json")
            assert field in got.text, (field, got.text)
        broken = await fr.post(f"{V1}/access-points/fr-ap/acknowledgements", content=b"{",
                               headers={"content-type": "application/json"})  # fmt: skip
        assert broken.status_code == 400
        missing = await fr.post(f"{V1}/access-points/nobody/acknowledgements", json=good)
        assert missing.status_code == 404
        cursor = await fr.get(f"{V1}/rollouts", params={"cursor": "garbage"})
        assert 400 <= cursor.status_code < 500
        assert (await fr.get(f"{V1}/rollouts", params={"limit": 1000})).status_code in (400, 422)


async def test_acknowledgements_are_bounded_per_target_and_per_party(api: Api) -> None:
    """A client that posts without end keeps at most 20 per target and 16 targets."""
    from sqlalchemy import func, select

    from cdb_service.distribution.acknowledgements import Acknowledgement

    async with api.client("admin-fr") as fr:
        made = await fr.post(f"{V1}/routing-parties", json=factories.routing_party(
            owner="FR", name="fr-ap", certificates=[
                {"use": "encryption", "pem": factories.certificate_pem(100, "fr")}]))  # fmt: skip
        assert made.status_code == 201
        for i in range(25):
            got = await fr.post(f"{V1}/access-points/fr-ap/acknowledgements",
                                json=_ack(f"{i:064x}", "domibus", "gw-1"))  # fmt: skip
            assert got.status_code == 201
        for i in range(20):
            got = await fr.post(f"{V1}/access-points/fr-ap/acknowledgements",
                                json=_ack("b" * 64, "connector-ng", f"ng-{i}"))  # fmt: skip
            assert got.status_code == 201
    services = api.app.state["sessions"]
    async with services() as session:
        total = await session.scalar(select(func.count()).select_from(Acknowledgement))
        targets = await session.scalar(select(func.count(func.distinct(
            Acknowledgement.target_name))))  # fmt: skip
    assert targets == 16
    assert total is not None and total <= 16 * 20


async def test_the_same_acknowledgement_twice_at_once_is_one_row(api: Api) -> None:
    """An agent that retries while its first post is still in flight: one 201, one 200,
    the same acknowledgement (the unique key settles the race on PostgreSQL)."""
    async with api.client("admin-fr") as fr:
        made = await fr.post(f"{V1}/routing-parties", json=factories.routing_party(
            owner="FR", name="fr-ap", certificates=[
                {"use": "encryption", "pem": factories.certificate_pem(100, "fr")}]))  # fmt: skip
        assert made.status_code == 201
        body = _ack("c" * 64, "domibus", "gw-1")
        for _ in range(3):
            body = _ack(f"{_:x}" * 64, "domibus", "gw-1")
            both = await asyncio.gather(*(
                fr.post(f"{V1}/access-points/fr-ap/acknowledgements", json=body)
                for _ in range(2)))  # fmt: skip
            assert sorted(r.status_code for r in both) == [200, 201], [r.text for r in both]
            assert both[0].json()["id"] == both[1].json()["id"]
