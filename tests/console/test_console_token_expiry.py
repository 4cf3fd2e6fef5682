"""Console sessions follow the identity provider (npm `oidc-provider`, tests/support/oidc/):
the access token's expiry ends the right to write; the refresh token renews it and reads
the person's roles again; a person the provider no longer knows, or one it gives no
refresh token, must sign in again to change anything, and nothing is changed meanwhile.

The provider issues access tokens for TTL_S seconds; the accounts file is read at each
refresh, so that a test withdraws a right there and sees it at the next refresh.
"""

from __future__ import annotations

import json
import re
import selectors
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from tests.console.support import csrf_of, previewed_then_confirmed
from tests.support.issuer import new_key
from tests.support.nginx import free_port
from tests.support.service_process import Pki, Service, make_pki, running_service, stop
from tests.support.tls import client_context

OIDC_DIR = Path(__file__).resolve().parents[1] / "support" / "oidc"
NODE = shutil.which("node")
SECRET = "console-secret-0123456789abcdef"
TTL_S = 3
ACCOUNTS = {
    "camille": {"name": "Camille Martin", "cdb_owner": "FR"},
    "dominique": {"name": "Dominique Bernard", "cdb_owner": "FR", "refresh_tokens": False},
    "jules": {"name": "Jules Petit", "cdb_owner": "FR"},
    "lea": {"name": "Léa Moreau", "cdb_owner": "FR"},
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(
        not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir(),
        reason="run `npm ci --prefix tests/support/oidc` (make oidc)",
    ),
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
        # The API's leeway would let an expired token through for its length: none here.
        "CDB_OIDC_LEEWAY_S": "0",
        "CDB_CONSOLE_CLIENT_ID": "cdb-console",
        "CDB_CONSOLE_CLIENT_SECRET": SECRET,
        "CDB_CONSOLE_SCOPE": "openid profile cdb.read cdb.write",
        "CDB_CONSOLE_RESOURCE": "cdb-api",
    }
    with running_service(tmp_path_factory.mktemp("service"), variables, ca=pki.ca) as running:
        yield running


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("accounts") / "accounts.json"
    path.write_text(json.dumps(ACCOUNTS))
    return path


