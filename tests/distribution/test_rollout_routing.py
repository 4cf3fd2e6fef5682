"""Rollouts of routing changes, packages of another scope, and reading acknowledgements
back (issue 28 item 4): an edit of a party's endpoint, a party joining tomorrow and one
leaving tonight are listed as certificate windows are, with who has confirmed the
package that carries them; a package fetched with `?owner=` or `?whole_network=true`
confirms when it carries the change and says so; an access point's acknowledgements
are read back newest first, page by page, by those who may."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cdb_service.distribution.packages import day_start
from cdb_service.kernel.calendar import local_date
from tests.support import factories
from tests.support.api import Api, As

V1 = "/api/v1"
MERGE = {"content-type": "application/merge-patch+json"}
OTHER = [{"service": "urn:other", "actions": ["Submit"]}]


def _ack(digest: str, kind: str, name: str) -> dict[str, Any]:
    return {"package_digest": digest, "target": {"kind": kind, "name": name},
            "applied_at": dt.datetime.now(dt.UTC).isoformat(), "answer": "ok"}  # fmt: skip


async def _made(client: As, body: dict[str, Any]) -> dict[str, Any]:
    got = await client.post(f"{V1}/routing-parties", json=body)
    assert got.status_code == 201, got.text
    return dict(got.json())


async def _digest(client: As, party: str, **params: Any) -> str:
    got = await client.get(f"{V1}/packages/{party}", params=params)
    assert got.status_code == 200, got.text
    return str(got.headers["CDB-Package-Digest"])


async def _acked(client: As, party: str, digest: str, kind: str, name: str) -> None:
    got = await client.post(f"{V1}/access-points/{party}/acknowledgements",
                            json=_ack(digest, kind, name))  # fmt: skip
    assert got.status_code == 201, got.text


async def _routing(client: As, party: str, what: str) -> list[dict[str, Any]]:
    got = await client.get(f"{V1}/rollouts")
    assert got.status_code == 200, got.text
    return [r for r in got.json()["items"]
            if r["kind"] == "routing" and r["party"] == party and what in r["changes"]]  # fmt: skip


def _states(row: dict[str, Any]) -> dict[tuple[str, str | None], str]:
    return {(a["party"], a["target"]["name"] if a["target"] else None): a["state"]
            for a in row["access_points"]}  # fmt: skip


async def test_an_endpoint_edit_is_a_rollout_confirmed_by_the_packages_fetched_after_it(
    api: Api,
) -> None:
    """FR moves fr-b's endpoint. The operator sees the change at the edit's revision, what
    it was and what it is, for the two access points that exchange messages with fr-b
    (DE's, offering another service, is not concerned): fr-a's gateway applied the
    package fetched after the edit (confirmed), fr-b's the one of before (stale)."""
    async with (api.client("admin-fr") as fr, api.client("admin-de") as de,
                api.client("operator") as op):  # fmt: skip
        await _made(fr, factories.routing_party(owner="FR", name="fr-a"))
        b = await _made(fr, factories.routing_party(owner="FR", name="fr-b"))
        await _made(de, factories.routing_party(owner="DE", name="de-x", services=OTHER))
        before_b = await _digest(fr, "fr-b")
        moved = await fr.patch(
            f"{V1}/routing-parties/{b['id']}",
            headers=MERGE | {"If-Match": '"1"'},
            json={"endpoint_url": "https://gw2.fr-b.example.eu/msh"},
        )
        assert moved.status_code == 200, moved.text

        [row] = await _routing(op, "fr-b", "endpoint")
        assert row["changes"] == ["endpoint"] and row["revision"] == moved.json()["revision"]
        assert (
            "https://fr-b.example.eu/msh → https://gw2.fr-b.example.eu/msh" in (row["description"])
        )
        assert row["certificate"] is None and row["pending"] is False
        assert _states(row) == {("fr-a", None): "unconfirmed", ("fr-b", None): "unconfirmed"}

        await _acked(fr, "fr-a", await _digest(fr, "fr-a"), "domibus", "gw-a")
        await _acked(fr, "fr-b", before_b, "domibus", "gw-b")
        [row] = await _routing(fr, "fr-b", "endpoint")
        assert _states(row) == {("fr-a", "gw-a"): "confirmed", ("fr-b", "gw-b"): "stale"}
        assert (row["confirmed"], row["access_points_total"]) == (1, 2)
        # DE's administrator: neither its party nor its access points are concerned.
        assert not [r for r in (await de.get(f"{V1}/rollouts")).json()["items"]
                    if r["party"].startswith("fr-")]  # fmt: skip


async def test_a_party_joining_tomorrow_and_one_leaving_tonight_are_pending(api: Api) -> None:
    """fr-new is valid from tomorrow, fr-old until today: both take effect at the start of
    tomorrow (Brussels), pending. fr-a must import both; fr-new its own first package;
    fr-old, leaving, imports nothing. fr-a's agent fetched ahead (`?at=` tomorrow) and
    confirmed both with one package."""
    today = local_date(dt.datetime.now(dt.UTC))
    tomorrow = today + dt.timedelta(days=1)
    async with api.client("admin-fr") as fr, api.client("operator") as op:
        await _made(fr, factories.routing_party(owner="FR", name="fr-a"))
        await _made(fr, factories.routing_party(owner="FR", name="fr-new",
                                                valid_from=tomorrow.isoformat()))  # fmt: skip
        await _made(fr, factories.routing_party(owner="FR", name="fr-old",
                                                valid_to=today.isoformat()))  # fmt: skip
        [joins] = await _routing(op, "fr-new", "added")
        [leaves] = await _routing(op, "fr-old", "retired")
        for row in (joins, leaves):
            assert row["pending"] is True and row["revision"] is None
            assert row["effective_from"] == day_start(tomorrow).isoformat()
        assert set(_states(joins)) == {("fr-a", None), ("fr-new", None)}
        assert set(_states(leaves)) == {("fr-a", None)}
        assert "leaves the network" in leaves["description"]

        ahead = await _digest(fr, "fr-a", at=tomorrow.isoformat())
        assert ahead != await _digest(fr, "fr-a")
        await _acked(fr, "fr-a", ahead, "connector4-dir", "c4")
        [joins] = await _routing(op, "fr-new", "added")
        [leaves] = await _routing(op, "fr-old", "retired")
        assert _states(joins)[("fr-a", "c4")] == "confirmed"
        assert _states(leaves) == {("fr-a", "c4"): "confirmed"}
        assert all(a["package_digest"] == ahead for a in leaves["access_points"])


async def test_packages_of_another_scope_confirm_when_they_carry_the_change(api: Api) -> None:
    """DE's de-x (which fr-a exchanges messages with) changes its endpoint. fr-a's targets
    applied, after the edit, DE's parties' package (`?owner=DE`), the whole network's, and
    FR's own parties' package: the first two carry the change and confirm it, each line
    naming its scope; FR's own does not carry de-x at all: stale."""
    async with api.client("admin-fr") as fr, api.client("admin-de") as de:
        await _made(fr, factories.routing_party(owner="FR", name="fr-a"))
        x = await _made(de, factories.routing_party(owner="DE", name="de-x"))
        moved = await de.patch(
            f"{V1}/routing-parties/{x['id']}",
            headers=MERGE | {"If-Match": '"1"'},
            json={"endpoint_url": "https://new.de-x.example.eu/msh"},
        )
        assert moved.status_code == 200, moved.text
        await _acked(fr, "fr-a", await _digest(fr, "fr-a", owner="DE"), "domibus", "by-owner")
        await _acked(fr, "fr-a", await _digest(fr, "fr-a", whole_network="true"), "domibus",
                     "whole")  # fmt: skip
        await _acked(fr, "fr-a", await _digest(fr, "fr-a", owner="FR"), "domibus", "own")
        [row] = await _routing(fr, "de-x", "endpoint")
        lines = {a["target"]["name"]: a for a in row["access_points"] if a["party"] == "fr-a"}
        assert {n: a["state"] for n, a in lines.items()} == {
            "by-owner": "confirmed",
            "whole": "confirmed",
            "own": "stale",
        }
        assert lines["by-owner"]["scope"] == {"owner": "DE", "whole_network": False}
        assert lines["whole"]["scope"] == {"owner": None, "whole_network": True}
        assert lines["own"]["scope"] is None


async def test_acknowledgements_are_read_back_newest_first_by_those_who_may(api: Api) -> None:
    """fr-a's administrator, the access point itself and an operator read what fr-a
    acknowledged, newest first, a page at a time, and whether each is the package in
    force; DE's administrator and a reader without fr-a's certificate may not; mistakes
    are problems naming the field."""
    tls = api.pki.client_cert("reader").read_text()
    async with (api.client("admin-fr") as fr, api.client("admin-de") as de,
                api.client("operator") as op, api.client("reader") as ap):  # fmt: skip
        plain = factories.routing_party(owner="FR", name="fr-b")
        await _made(fr, plain)
        await _made(fr, factories.routing_party(owner="FR", name="fr-a", certificates=[
            {"use": "tls", "pem": tls}]))  # fmt: skip
        current = await _digest(fr, "fr-a")
        for i in range(3):
            await _acked(fr, "fr-a", f"{i:064x}", "domibus", "gw-1")
        await _acked(fr, "fr-a", current, "connector-ng", "ng-1")
        url = f"{V1}/access-points/fr-a/acknowledgements"

        first = await fr.get(url, params={"limit": 3})
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["current_package_digest"] == current
        assert [a["package_digest"] for a in body["items"]] == [current, f"{2:064x}",
                                                                  f"{1:064x}"]  # fmt: skip
        assert [a["current"] for a in body["items"]] == [True, False, False]
        newest = body["items"][0]
        assert newest["target"] == {"kind": "connector-ng", "name": "ng-1"}
        assert newest["answer"] == "ok" and newest["applied_at"] and newest["received_at"]
        rest = await fr.get(url, params={"limit": 3, "cursor": body["next"]})
        assert [a["package_digest"] for a in rest.json()["items"]] == [f"{0:064x}"]
        assert rest.json()["next"] is None

        for who in (op, ap):
            seen = await who.get(url)
            assert seen.status_code == 200, seen.text
            assert len(seen.json()["items"]) == 4
        for who, path in ((de, url), (ap, f"{V1}/access-points/fr-b/acknowledgements")):
            refused = await who.get(path)
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
        missing = await fr.get(f"{V1}/access-points/nobody/acknowledgements")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        rollout_cursor = (await op.get(f"{V1}/rollouts", params={"limit": 1})).json()["next"]
        for params in ({"cursor": "garbage"}, {"cursor": rollout_cursor}, {"limit": 0},
                       {"limit": 201}):  # fmt: skip
            bad = await fr.get(url, params=params)
            assert bad.status_code in (400, 422), (params, bad.text)
            assert bad.headers["content-type"].startswith("application/problem+json")
            assert ("cursor" if "cursor" in params else "limit") in bad.text
