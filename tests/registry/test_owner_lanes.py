"""One owner cannot hijack, block or pre-empt another's routing (on both databases).

Each scenario is what a hostile member-state administrator tried; each now ends with
the other owner unaffected and the attempt refused, naming the field.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from cdb_service.security.audit import AuditEvent
from cdb_service.services import Services
from tests.support import factories
from tests.support.api import Api

V1 = "/api/v1"


def _fields(response: Any) -> set[str]:
    return {".".join(map(str, e["loc"])) for e in response.json().get("errors", [])}


async def _created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


def _fr_party(name: str = "fr-justice-ap", **extra: Any) -> dict[str, Any]:
    return factories.routing_party(owner="FR", name=name) | extra


async def test_de_cannot_attach_to_fr_s_party_unless_fr_shares_it(api: Api) -> None:
    async with api.client("admin-fr") as fr, api.client("admin-de") as de:
        party = await _created(await fr.post(f"{V1}/routing-parties", json=_fr_party()))
        url = f"{V1}/routing-parties/{party['id']}"
        court = factories.authority(routing_party_name="fr-justice-ap")
        refused = await de.post(f"{V1}/authorities", json=court)
        assert refused.status_code == 422, refused.text
        assert _fields(refused) == {"routing_party_name"}
        assert "does not serve DE" in refused.text

        # FR shares its access point with DE: now DE may name it ...
        shared = await fr.patch(url, json={"shared_with": ["de"]},
                                headers={"If-Match": '"1"', "content-type":
                                         "application/merge-patch+json"})  # fmt: skip
        assert shared.status_code == 200, shared.text
        assert shared.json()["shared_with"] == ["DE"]
        await _created(await de.post(f"{V1}/authorities", json=court))


async def test_fr_deletes_its_own_party_with_its_own_referrers(api: Api) -> None:
    async with api.client("admin-fr") as fr, api.client("admin-de") as de:
        party = await _created(await fr.post(f"{V1}/routing-parties", json=_fr_party()))
        await _created(await fr.post(f"{V1}/authorities", json=factories.authority(
            owner="FR", code="FR:COURT-1", routing_party_name="fr-justice-ap")))  # fmt: skip
        # DE tried to hang on to it and was refused, so nothing of DE's blocks the delete.
        assert (await de.post(f"{V1}/authorities", json=factories.authority(
            routing_party_name="fr-justice-ap"))).status_code == 422  # fmt: skip
        gone = await fr.delete(f"{V1}/routing-parties/{party['id']}?cascade=true",
                               headers={"If-Match": '"1"'})  # fmt: skip
    assert gone.status_code == 204, gone.text


async def test_a_certificate_belongs_to_one_owner_s_parties(api: Api) -> None:
    plain = factories.certificate_pem(name="fr-justice-ap.example.fr")
    french = factories.certificate_pem(name="ap.justice.fr", country="FR")
    certificate = [{"use": "signing", "pem": plain}]
    async with api.client("admin-fr") as fr, api.client("admin-de") as de:
        await _created(await fr.post(f"{V1}/routing-parties", json=_fr_party(
            certificates=certificate)))  # fmt: skip
        # DE copies FR's public certificate into a party of its own: refused.
        copied = await de.post(f"{V1}/routing-parties", json=factories.routing_party(
            certificates=certificate))  # fmt: skip
        assert copied.status_code == 422, copied.text
        assert _fields(copied) == {"certificates.0.pem"} and "FR's routing party" in copied.text
        # A certificate naming France (C=FR) is France's before France has registered it.
        squat = await de.post(f"{V1}/routing-parties", json=factories.routing_party(
            certificates=[{"use": "signing", "pem": french}]))  # fmt: skip
        assert squat.status_code == 422, squat.text
        assert _fields(squat) == {"certificates"} and "C=FR" in squat.text
        # FR rotates its own certificate (to the one naming France): accepted.
        sha = (await fr.get(f"{V1}/routing-parties", params={"name": "fr-justice-ap"})
               ).json()["items"][0]["certificates"][0]["sha256"]  # fmt: skip
        rotated = await fr.post(f"{V1}/routing-parties/certificate-rotation",
                                json={"replaces_sha256": sha, "pem": french})  # fmt: skip
        assert rotated.status_code == 200, rotated.text
        # ... and DE may not rotate its way into one of FR's either.
        other = factories.certificate_pem(name="fr-backup.example.fr")
        await _created(await fr.post(f"{V1}/routing-parties", json=_fr_party(
            name="fr-backup-ap", certificates=[{"use": "signing", "pem": other}])))  # fmt: skip
        await _created(await de.post(f"{V1}/routing-parties", json=factories.routing_party(
            certificates=[{"use": "signing", "pem": factories.certificate_pem()}])))  # fmt: skip
        de_sha = (await de.get(f"{V1}/routing-parties", params={"name": "de-ap"})
                  ).json()["items"][0]["certificates"][0]["sha256"]  # fmt: skip
        taken = await de.post(f"{V1}/routing-parties/certificate-rotation",
                              json={"replaces_sha256": de_sha, "pem": other})  # fmt: skip
        assert taken.status_code == 422, taken.text
        assert "fr-backup-ap" in taken.text


async def test_party_names_and_ids_are_namespaced_per_owner(api: Api) -> None:
    async with api.client("admin-de") as de, api.client("admin-fr") as fr:
        early = await de.post(f"{V1}/routing-parties",
                              json=factories.routing_party(name="fr-justice-ap-2027"))  # fmt: skip
        assert early.status_code == 422 and "name" in _fields(early), early.text
        party_id = await de.post(f"{V1}/routing-parties", json=factories.routing_party(
            identifiers=[{"party_id": "fr-justice-ap-2027"}]))  # fmt: skip
        assert party_id.status_code == 422 and _fields(party_id) == {"identifiers"}, party_id.text
        # The name stays free for France.
        await _created(await fr.post(f"{V1}/routing-parties",
                                     json=_fr_party(name="fr-justice-ap-2027")))  # fmt: skip


async def _resolve(api: Api, services: Services, **params: Any) -> dict[str, Any]:
    head = await services.reads.head()
    async with api.client("reader") as c:
        for _ in range(100):
            answer = await c.get(f"{V1}/resolve", params={"country": "FR"} | params)
            assert answer.status_code == 200, answer.text
            if answer.json()["revision"] >= head:
                return dict(answer.json())
            await asyncio.sleep(0.05)
    raise AssertionError("the lookup index did not catch up")


async def test_eurojust_cannot_displace_a_national_court(api: Api, services: Services) -> None:
    geo = [{"scheme": "postal-code", "code": "69001", "country": "FR"}]
    async with api.client("admin-fr") as fr, api.client("admin-ej") as ej:
        await _created(
            await fr.post(
                f"{V1}/authorities",
                json=factories.authority(
                    owner="FR", code="FR:TJ-LYON", names={"fr": "Tribunal judiciaire de Lyon"}
                ),
            )
        )
        for instrument in ("eaw", "eurojust-art21"):
            await _created(
                await fr.post(
                    f"{V1}/jurisdiction-criteria",
                    json=factories.criterion(
                        owner="FR",
                        ref=f"lyon-{instrument}",
                        authority_code="FR:TJ-LYON",
                        instrument=instrument,
                        competence="receive",
                        geo=geo,
                    ),
                )
            )
        await _created(
            await ej.post(
                f"{V1}/authorities",
                json=factories.authority(owner="EJ", code="EJ:EUROJUST", names={"en": "Eurojust"}),
            )
        )
        taking = await ej.post(
            f"{V1}/jurisdiction-criteria",
            json=factories.criterion(
                owner="EJ",
                ref="ej-eaw",
                authority_code="EJ:EUROJUST",
                instrument="eaw",
                competence="receive",
                geo=geo,
                priority=0,
            ),
        )
        assert taking.status_code == 422, taking.text
        assert _fields(taking) == {"geo"} and "eurojust-art21" in taking.text
        await _created(
            await ej.post(
                f"{V1}/jurisdiction-criteria",
                json=factories.criterion(
                    owner="EJ",
                    ref="ej-art21",
                    authority_code="EJ:EUROJUST",
                    instrument="eurojust-art21",
                    competence="receive",
                    geo=geo,
                    priority=0,
                ),
            )
        )
    answer = await _resolve(api, services, instrument="eurojust-art21", competence="receive",
                            postal_code="69001")  # fmt: skip
    assert [m["authority"]["code"] for m in answer["matches"]] == ["FR:TJ-LYON"]
    assert [m["authority"]["code"] for m in answer["eurojust"]] == ["EJ:EUROJUST"]
    eaw = await _resolve(api, services, instrument="eaw", competence="receive",
                         postal_code="69001")  # fmt: skip
    assert [m["authority"]["code"] for m in eaw["matches"]] == ["FR:TJ-LYON"]
    assert eaw["eurojust"] == []


async def test_a_refused_write_on_another_owner_s_entry_is_audited_whatever_its_body(
    api: Api, services: Services
) -> None:
    async with api.client("admin-fr") as fr, api.client("admin-de") as de:
        court = await _created(await fr.post(f"{V1}/authorities", json=factories.authority(
            owner="FR", code="FR:COURT-1")))  # fmt: skip
        url = f"{V1}/authorities/{court['id']}"
        junk = {"owner": "FR", "code": 42, "names": "not names"}
        attempts = [
            await de.put(url, json=junk, headers={"If-Match": '"1"', "X-Request-ID": "de-1"}),
            await de.post(f"{V1}/authorities", json=junk),
        ]
    # A 403 (the owner is asked first), not a 422 telling DE about the body's content.
    assert [a.status_code for a in attempts] == [403, 403], [a.text for a in attempts]
    await api.app.state.gate.refusals.flush(services.sessions, everything=True)
    async with services.sessions() as session:
        events = (await session.scalars(
            select(AuditEvent).where(AuditEvent.outcome == "denied-403"))).all()  # fmt: skip
    by_target = {e.target: e for e in events}
    assert set(by_target) == {f"PUT {url}", f"POST {V1}/authorities"}
    assert by_target[f"PUT {url}"].client_request_id == "de-1"
    assert by_target[f"PUT {url}"].request_id != "de-1"