@pytest.fixture(scope="module")
def provider(pki: Pki, provider_port: int, service: Service, accounts: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # fmt: skip
    root = tmp_path_factory.mktemp("provider")
    key = new_key()
    (root / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=True)]}))
    console = f"https://127.0.0.1:{service.port}/console"
    (root / "clients.json").write_text(json.dumps([{
        "client_id": "cdb-console", "client_secret": SECRET,
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "redirect_uris": [f"{console}/auth/callback"],
        "post_logout_redirect_uris": [f"{console}/signed-out"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid profile cdb.read cdb.write",
    }]))  # fmt: skip
    url = f"https://127.0.0.1:{provider_port}"
    log = (root / "provider.log").open("wb")
    process = subprocess.Popen([
        str(NODE), str(OIDC_DIR / "provider.mjs"), "--port", str(provider_port),
        "--issuer", url, "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
        "--jwks", str(root / "jwks.json"), "--clients", str(root / "clients.json"),
        "--audience", "cdb-api", "--accounts", str(accounts), "--ttl", str(TTL_S),
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


def _form(html: str) -> tuple[str, dict[str, str]]:
    action = re.search(r'<form[^>]*action="([^"]+)"', html)
    assert action, html[:2000]
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    return action.group(1), hidden


@contextmanager
def sign_in(service: Service, pki: Pki, provider: str, login: str) -> Iterator[httpx.Client]:
    """Through the provider's own login and consent pages, as a browser would."""
    with httpx.Client(base_url=service.base_url, verify=client_context(pki.ca), timeout=30,
                      follow_redirects=True) as http:  # fmt: skip
        _through_the_provider(http, login)
        http.follow_redirects = False
        yield http


def _through_the_provider(http: httpx.Client, login: str) -> None:
    login_page = http.get("/console/auth/start", params={"next": "/console/"})
    action, hidden = _form(login_page.text)
    consent = http.post(urljoin(str(login_page.url), action),
                        data=hidden | {"login": login, "password": "x"})  # fmt: skip
    action, hidden = _form(consent.text)
    back = http.post(urljoin(str(consent.url), action), data=hidden)
    assert back.status_code == 200 and "Signed in" in back.text, back.text[:2000]


def _court(http: httpx.Client) -> tuple[str, int]:
    listing = http.get("/console/authorities", params={"owner": "FR"})
    assert listing.status_code == 200, listing.text[:2000]
    found = re.search(r'href="/console/authorities/([0-9a-f-]{36})"', listing.text)
    assert found, listing.text[:2000]
    return found.group(1), _version(http, found.group(1))


def _version(http: httpx.Client, court: str) -> int:
    form = http.get(f"/console/authorities/{court}/edit")
    assert form.status_code == 200, form.text[:2000]
    found = re.search(r'name="expected" value="(\d+)"', form.text)
    assert found
    return int(found.group(1))


def _edit(http: httpx.Client, court: str, street: str) -> httpx.Response:
    """An edit saved as a clerk saves it: previewed, then confirmed."""
    path = f"/console/authorities/{court}/edit"
    return previewed_then_confirmed(http, path, _filled(http, court, street))  # type: ignore[no-any-return]


def _filled(http: httpx.Client, court: str, street: str) -> dict[str, Any]:
    """The edit form as a clerk fills it in (sent later by `_send`)."""
    form = http.get(f"/console/authorities/{court}/edit")
    expected = re.search(r'name="expected" value="(\d+)"', form.text)
    assert form.status_code == 200 and expected, form.text[:2000]
    return {"csrf": csrf_of(form.text), "f:address.street": street,
            "expected": expected.group(1)}  # fmt: skip


def _send(http: httpx.Client, court: str, fields: dict[str, Any]) -> httpx.Response:
    return http.post(f"/console/authorities/{court}/edit", data=fields)


def _expire() -> None:
    time.sleep(TTL_S + 1)


def test_a_refresh_token_keeps_writing_after_the_access_token_expired(
    service: Service, pki: Pki, provider: str
) -> None:
    with sign_in(service, pki, provider, "camille") as http:
        court, _ = _court(http)
        assert _edit(http, court, "1 rue du début").status_code == 303
        _expire()
        renewed = _edit(http, court, "2 rue renouvelée")
        assert renewed.status_code == 303, renewed.text[:2000]
        assert "has ended" not in http.get("/console/").text


def test_a_right_withdrawn_at_the_provider_ends_writing_at_the_next_refresh(
    service: Service, pki: Pki, provider: str, accounts: Path
) -> None:
    with sign_in(service, pki, provider, "jules") as http:
        court, version = _court(http)
        assert _edit(http, court, "3 rue d'avant").status_code == 303
        filled = _filled(http, court, "4 rue d'après")
        withdrawn = dict(ACCOUNTS) | {"jules": {"name": "Jules Petit"}}  # no owner any more
        accounts.write_text(json.dumps(withdrawn))
        try:
            _expire()
            refused = _send(http, court, filled)
            assert refused.status_code == 403, refused.text[:2000]
            header = http.get("/console/").text
            assert "administrator of FR" not in header and "reader" in header
            assert http.get(f"/console/authorities/{court}/edit").status_code == 403
        finally:
            accounts.write_text(json.dumps(ACCOUNTS))
    with sign_in(service, pki, provider, "camille") as http:
        assert _version(http, court) == version + 1  # the refused change left no trace


@pytest.mark.parametrize("login", ["dominique", "lea"])
def test_without_a_usable_refresh_token_a_change_needs_a_new_sign_in(
    service: Service, pki: Pki, provider: str, accounts: Path, login: str
) -> None:
    """dominique gets no refresh token; lea's is refused (the provider forgot her)."""
    with sign_in(service, pki, provider, login) as http:
        court, _ = _court(http)
        if login == "lea":
            accounts.write_text(json.dumps({k: v for k, v in ACCOUNTS.items() if k != login}))
        version = _version(http, court)
        filled = _filled(http, court, "5 rue refusée")
        try:
            _expire()
            page = http.get(f"/console/authorities/{court}")
            assert page.status_code == 200  # reading goes on, and the page says why not more
            assert "identity provider has ended" in page.text
            refused = _send(http, court, filled)
            assert refused.status_code == 401
            assert "nothing was changed" in refused.text and "Sign in" in refused.text
            assert _version(http, court) == version
            # Signing out still works.
            out = http.post("/console/sign-out", data={"csrf": csrf_of(page.text)})
            assert out.status_code == 200 and "/session/end" in out.text
        finally:
            accounts.write_text(json.dumps(ACCOUNTS))
