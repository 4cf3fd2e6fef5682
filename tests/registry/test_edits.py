"""Safe partial edits (JSON Merge Patch), revert to an earlier version and diffs, on every kind."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cdb_service.registry.kinds import KINDS
from tests.support import factories
from tests.support.api import Api, As

V1 = "/api/v1"
MERGE = {"content-type": "application/merge-patch+json"}
BOOKKEEPING = {"version", "revision", "created_at", "updated_at"}


def _later(days: int) -> str:
    return (dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)).isoformat()


# Per kind: who writes it, a valid body, and a one-field change (field, new value).
def _cases() -> list[tuple[str, str, dict[str, Any], str, Any]]:
    return [
        ("routing-parties", "admin-de", factories.routing_party(), "endpoint_url",
         "https://moved.example.eu/msh"),
        ("authorities", "admin-de",
         factories.authority(routing_party_name="de-ap",
                             address={"city": "Berlin", "country": "DE", "postal_code": "10115"}),
         "kind", "prosecution"),
        ("national-correspondents", "admin-de",
         {"owner": "DE", "ref": "nc-1", "country": "DE", "type": "eurojust",
          "authority_code": "DE:COURT-1", "contact": {"value": "nc@justiz.example.de"},
          "person": {"name": "A. Person"}},
         "type", "terrorism"),
        ("national-members", "admin-ej",
         {"owner": "EJ", "ref": "nm-de", "country": "DE", "role": "national-member",
          "contact": {"value": "de.desk@eurojust.example.eu"}},
         "role", "deputy"),
        ("jurisdiction-criteria", "admin-de", factories.criterion(), "priority", 7),
        ("maintenance-windows", "operator",
         {"owner": "EC", "ref": "mw-1", "component": "cdb", "starts_at": _later(60),
          "ends_at": _later(61), "reason": "database upgrade"},
         "reason", "database and kernel upgrade"),
        ("owners", "operator", {"code": "NO", "name": "Norway", "instruments": ["maintenance"]},
         "name", "Kingdom of Norway"),
        ("incidents", "operator",
         {"owner": "EC", "ref": "inc-1", "component": "cdb", "description": "lookups fail",
          "started_at": _later(-1), "expected_recovery_at": _later(1)},
         "description", "lookups fail with 503"),
    ]  # fmt: skip


async def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json())


async def test_patch_revert_and_diff_on_every_kind(api: Api) -> None:
    cases = _cases()
    assert {c[0] for c in cases} == set(KINDS)  # a kind added later must be added here
    for kind, who, body, name, value in cases:
        async with api.client(who) as c:
            created = await _ok(await c.post(f"{V1}/{kind}", json=body), 201)
            url = f"{V1}/{kind}/{created['id']}"
            # One field changes; every other field (references included) stays as it was.
            patched = await _ok(
                await c.patch(url, json={name: value}, headers=MERGE | {"If-Match": '"1"'})
            )
            assert patched[name] == value and patched["version"] == 2, kind
            others = set(created) - BOOKKEEPING - {name}
            assert {k: patched[k] for k in others} == {k: created[k] for k in others}, kind

            diff = await _ok(await c.get(f"{url}/diff", params={"from": 1, "to": 2}))
            assert diff["fields"] == [{"field": name, "from": created[name], "to": value}], kind
            assert diff["patch"] == [{"op": "replace", "path": f"/{name}", "value": value}], kind
            by_revision = await _ok(
                await c.get(
                    f"{url}/diff",
                    params={
                        "from_revision": created["revision"],
                        "to_revision": patched["revision"],
                    },
                )
            )
            assert by_revision["fields"] == diff["fields"], kind

            # A stale If-Match is refused, and nothing changes.
            stale = await c.patch(url, json={name: value}, headers=MERGE | {"If-Match": '"1"'})
            assert stale.status_code == 412, kind

            reverted = await _ok(
                await c.post(f"{url}/revert", params={"version": 1}, headers={"If-Match": '"2"'})
            )
            assert reverted["version"] == 3, kind
            assert {k: reverted[k] for k in set(created) - BOOKKEEPING - {"announced_at",
                    "notified_at", "detected_at"}} == {
                k: created[k] for k in set(created) - BOOKKEEPING - {"announced_at",
                "notified_at", "detected_at"}
            }, kind  # fmt: skip
            history = (await _ok(await c.get(f"{url}/history")))["items"]
            assert [v["version"] for v in history] == [3, 2, 1], kind


async def _authority_with_party(c: As) -> tuple[str, dict[str, Any]]:
    await _ok(await c.post(f"{V1}/routing-parties", json=factories.routing_party()), 201)
    body = factories.authority(
        routing_party_name="de-ap",
        address={
            "street": "Hauptstr. 1",
            "city": "Berlin",
            "country": "DE",
            "postal_code": "10115",
        },
    )
    created = await _ok(await c.post(f"{V1}/authorities", json=body), 201)
    return f"{V1}/authorities/{created['id']}", created


async def test_patching_one_name_keeps_the_routing_party_contacts_and_address(api: Api) -> None:
    async with api.client("admin-de") as c:
        url, created = await _authority_with_party(c)
        names = {"names": {"en": "District Court One"}}
        patched = await _ok(await c.patch(url, json=names, headers=MERGE | {"If-Match": '"1"'}))
        assert patched["names"] == {"de": "Amtsgericht Eins", "en": "District Court One"}
        assert patched["routing_party_id"] == created["routing_party_id"] is not None
        assert patched["contacts"] == created["contacts"]
        assert patched["address"] == created["address"]
        # null removes a member (RFC 7396): the street goes, the rest of the address stays.
        gone = {"address": {"street": None}}
        patched = await _ok(await c.patch(url, json=gone, headers=MERGE | {"If-Match": '"2"'}))
        assert patched["address"] == {"street": None, "postal_code": "10115", "city": "Berlin",
                                      "country": "DE"}  # fmt: skip
        missing = await c.patch(url, json=names, headers=MERGE)
        assert missing.status_code == 428
        wrong_type = await c.patch(url, content=b"{}", headers={"content-type": "text/plain",
                                                                "If-Match": '"3"'})  # fmt: skip
        assert wrong_type.status_code == 415


async def test_an_address_postal_code_must_fit_its_country(api: Api) -> None:
    async with api.client("admin-fr") as c:
        body = factories.authority(
            owner="FR", code="FR:COUR-1",
            address={"city": "Paris", "country": "DE", "postal_code": "ABC"},
        )  # fmt: skip
        refused = await c.post(f"{V1}/authorities", json=body)
        assert refused.status_code == 422
        assert "'ABC' is not a postal code of DE" in refused.text
        body["address"] = {"city": "Paris", "country": "FR", "postal_code": "75001"}
        created = await _ok(await c.post(f"{V1}/authorities", json=body), 201)
        url = f"{V1}/authorities/{created['id']}"
        bad = {"address": {"postal_code": "7500"}}
        refused = await c.patch(url, json=bad, headers=MERGE | {"If-Match": '"1"'})
        assert refused.status_code == 422 and "not a postal code of FR" in refused.text


async def test_revert_refuses_a_version_that_names_a_deleted_target(api: Api) -> None:
    async with api.client("admin-de") as c:
        url, _ = await _authority_with_party(c)
        unlinked = {"routing_party_id": None}
        await _ok(await c.patch(url, json=unlinked, headers=MERGE | {"If-Match": '"1"'}))
        party = (await _ok(await c.get(f"{V1}/routing-parties")))["items"][0]
        gone = await c.delete(f"{V1}/routing-parties/{party['id']}", headers={"If-Match": '"1"'})
        assert gone.status_code == 204
        refused = await c.post(f"{url}/revert", params={"version": 1}, headers={"If-Match": '"2"'})
        assert refused.status_code == 422
        assert "routing_party_id" in refused.text
        assert (await _ok(await c.get(url)))["version"] == 2
