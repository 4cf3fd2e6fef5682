"""Two-phase certificate rollover on routing parties (issue 28 item 1): each certificate is
accepted before it is used and stays accepted after its successor is used; a rollover
that leaves no usable certificate is refused, one that gives access points too little
notice is named by the quality report, and the routing table carries the windows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.support import factories
from tests.support.api import Api, As

V1 = "/api/v1"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _at(days: float) -> str:
    return (NOW + dt.timedelta(days=days)).isoformat()


def _cert(pem: str, use: str = "encryption", **window: str) -> dict[str, Any]:
    return {"use": use, "pem": pem} | window


async def _party(c: As, certificates: list[dict[str, Any]], name: str = "fr-ap") -> Any:
    body = factories.routing_party(owner="FR", name=name, certificates=certificates)
    return await c.post(f"{V1}/routing-parties", json=body)


async def test_windows_default_to_the_certificate_s_validity_and_are_kept_in_order(
    api: Api,
) -> None:
    pem = factories.certificate_pem(365, "fr-ap")
    async with api.client("admin-fr") as c:
        plain = await _party(c, [_cert(pem)])
        assert plain.status_code == 201, plain.text
        (cert,) = plain.json()["certificates"]
        assert cert["accept_from"] == cert["use_from"] == cert["not_before"]
        assert cert["accept_until"] == cert["not_after"]
        for wrong in (
            {"accept_from": _at(10), "use_from": _at(5)},  # used before it is accepted
            {"use_from": _at(10), "accept_until": _at(10)},  # accepted only until its use
            {"accept_until": _at(400)},  # past the certificate's own end
            {"accept_from": _at(-30)},  # before the certificate's own start
        ):
            refused = await _party(c, [_cert(pem, **wrong)], name="fr-ap-wrong")
            assert refused.status_code == 422, (wrong, refused.text)
            assert refused.json()["errors"][0]["loc"][:2] == ["certificates", 0], refused.text


async def test_a_rollover_is_two_phase_and_a_gap_is_refused(api: Api) -> None:
    old = factories.certificate_pem(60, "fr-ap-2026")
    new = factories.certificate_pem(400, "fr-ap-2027")
    async with api.client("admin-fr") as c:
        # The new one accepted from now, used in 30 days; the old accepted until day 50.
        overlapping = [_cert(old, accept_until=_at(50)),
                       _cert(new, accept_from=_at(0), use_from=_at(30))]  # fmt: skip
        created = await _party(c, overlapping)
        assert created.status_code == 201, created.text
        # The old one accepted only until day 20, the new used from day 30: ten days in
        # which no encryption certificate is usable.
        gap = [_cert(old, accept_until=_at(20)), _cert(new, accept_from=_at(0), use_from=_at(30))]
        refused = await _party(c, gap, name="fr-ap-gap")
        assert refused.status_code == 422
        assert "no encryption certificate would be usable" in refused.text
        # Different uses do not replace each other.
        apart = [_cert(old, use="signing", accept_until=_at(20)),
                 _cert(new, accept_from=_at(0), use_from=_at(30))]  # fmt: skip
        assert (await _party(c, apart, name="fr-ap-apart")).status_code == 201
        table = await c.get(f"{V1}/routing-table", params={"owner": "FR"})
    assert table.status_code == 200, table.text
    party = next(p for p in table.json()["parties"] if p["name"] == "fr-ap")
    windows = {c["subject"].split("CN=")[1].split(",")[0]: c for c in party["certificates"]}
    assert windows["fr-ap-2027"]["use_from"].startswith(_at(30)[:16])
    assert windows["fr-ap-2026"]["accept_until"].startswith(_at(50)[:16])


async def test_the_quality_report_names_rollovers_that_give_too_little_notice(
    api: Api,
) -> None:
    old = factories.certificate_pem(200, "fr-ap-old")
    hurried = factories.certificate_pem(400, "fr-ap-hurried")
    safe = factories.certificate_pem(400, "fr-ap-safe")
    async with api.client("admin-fr") as c:
        # Used one day after it is first accepted; the old one gone two days later.
        short = [_cert(old, accept_until=_at(3)),
                 _cert(hurried, accept_from=_at(0), use_from=_at(1))]  # fmt: skip
        assert (await _party(c, short, name="fr-ap-short")).status_code == 201
        # Three weeks to load the new one, three more weeks of the old one.
        ample = [_cert(old, accept_until=_at(42)),
                 _cert(safe, accept_from=_at(0), use_from=_at(21))]  # fmt: skip
        assert (await _party(c, ample, name="fr-ap-ample")).status_code == 201
        report = await c.get(f"{V1}/quality", params={"owner": "FR"})
    assert report.status_code == 200, report.text
    found = {(f["rule"], f["key"]) for f in report.json()["findings"]
             if f["rule"].startswith("rollover-")}  # fmt: skip
    assert found == {("rollover-unsafe", "fr-ap-short"), ("rollover-late", "fr-ap-short")}
