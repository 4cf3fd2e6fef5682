"""The console signs in through any standard OpenID provider: here npm `oidc-provider`
(tests/support/oidc/, its own login and consent pages), authorization code + PKCE, the
access token for this API (RFC 8707 `resource`), the person's owner from their account.
Sign-out is RP-initiated: the provider's end-session page, then back to the console.
"""

from __future__ import annotations

import json
import selectors
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.console.support import CHROMIUM
from tests.support.issuer import new_key
from tests.support.nginx import free_port
from tests.support.service_process import Pki, Service, make_pki, running_service, stop

OIDC_DIR = Path(__file__).resolve().parents[1] / "support" / "oidc"
NODE = shutil.which("node")
SECRET = "console-secret-0123456789abcdef"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(
        not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir(),
        reason="run `npm ci --prefix tests/support/oidc` (make oidc)",
    ),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed"),
]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), ())


@pytest.fixture(scope="module")
def provider_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def service(pki: Pki, provider_port: int,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:  # fmt: skip
    variables = {
        "CDB_DEV_ISSUER": "false",
        "CDB_TLS_CERT_FILE": str(pki.server_cert),
        "CDB_TLS_KEY_FILE": str(pki.server_key),
        "CDB_CLIENT_CA_FILES": json.dumps([str(pki.ca)]),
        "CDB_OIDC_ISSUER": f"https://127.0.0.1:{provider_port}",
        "CDB_OIDC_CA_FILE": str(pki.ca),
        "CDB_CONSOLE_CLIENT_ID": "cdb-console",
        "CDB_CONSOLE_CLIENT_SECRET": SECRET,
        "CDB_CONSOLE_SCOPE": "openid profile cdb.read cdb.write",
        "CDB_CONSOLE_RESOURCE": "cdb-api",
    }
    with running_service(tmp_path_factory.mktemp("service"), variables, ca=pki.ca) as running:
        yield running


@pytest.fixture(scope="module")
def provider(pki: Pki, provider_port: int, service: Service,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # fmt: skip
    console = f"https://127.0.0.1:{service.port}/console"
    with oidc_provider(tmp_path_factory.mktemp("provider"), pki, provider_port, console) as url:
        yield url


@contextmanager
def oidc_provider(root: Path, pki: Pki, port: int, console: str) -> Iterator[str]:
    """npm oidc-provider at https://127.0.0.1:PORT, knowing the console (its callback and
    sign-out return under `console`) and one person, Camille Martin, administrator of FR."""
    key = new_key()
    (root / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=True)]}))
    (root / "clients.json").write_text(json.dumps([{
        "client_id": "cdb-console", "client_secret": SECRET,
        "grant_types": ["authorization_code"], "response_types": ["code"],
        "redirect_uris": [f"{console}/auth/callback"],
        "post_logout_redirect_uris": [f"{console}/signed-out"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid profile cdb.read cdb.write",
    }]))  # fmt: skip
    (root / "accounts.json").write_text(json.dumps(
        {"camille": {"name": "Camille Martin", "cdb_owner": "FR"}}))  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    log = (root / "provider.log").open("wb")
    process = subprocess.Popen([
        str(NODE), str(OIDC_DIR / "provider.mjs"), "--port", str(port),
        "--issuer", url, "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
        "--jwks", str(root / "jwks.json"), "--clients", str(root / "clients.json"),
        "--audience", "cdb-api", "--accounts", str(root / "accounts.json"),
    ], stdout=subprocess.PIPE, stderr=log)  # fmt: skip
    log.close()
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(30)
    line = process.stdout.readline().decode().strip() if ready else ""
    try:
        assert line == f"READY {url}", (root / "provider.log").read_text()[-3000:]
        yield url
    finally:
        stop(process)
        process.stdout.close()


def test_sign_in_and_out_through_a_standard_provider(service: Service, provider: str) -> None:
    from playwright.sync_api import sync_playwright

    base = service.base_url
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        try:
            page = chromium.new_context(ignore_https_errors=True).new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{base}/console/authorities")
            page.get_by_role("link", name="Sign in").click()
            page.wait_for_url(f"{provider}/**")
            page.locator("input[name=login]").fill("camille")
            page.locator("input[name=password]").fill("any password")
            page.get_by_role("button", name="Sign-in").click()
            page.get_by_role("button", name="Continue").click()
            # Back at the page first asked for, as the person, with her owner's rights.
            page.wait_for_url(f"{base}/console/authorities")
            header = page.locator("header").inner_text()
            assert "Camille Martin, administrator of FR" in header, header
            assert "New entry" in page.locator("main").inner_text()

            page.get_by_role("button", name="Sign out").click()
            page.get_by_role("button", name="Yes, sign me out").click()
            page.wait_for_url(f"{base}/console/signed-out")
            page.goto(f"{base}/console/")
            assert "/console/sign-in" in page.url
        finally:
            chromium.close()
