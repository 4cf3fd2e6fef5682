"""What the console's tests share: a dev service, planting entries through the API, signing
in over plain HTTP (for the session tests) and a browser that checks every page it opens
(axe-core, its own CSP, horizontal scrolling) and screenshots it at 1280 and 360 px."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cdb_service.security.dev import DevPki, token_for
from cdb_service.security.pki import issue, make_ca
from tests.support.service_process import Service
from tests.support.tls import client_context

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "support" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "var" / "screenshots" / "console"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTHS = (1280, 360)


def origin(service: Service) -> str:
    """The dev issuer lives at https://localhost:PORT: the console is opened there too."""
    return f"https://localhost:{service.port}"


@dataclass
class Api:
    """Calls to the service's API as a dev client (its certificate and a bound token)."""

    service: Service
    client: str

    def http(self) -> httpx.Client:
        pki = DevPki(self.service.data_dir / "pki")
        token = token_for(pki, self.client, f"{origin(self.service)}/dev-issuer", "cdb-api",
                          "cdb_owner")  # fmt: skip
        return httpx.Client(
            base_url=origin(self.service) + "/api/v1", timeout=30,
            verify=client_context(pki.ca, pki.client_cert(self.client),
                                  pki.client_key(self.client)),
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip

    def first(self, kind: str, **query: str) -> dict[str, Any]:
        with self.http() as http:
            answer = http.get(f"/{kind}", params={"limit": "1", **query})
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["items"][0])

    def patch(self, kind: str, entry: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        with self.http() as http:
            headers = {"If-Match": f'"{entry["version"]}"',
                       "Content-Type": "application/merge-patch+json"}  # fmt: skip
            answer = http.patch(f"/{kind}/{entry['id']}", content=json.dumps(body),
                                headers=headers)  # fmt: skip
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def soon_expired_certificate_pem(seconds: float) -> str:
    """A certificate that expires `seconds` from now: the registry refuses one that has
    already expired, so it is planted valid and left to run out."""
    now = dt.datetime.now(dt.UTC)
    ca = make_ca("Old AS4 CA", organisation="tests")
    old = issue(ca, "fr-old-ap", organisation="tests", not_before=now - dt.timedelta(days=400),
                not_after=now + dt.timedelta(seconds=seconds))  # fmt: skip
    return old.cert_pem


def renewed_certificate_pem() -> str:
    ca = make_ca("New AS4 CA", organisation="tests")
    return issue(ca, "fr-new-ap", organisation="tests").cert_pem


@contextmanager
def sign_in_http(service: Service, client: str) -> Iterator[httpx.Client]:
    """A signed-in console session without a browser: the dev issuer's page, its button."""
    pki = DevPki(service.data_dir / "pki")
    with httpx.Client(base_url=origin(service), verify=client_context(pki.ca),
                      timeout=30) as http:  # fmt: skip
        _sign_in(http, client)
        yield http


def _sign_in(http: httpx.Client, client: str) -> None:
    started = http.get("/console/auth/start", params={"next": "/console/"})
    assert started.status_code == 303, started.text
    authorize = http.get(started.headers["location"])
    assert authorize.status_code == 200, authorize.text
    fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"',
                             authorize.text))  # fmt: skip
    fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
    chosen = http.post("/dev-issuer/authorize", data=fields | {"dev_client": client})
    assert chosen.status_code == 303, chosen.text
    back = http.get(chosen.headers["location"])
    assert back.status_code == 200 and "Signed in" in back.text, back.text


def confirm_of(html: str) -> str:
    """The token of a preview's confirmation (what a save will change, shown first)."""
    found = re.search(r'name="confirm" value="([^"]+)"', html)
    assert found, "no confirmation on the page: " + html[:3000]
    return found.group(1)


def previewed_then_confirmed(http: Any, path: str, data: dict[str, str]) -> Any:
    """A console form sent as a person does: its preview first (nothing written), then the
    same form again with the preview's confirmation."""
    preview = http.post(path, data=data)
    assert preview.status_code == 200 and "nothing is saved yet" in preview.text, preview.text
    return http.post(path, data=data | {"confirm": confirm_of(preview.text)})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@dataclass
class Browser:
    """A Chromium page that checks and screenshots every console page it lands on."""

    page: Any
    base: str
    shots: Path
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def check(self, name: str) -> None:
        """axe-core (serious or critical = a failure), no horizontal scroll, screenshots."""
        page = self.page
        page.wait_for_load_state("load")
        page.evaluate(AXE.read_text())
        found = page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".filter(v => ['serious', 'critical'].includes(v.impact))"
            ".map(v => v.id + ': ' + v.help + ' ' + v.nodes.map(n => n.target).join(' | '))"
        )
        self.violations += [f"{name}: {v}" for v in found]
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            overflow = page.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if overflow > 0:
                self.problems.append(f"{name}: {overflow} px of horizontal scrolling at {width}")
            page.screenshot(path=str(self.shots / f"{name}-{width}.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})
        self.checked.append(name)


@contextmanager
def browser(base: str, shots: Path, locale: str = "en-GB") -> Iterator[Browser]:
    """Chromium asking for pages in `locale` (its Accept-Language), as a person's browser
    set to that language does."""
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        try:
            context = chromium.new_context(viewport={"width": 1280, "height": 900},
                                           ignore_https_errors=True,
                                           locale=locale)  # fmt: skip
            page = context.new_page()
            page.set_default_timeout(20_000)
            checker = Browser(page, base, shots)
            page.on("console", lambda m: checker.problems.append(m.text)
                    if m.type == "error" and "Security Policy" in m.text else None)  # fmt: skip
            page.on("request", lambda r: checker.problems.append(f"foreign request {r.url}")
                    if not r.url.startswith((base, "data:")) else None)  # fmt: skip
            yield checker
        finally:
            chromium.close()
