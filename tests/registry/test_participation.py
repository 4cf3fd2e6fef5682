"""Who takes part in which instrument, and third countries' central authorities (issue 31,
items 3 and 4), through the API on both databases.

Ireland and Denmark are not bound by the EIO (and Denmark not by Regulation (EU)
2018/1727): their criteria for it are refused and a look-up says `not-participating`.
An operator registers Norway's central authority for maintenance: its administrators
write its entries, which resolve for maintenance and are refused for the EIO.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cryptography import x509

from cdb_service.security.dev import mint_token
from cdb_service.security.x509 import certificate_facts
from tests.support import factories
from tests.support.api import Api

V1 = "/api/v1"
PARTICIPATION = f"{V1}/code-lists/participation"


def _no_admin_token(api: Api) -> str:
    """An administrator of NO, as the identity provider would issue one once the operator
    has given NO administrators: the write scope and the owner claim NO (bound to a dev
    client's certificate, which the test client presents)."""
    s = api.settings
    pem = api.pki.client_cert("admin-de").read_bytes()
    thumbprint = certificate_facts(x509.load_pem_x509_certificate(pem)).x5t_s256
    return mint_token(api.pki.signing_keys(), issuer=s.oidc_issuer, audience=s.oidc_audience,
                      client="admin-no", scope="cdb.read cdb.write", owner="NO",
                      thumbprint=thumbprint, owner_claim=s.owner_claim)  # fmt: skip


def _errors(response: Any) -> dict[str, str]:
    return {".".join(map(str, e["loc"])): e["msg"] for e in response.json().get("errors", [])}


async def _resolve(api: Api, country: str, instrument: str, competence: str) -> dict[str, Any]:
    """Resolve once the app's index has caught up with the registry head."""
    async with api.client("reader") as reader:
        head = (await reader.get(PARTICIPATION)).json()["revision"]
        params = {
            "country": country,
            "instrument": instrument,
            "competence": competence,
            "min_revision": head,
        }  # the index that has the registration too
        for _ in range(100):
            response = await reader.get(f"{V1}/resolve", params=params)
            assert response.status_code == 200, response.text
            if response.json()["revision"] >= head:
                return dict(response.json())
            await asyncio.sleep(0.05)
    raise AssertionError("the lookup index did not catch up")


def _by_code(listing: dict[str, Any]) -> dict[str, list[str]]:
    return {item["code"]: item["instruments"] for item in listing["items"]}


async def test_the_participation_code_list_is_served_from_the_recitals(api: Api) -> None:
    async with api.client("reader") as reader:
        names = (await reader.get(f"{V1}/code-lists")).json()["items"]
        listing = await reader.get(PARTICIPATION)
    assert "participation" in names
    assert listing.status_code == 200, listing.text
    body = listing.json()
    assert body["revision"] == 0
    who = _by_code(body)
    assert "eio" in who["DE"] and "eio" not in who["IE"] and "eio" not in who["DK"]
    assert "eaw" in who["IE"] and "eurojust-art21" in who["IE"]  # recital 12: bound
    assert "eurojust-art21" not in who["DK"] and "jit" not in who["DK"]  # recital 13
    assert "NO" not in who


async def test_ie_and_dk_criteria_for_the_eio_are_refused(api: Api) -> None:
    async with api.client("operator") as operator:
        for cc in ("IE", "DK"):
            authority = factories.authority(owner=cc, code=f"{cc}:PROSECUTION-1",
                                            names={"en": "Prosecution One"})  # fmt: skip
            created = await operator.post(f"{V1}/authorities", json=authority)
            assert created.status_code == 201, created.text
            geo = [{"scheme": "country", "code": cc}]
            criterion = factories.criterion(owner=cc, authority_code=f"{cc}:PROSECUTION-1",
                                            geo=geo)  # fmt: skip
            refused = await operator.post(f"{V1}/jurisdiction-criteria", json=criterion)
            assert refused.status_code == 422, refused.text
            assert list(_errors(refused)) == ["instrument"]
            assert f"{cc} does not take part in eio" in _errors(refused)["instrument"]
            eaw = criterion | {"instrument": "eaw", "ref": "eaw-1"}
            accepted = await operator.post(f"{V1}/jurisdiction-criteria", json=eaw)
            assert accepted.status_code == 201, accepted.text


async def test_resolve_ie_and_dk_for_the_eio_is_not_participating(api: Api) -> None:
    for cc in ("IE", "DK"):
        body = await _resolve(api, cc, "eio", "execute")
        assert body["matches"] == [] and body["eurojust"] == []
        assert body["fallbacks"] == {"central_authorities": [], "national_correspondents": []}
        # (the empty registry has no national correspondents; with them, they are listed)
        assert body["explanation"]["reason"] == "not-participating", body
    # A member state that takes part and has no criterion is told that instead.
    assert (await _resolve(api, "DE", "eio", "execute"))["explanation"]["reason"] == "no-criterion"


async def test_an_operator_changes_participation_and_resolve_follows(api: Api) -> None:
    """IE opts in (an operator's entry for IE, versioned like every entry), gets a
    criterion, then is taken out again: the criterion stays, nothing routes to it."""
    async with api.client("operator") as operator:
        opt_in = await operator.post(f"{V1}/owners", json={
            "code": "IE", "name": "Ireland", "instruments": ["eio", "eaw"]})  # fmt: skip
        assert opt_in.status_code == 201, opt_in.text
        await operator.post(f"{V1}/routing-parties", json=factories.routing_party(
            owner="IE", name="ie-ap"))  # fmt: skip
        await operator.post(
            f"{V1}/authorities",
            json=factories.authority(
                owner="IE", code="IE:PROSECUTION-1", names={"en": "P"}, routing_party_name="ie-ap"
            ),
        )
        criterion = await operator.post(f"{V1}/jurisdiction-criteria", json=factories.criterion(
            owner="IE", authority_code="IE:PROSECUTION-1",
            geo=[{"scheme": "country", "code": "IE"}]))  # fmt: skip
        assert criterion.status_code == 201, criterion.text
        assert [
            m["authority"]["code"] for m in (await _resolve(api, "IE", "eio", "execute"))["matches"]
        ] == ["IE:PROSECUTION-1"]
        url = f"{V1}/owners/{opt_in.json()['id']}"
        out = await operator.patch(url, json={"instruments": ["eaw"]}, headers={
            "If-Match": '"1"', "content-type": "application/merge-patch+json"})  # fmt: skip
        assert out.status_code == 200, out.text
        history = (await operator.get(f"{url}/history")).json()
    assert [v["document"]["instruments"] for v in history["items"]] in (
        [["eio", "eaw"], ["eaw"]], [["eaw"], ["eio", "eaw"]])  # fmt: skip
    body = await _resolve(api, "IE", "eio", "execute")
    assert body["matches"] == [] and body["explanation"]["reason"] == "not-participating"


async def test_a_norwegian_central_authority_for_maintenance(api: Api) -> None:
    no_admin = _no_admin_token(api)
    central = factories.authority(owner="NO", code="NO:CENTRAL-AUTHORITY", kind="central-authority",
                                  names={"en": "Norwegian Labour and Welfare Administration"},
                                  routing_party_name="no-ap")  # fmt: skip
    party = factories.routing_party(owner="NO", name="no-ap")
    async with api.client("admin-de", token=no_admin) as norway, \
            api.client("admin-de") as germany, api.client("operator") as operator:  # fmt: skip
        # Before an operator registers NO, NO owns nothing.
        early = await norway.post(f"{V1}/routing-parties", json=party)
        assert early.status_code == 422, early.text
        assert "'NO' is not in the code list 'owners'" in _errors(early)["owner"]
        # Registering an owner is the operators' (the list is the Commission's).
        owner = {"code": "no", "name": "Norway", "instruments": ["maintenance"]}
        assert (await germany.post(f"{V1}/owners", json=owner)).status_code == 403
        registered = await operator.post(f"{V1}/owners", json=owner)
        assert registered.status_code == 201, registered.text
        assert (registered.json()["code"], registered.json()["owner"]) == ("NO", "EC")
        # Its administrators write its entries (and only theirs).
        assert (await norway.post(f"{V1}/routing-parties", json=party)).status_code == 201
        assert (await norway.post(f"{V1}/authorities", json=central)).status_code == 201
        assert (await norway.post(f"{V1}/authorities", json=factories.authority())
                ).status_code == 403  # fmt: skip
        geo = [{"scheme": "country", "code": "NO"}]
        maintenance = factories.criterion(
            owner="NO",
            ref="no-maintenance",
            authority_code="NO:CENTRAL-AUTHORITY",
            instrument="maintenance",
            competence="central",
            geo=geo,
        )
        created = await norway.post(f"{V1}/jurisdiction-criteria", json=maintenance)
        assert created.status_code == 201, created.text
        eio = maintenance | {"ref": "no-eio", "instrument": "eio"}
        refused = await norway.post(f"{V1}/jurisdiction-criteria", json=eio)
        assert refused.status_code == 422, refused.text
        assert list(_errors(refused)) == ["instrument"]
        owners = (await norway.get(f"{V1}/code-lists/owners")).json()["items"]
        participation = _by_code((await norway.get(PARTICIPATION)).json())
    assert {"code": "NO", "label": "Norway"} in owners
    assert participation["NO"] == ["maintenance"]

    found = await _resolve(api, "NO", "maintenance", "central")
    assert [m["authority"]["code"] for m in found["matches"]] == ["NO:CENTRAL-AUTHORITY"]
    assert found["matches"][0]["routing"]["party_name"] == "no-ap"
    not_for_eio = await _resolve(api, "NO", "eio", "execute")
    assert not_for_eio["matches"] == []
    assert not_for_eio["explanation"]["reason"] == "not-participating"
    # The third country is in the registry's other answers too: its feed, its export,
    # its quality report, the routing table.
    async with api.client("admin-de", token=no_admin) as norway:
        changes = await norway.get(f"{V1}/changes", params={"owner": "no", "since": 0})
        exported = await norway.get(f"{V1}/export", params={"owner": "NO"})
        quality = await norway.get(f"{V1}/quality", params={"owner": "NO"})
        table = await norway.get(f"{V1}/routing-table")
    assert changes.status_code == 200, changes.text
    assert {c["document"]["owner"] for c in changes.json()["changes"]} == {"NO"}
    assert exported.status_code == 200 and "NO:CENTRAL-AUTHORITY" in exported.text
    assert quality.status_code == 200, quality.text
    assert table.status_code == 200 and "no-ap" in table.text
    async with api.client("reader") as reader:
        unknown = await reader.get(f"{V1}/resolve", params={
            "country": "CH", "instrument": "maintenance", "competence": "central"})  # fmt: skip
    assert unknown.status_code == 422, unknown.text
