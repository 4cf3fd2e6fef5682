"""The console behind the shipped nginx, in Chromium: sign in through a standard OpenID
provider (npm `oidc-provider`), edit an entry, sign out.

The service runs in proxy mode on its Unix socket behind `deploy/nginx/cdb-service.conf`
as shipped. nginx passes `Host` without its port, so a callback built from the request
would name an address the provider does not know (issue 30: `http://localhost/...`);
the console builds it from `CDB_PUBLIC_URL`, nginx's address, whatever `Host` says.
Every answer through nginx carries HSTS. Screenshots: var/screenshots/console/nginx-*.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.console.support import CHROMIUM, SCREENSHOTS
from tests.console.test_console_oidc_provider import NODE, OIDC_DIR, SECRET, oidc_provider
from tests.support.nginx import Nginx, free_port, requires_nginx, running_nginx
from tests.support.service_process import Pki, Service, make_pki, running_service

pytestmark = [
    pytest.mark.slow,
    requires_nginx,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(
        not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir(),
        reason="run `npm ci --prefix tests/support/oidc` (make oidc)",
    ),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed"),
]


@dataclass
class Deployed:
    nginx: Nginx
    service: Service
    provider: str

    @property
    def public(self) -> str:
        return self.nginx.base_url


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    root = tmp_path_factory.mktemp("behind-nginx")
    pki: Pki = make_pki(root / "pki", ())
    socket_path = root / "service" / "var" / "cdb.sock"
    provider_port = free_port()
    provider = f"https://127.0.0.1:{provider_port}"
    # nginx first: its port is the public address the service and the provider are told.
    (root / "provider").mkdir()
    with running_nginx(root / "nginx", upstream=f"unix:{socket_path}", cert=pki.server_cert,
                       key=pki.server_key) as nginx:  # fmt: skip
        variables = {
            "CDB_TLS_MODE": "proxy",
            "CDB_PUBLIC_URL": nginx.base_url,
            "CDB_DEV_ISSUER": "false",
            "CDB_CLIENT_CA_FILES": json.dumps([str(pki.ca)]),
            "CDB_OIDC_ISSUER": provider,
            "CDB_OIDC_CA_FILE": str(pki.ca),
            "CDB_CONSOLE_CLIENT_ID": "cdb-console",
            "CDB_CONSOLE_CLIENT_SECRET": SECRET,
            "CDB_CONSOLE_SCOPE": "openid profile cdb.read cdb.write",
            "CDB_CONSOLE_RESOURCE": "cdb-api",
        }
        with running_service(root / "service", variables) as service, \
                oidc_provider(root / "provider", pki, provider_port,
                              f"{nginx.base_url}/console"):  # fmt: skip
            yield Deployed(nginx, service, provider)


def test_the_callback_is_the_configured_address_whatever_host_says(deployed: Deployed) -> None:
    with httpx.Client(verify=False, timeout=20) as http:
        started = http.get(f"{deployed.public}/console/auth/start",
                           headers={"Host": "evil.example"})  # fmt: skip
        health = http.get(f"{deployed.public}/health/live")
    assert started.status_code == 303, started.text[:300]
    query = parse_qs(urlsplit(started.headers["location"]).query)
    assert query["redirect_uri"] == [f"{deployed.public}/console/auth/callback"]
    for answer in (started, health):
        assert answer.headers["strict-transport-security"] == "max-age=31536000"


def test_sign_in_edit_and_sign_out_through_the_shipped_nginx(deployed: Deployed) -> None:
    from playwright.sync_api import sync_playwright

    base, shots = deployed.public, SCREENSHOTS
    shots.mkdir(parents=True, exist_ok=True)

    def shot(page: object, name: str) -> None:
        page.screenshot(path=str(shots / f"nginx-{name}.png"), full_page=True)  # type: ignore[attr-defined]

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        try:
            context = chromium.new_context(viewport={"width": 1280, "height": 900},
                                           ignore_https_errors=True)  # fmt: skip
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{base}/console/authorities")
            page.get_by_role("link", name="Sign in").click()
            page.wait_for_url(f"{deployed.provider}/**")
            page.locator("input[name=login]").fill("camille")
            page.locator("input[name=password]").fill("any password")
            page.get_by_role("button", name="Sign-in").click()
            page.get_by_role("button", name="Continue").click()
            page.wait_for_url(f"{base}/console/authorities")
            assert "Camille Martin, administrator of FR" in page.locator("header").inner_text()
            shot(page, "signed-in")

            page.get_by_label("Search", exact=False).fill("paris")
            page.get_by_role("button", name="Search").click()
            page.locator("main table a").first.click()
            page.get_by_role("link", name="Edit").click()
            street = page.get_by_label("Street", exact=False)
            street.fill("1 rue de la Cité (via nginx)")
            page.get_by_role("button", name="Save").click()
            page.get_by_role("button", name="Confirm and save").click()
            main = page.locator("main").inner_text()
            assert re.search(r"Saved as version \d+", main), main[:500]
            assert "(via nginx)" in page.locator("dl.facts.entry").inner_text()
            shot(page, "edited")

            page.get_by_role("button", name="Sign out").click()
            page.get_by_role("button", name="Yes, sign me out").click()
            page.wait_for_url(f"{base}/console/signed-out")
            shot(page, "signed-out")
            page.goto(f"{base}/console/")
            assert "/console/sign-in" in page.url
        finally:
            chromium.close()
