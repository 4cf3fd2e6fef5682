"""The console's rollout page, in Debian's Chromium through Playwright: France's routing
party takes a new encryption certificate into use in three days; its administrator sees
the change with no acknowledgement, then confirmed once its Domibus agent acknowledged
the package as of use_from; Germany's administrator sees it only for its own access
points (they must import France's new certificate too). Checked with axe-core
and screenshotted (var/screenshots/console/rollouts-*)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest

from cdb_service.security.dev import DevPki
from tests.console.support import (
    AXE,
    CHROMIUM,
    SCREENSHOTS,
    Api,
    browser,
    origin,
    renewed_certificate_pem,
)
from tests.support.service_process import Service, running_service

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make chromium)"),
    pytest.mark.skipif(not AXE.exists(), reason="axe-core is missing: run `make axe`"),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("console-rollouts")
    pki = DevPki(root / "var" / "pki").ensure()
    with running_service(root, {}, ca=pki.ca) as running:
        yield running


def _sign_in(b: object, base: str, client: str) -> None:
    page = b.page  # type: ignore[attr-defined]
    page.goto(f"{base}/console/")
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url("**/dev-issuer/authorize**")
    page.get_by_role("button", name=client).click()
    page.wait_for_url(f"{base}/console/")


def test_an_administrator_follows_a_rollover_to_confirmed(service: Service) -> None:
    fr = Api(service, "admin-fr")
    party = fr.first("routing-parties", owner="FR")
    use_from = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(microsecond=0)
    certificates = [{"use": c["use"], "pem": c["pem"]} for c in party.get("certificates", [])]
    certificates.append({"use": "encryption", "pem": renewed_certificate_pem(),
                         "accept_from": dt.datetime.now(dt.UTC).isoformat(),
                         "use_from": use_from.isoformat()})  # fmt: skip
    fr.patch("routing-parties", party, {"certificates": certificates})
    base = origin(service)
    with browser(base, SCREENSHOTS) as b:
        page = b.page
        _sign_in(b, base, "admin-fr")
        page.get_by_role("link", name="Rollouts").click()
        page.wait_for_url(f"{base}/console/rollouts")
        row = page.locator("tr", has_text=f"{party['name']} (FR)").filter(has_text="used").first
        # The seeded parties all offer one service: every access point imports FR's change.
        counted = re.search(r"(\d+) of (\d+)", row.inner_text())
        assert counted is not None and counted[1] == "0" and int(counted[2]) > 1
        total = counted[2]
        assert "No acknowledgement:" in row.inner_text() and party["name"] in row.inner_text()
        b.check("rollouts-unconfirmed")

        with fr.http() as http:
            got = http.get(f"/packages/{party['name']}", params={"at": use_from.isoformat()})
            assert got.status_code == 200, got.text
            ack = http.post(f"/access-points/{party['name']}/acknowledgements", json={
                "package_digest": got.headers["CDB-Package-Digest"],
                "target": {"kind": "domibus", "name": "gw-1"},
                "applied_at": dt.datetime.now(dt.UTC).isoformat(),
                "answer": {"id": 42, "description": "cdb package"},
            })  # fmt: skip
            assert ack.status_code == 201, ack.text
        page.reload()
        row = page.locator("tr", has_text=f"{party['name']} (FR)").filter(has_text="used").first
        assert f"1 of {total}" in row.inner_text()
        assert f"Confirmed: {party['name']} (domibus gw-1)" in row.inner_text()
        b.check("rollouts-confirmed")

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/console/signed-out")
        _sign_in(b, base, "admin-de")
        page.goto(f"{base}/console/rollouts")
        # Germany sees France's switch only as far as its own access points must import it.
        row = page.locator("tr", has_text=f"{party['name']} (FR)").filter(has_text="used").first
        assert "gw-1" not in row.inner_text() and "de-" in row.inner_text()
        listed = row.locator("td").last.inner_text().split(":", 1)[1]
        assert all(name.strip().startswith("de-") for name in listed.split(","))
        b.check("rollouts-other-owner")

    assert not b.violations, "\n".join(b.violations)
    assert not b.problems, "\n".join(b.problems)
    for name in b.checked:
        for width in (1280, 360):
            assert (SCREENSHOTS / f"{name}-{width}.png").stat().st_size > 5_000
