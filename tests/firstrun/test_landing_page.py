"""`/` tells a person (a page) or a program (JSON) what this is and where to go next.

The page is opened in Debian's Chromium through Playwright, at a phone's width and a
desktop's, and screenshotted (kept under /tmp/cdb-landing-*.png for a human to look
at). It must load nothing from anywhere but the service, break no rule of its own
Content-Security-Policy, and never need horizontal scrolling.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.firstrun.conftest import Checkout

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_json_for_programs_names_version_revision_and_links(fresh_checkout: Checkout) -> None:
    answer = httpx.get(f"{fresh_checkout.url}/", headers={"Accept": "application/json"},
                       verify=fresh_checkout.tls())  # fmt: skip
    assert answer.status_code == 200
    info = answer.json()
    assert info["service"] == "cdb-service" and info["version"]
    assert isinstance(info["revision"], int) and info["revision"] >= 1  # seeded
    hrefs = {link["href"] for link in info["links"]}
    assert {
        "/schema",
        "/schema/openapi.json",
        "/health/ready",
        "/health/live",
        "/console/",
    } <= hrefs
    for href in hrefs - {"/schema"}:  # each link works without credentials
        status = httpx.get(fresh_checkout.url + href, verify=fresh_checkout.tls()).status_code
        # The console answers a stranger with its sign-in (or a redirect to it).
        assert status == 200 or (href == "/console/" and status in (302, 303)), (href, status)


def test_the_status_page_is_linked_where_the_operator_published_it() -> None:
    from cdb_service.ops.landing import links
    from cdb_service.settings import Settings

    assert "Status page" not in {link.title for link in links(Settings())}
    published = links(Settings(status_page_url="https://status.cdb.example.eu/"))
    assert [(link.title, link.href) for link in published if link.title == "Status page"] == [
        ("Status page", "https://status.cdb.example.eu/")
    ]


def test_html_for_browsers_is_locked_down(fresh_checkout: Checkout) -> None:
    answer = httpx.get(f"{fresh_checkout.url}/", headers={"Accept": "text/html"},
                       verify=fresh_checkout.tls())  # fmt: skip
    assert answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in answer.text and "http://" not in answer.text


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make chromium)")
@pytest.mark.parametrize("width", [360, 1280])
def test_the_page_reads_well_in_chromium(fresh_checkout: Checkout, width: int,
                                         tmp_path: Path) -> None:  # fmt: skip
    from playwright.sync_api import sync_playwright

    shot = tmp_path / f"landing-{width}.png"
    problems: list[str] = []
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        try:
            context = browser.new_context(viewport={"width": width, "height": 800},
                                          ignore_https_errors=True)  # fmt: skip
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("request", lambda r: requested.append(r.url))
            page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
                    if r.status >= 400 else None)  # fmt: skip
            answer = page.goto(f"{fresh_checkout.url}/")
            assert answer is not None and answer.status == 200
            assert page.locator("h1").inner_text() == "Competent-authorities Database (CDB)"
            masthead = page.locator("header.masthead")
            assert masthead.evaluate("e => getComputedStyle(e).backgroundColor") \
                == "rgb(11, 79, 156)", "the stylesheet did not apply"  # fmt: skip
            overflow = page.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{overflow} px of horizontal scrolling at {width} px"
            for name in ("API documentation", "OpenAPI document", "Readiness", "Liveness"):
                assert page.get_by_role("link", name=name).is_visible()
            page.screenshot(path=str(shot), full_page=True)
            page.get_by_role("link", name="Readiness").click()
            page.wait_for_load_state()
            assert '"status"' in page.content()
        finally:
            browser.close()
    assert not problems, f"console errors (CSP?): {problems}"
    foreign = [url for url in requested if not url.startswith(fresh_checkout.url)]
    assert not foreign, f"the page loaded from elsewhere: {foreign}"
    assert shot.stat().st_size > 10_000
    shutil.copy(shot, Path(f"/tmp/cdb-landing-{width}.png"))


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make chromium)")
def test_the_api_documentation_renders_offline_in_chromium(fresh_checkout: Checkout,
                                                           tmp_path: Path) -> None:  # fmt: skip
    """/schema draws every route from the service's own files: nothing from a CDN."""
    from playwright.sync_api import sync_playwright

    shot = tmp_path / "api-docs.png"
    requested: list[str] = []
    failed: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900},
                                          ignore_https_errors=True)  # fmt: skip
            page = context.new_page()
            page.on("request", lambda r: requested.append(r.url))
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
                    if r.status >= 400 else None)  # fmt: skip
            page.on("console", lambda m: failed.append(m.text)
                    if m.type == "error" and "Security Policy" in m.text else None)  # fmt: skip
            page.goto(f"{fresh_checkout.url}/schema")
            page.locator(".swagger-ui .info .title").wait_for(timeout=30_000)
            assert "cdb-service" in page.locator(".swagger-ui .info .title").inner_text()
            page.get_by_text("/api/v1/resolve", exact=True).first.wait_for(timeout=10_000)
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    foreign = [url for url in requested if not url.startswith(fresh_checkout.url)]
    assert not foreign, f"the documentation loaded from elsewhere: {foreign}"
    assert not failed, failed
    shutil.copy(shot, Path("/tmp/cdb-api-docs.png"))
