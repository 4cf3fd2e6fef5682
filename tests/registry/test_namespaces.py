"""Namespaces that cannot be squatted (issue 30, item 8), on both databases: registered
party ids are checked against the owner's state as unregistered ones are, an operator may
allow an exception (a versioned, audited write, by operators only); a certificate that
names no state serves a second owner only once an operator confirmed it; and a lender's
unshare succeeds whatever its borrowers name, their entries becoming unroutable (and the
quality report saying so)."""

from __future__ import annotations

from typing import Any

from cdb_service.services import Services
from tests.support import factories
from tests.support.api import Api

V1 = "/api/v1"
GLN = "urn:oasis:names:tc:ebcore:partyid-type:iso6523:0088"
LEI = "urn:oasis:names:tc:ebcore:partyid-type:iso6523:0199"
MERGE = {"content-type": "application/merge-patch+json"}


def _fields(response: Any) -> set[str]:
    return {".".join(map(str, e["loc"])) for e in response.json().get("errors", [])}


async def _created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


def _party(owner: str, name: str, *identifiers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    ids = [{"party_id": name}, *identifiers]
    return factories.routing_party(owner=owner, name=name, identifiers=ids, **extra)


async def test_a_gln_of_another_state_s_prefix_needs_an_operator(api: Api) -> None:
    german = {"party_id": "4012345000009", "party_id_type": GLN}
    async with api.client("admin-fr") as fr, api.client("operator") as op:
        squat = await fr.post(f"{V1}/routing-parties", json=_party("FR", "fr-ap", german))
        assert squat.status_code == 422, squat.text
        assert _fields(squat) == {"identifiers"}
        assert "GS1 prefix 401 of DE" in squat.text and "operator_confirmed" in squat.text
        lei = await fr.post(f"{V1}/routing-parties", json=_party(
            "FR", "fr-ap", {"party_id": "969500ABCDEFGHIJKL12", "party_id_type": LEI}))  # fmt: skip
        assert lei.status_code == 422 and "names no member state" in lei.text, lei.text
        # France's own prefix (300-379) is France's without asking anyone.
        own = await _created(await fr.post(f"{V1}/routing-parties", json=_party(
            "FR", "fr-ap", {"party_id": "3012345000004", "party_id_type": GLN})))  # fmt: skip
        # The administrator cannot grant itself the exception ...
        granted = german | {"operator_confirmed": True}
        body = {"identifiers": [*own["identifiers"], granted]}
        url = f"{V1}/routing-parties/{own['id']}"
        self_granted = await fr.patch(url, json=body, headers=MERGE | {"If-Match": '"1"'})
        assert self_granted.status_code == 422, self_granted.text
        assert _fields(self_granted) == {"identifiers.2.operator_confirmed"}
        # ... an operator can, as a write of its own, and FR's later edits keep it.
        allowed = await op.patch(url, json=body, headers=MERGE | {"If-Match": '"1"'})
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["identifiers"][2] == granted
        assert "operator_confirmed" not in allowed.json()["identifiers"][0]
        kept = await fr.patch(url, json={"endpoint_url": "https://fr-ap.example.eu/as4"},
                              headers=MERGE | {"If-Match": '"2"'})  # fmt: skip
        assert kept.status_code == 200, kept.text
        history = await fr.get(f"{url}/history")
        assert history.status_code == 200 and len(history.json()["items"]) == 3


async def test_a_certificate_naming_no_state_serves_a_second_owner_once_confirmed(
    api: Api,
) -> None:
    stateless = factories.certificate_pem(name="shared-gateway.example.eu")
    certificate = {"use": "signing", "pem": stateless}
    async with api.client("admin-de") as de, api.client("admin-fr") as fr, \
            api.client("operator") as op:  # fmt: skip
        await _created(await de.post(f"{V1}/routing-parties", json=factories.routing_party(
            certificates=[certificate])))  # fmt: skip
        second = _party("FR", "fr-ap", certificates=[certificate])
        refused = await fr.post(f"{V1}/routing-parties", json=second)
        assert refused.status_code == 422, refused.text
        assert _fields(refused) == {"certificates.0.pem"}
        assert "names no state" in refused.text and "operator_confirmed" in refused.text
        confirmed = second | {"certificates": [certificate | {"operator_confirmed": True}]}
        self_confirmed = await fr.post(f"{V1}/routing-parties", json=confirmed)
        assert self_confirmed.status_code == 422, self_confirmed.text
        assert _fields(self_confirmed) == {"certificates.0.operator_confirmed"}
        party = await _created(await op.post(f"{V1}/routing-parties", json=confirmed))
        assert party["certificates"][0]["operator_confirmed"] is True
        # Both owners go on editing their parties.
        de_party = (await de.get(f"{V1}/routing-parties", params={"name": "de-ap"})
                    ).json()["items"][0]  # fmt: skip
        edited = await de.patch(f"{V1}/routing-parties/{de_party['id']}",
                                json={"endpoint_url": "https://de-ap.example.eu/as4"},
                                headers=MERGE | {"If-Match": '"1"'})  # fmt: skip
        assert edited.status_code == 200, edited.text


async def _resolve(api: Api, services: Services, code: str) -> dict[str, Any]:
    head = await services.reads.head()
    async with api.client("reader") as c:
        answer = await c.get(f"{V1}/resolve/recipient/{code}", params={"min_revision": head})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_a_borrower_cannot_block_the_lender_s_unshare(api: Api, services: Services) -> None:
    async with api.client("admin-fr") as fr, api.client("admin-de") as de:
        party = await _created(await fr.post(f"{V1}/routing-parties", json=factories.routing_party(
            owner="FR", name="fr-justice-ap", shared_with=["DE"])))  # fmt: skip
        court = await _created(await de.post(f"{V1}/authorities", json=factories.authority(
            routing_party_name="fr-justice-ap")))  # fmt: skip
        assert (await _resolve(api, services, "DE:COURT-1"))["routing"] is not None
        unshare = await fr.patch(f"{V1}/routing-parties/{party['id']}", json={"shared_with": []},
                                 headers=MERGE | {"If-Match": '"1"'})  # fmt: skip
        assert unshare.status_code == 200, unshare.text
        assert (await _resolve(api, services, "DE:COURT-1"))["routing"] is None
        table = await de.get(f"{V1}/routing-table")
        assert table.status_code == 200, table.text
        served = [p for p in table.json()["parties"] if p["name"] == "fr-justice-ap"]
        assert served and served[0]["final_recipients"] == []
        report = await de.get(f"{V1}/quality", params={"owner": "DE"})
        assert report.status_code == 200, report.text
        findings = [
            f
            for f in report.json()["findings"]
            if f["rule"] == "unroutable-authority" and f["entry_id"] == court["id"]
        ]
        assert findings and "no longer shares with DE" in findings[0]["message"], report.text
