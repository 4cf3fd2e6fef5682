"""The status page: rendered server-side, readable at a glance, screenshot in headless Chromium."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import shutil
import struct
import subprocess
import threading
import zlib
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from cdb_service.kernel.page_headers import CONTENT_SECURITY_POLICY, HSTS, PAGE_HEADERS
from cdb_service.probe import page, report
from cdb_service.probe.availability import BRUSSELS
from cdb_service.probe.store import Recorded, Store, Window
from tests.support.nginx import free_port

GREEN, RED, GREY = (0x2E, 0x9D, 0x3E), (0xD6, 0x28, 0x28), (0xB8, 0xB8, 0xB8)


def _synthetic_store(path: Path, now: dt.datetime) -> None:
    """40 days of 5-minute samples, one red day (3 h down) 10 days ago, nothing before."""
    with closing(Store(path)) as store:
        store.set_meta("interval_s", "300")
        today = now.astimezone(BRUSSELS).date()
        bad_lo = dt.datetime.combine(today - dt.timedelta(days=10), dt.time(12), BRUSSELS)
        t = dt.datetime.combine(today - dt.timedelta(days=40), dt.time(0), BRUSSELS)
        t = t.astimezone(dt.UTC)  # step in real time, not on the wall clock (DST)
        rows = []
        while t < now:
            ok = not (bad_lo <= t < bad_lo + dt.timedelta(hours=3))
            rows.append((t.timestamp(), int(ok), None if ok else "connect", None, 12.0, 0))
            t += dt.timedelta(minutes=5)
        with store.transaction() as db:
            db.executemany("INSERT INTO samples (at, ok, error, detail, latency_ms, slow) "
                           "VALUES (?, ?, ?, ?, ?, ?)", rows)  # fmt: skip
        store.record(Recorded(now, True, None, None, 10.0, False))
        store.open_incident(bad_lo, bad_lo + dt.timedelta(minutes=10), "outage detected", "connect",
                            None)  # fmt: skip
        store.close_incident(1, bad_lo + dt.timedelta(hours=3))
        soon = now + dt.timedelta(days=20)
        store.replace_windows([Window("w1", "EC", "cdb", soon, soon + dt.timedelta(hours=2),
                                      now, False, "upgrade")], now)  # fmt: skip


def test_the_page_and_metrics_show_days_state_incidents_and_maintenance(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    _synthetic_store(tmp_path / "p.sqlite3", now)
    with closing(Store(tmp_path / "p.sqlite3")) as store:
        picture = report.build(store, now)
    colours = [page.day_colour(f) for _, f in picture.days]
    assert len(colours) == 90
    assert colours.count(page.RED) == 1  # the day of the 3-hour outage
    assert colours[-1] == page.GREEN
    assert colours[0] == page.GREY  # no data 90 days ago
    html = page.html(picture)
    assert "CDB is UP" in html and "upgrade" in html  # the maintenance reason is shown
    assert "cdb (EC)" in html and "error budget left" in html
    assert picture.state == "up"
    # Times read in Brussels, to the second, zone named; durations in words, not "ongoing".
    started = report.brussels(picture.incidents[0]["started_at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T", started)
    assert f"{started} → " in html and "(3 h 00 min)" in html
    assert "ongoing" not in html


def test_a_fresh_probe_reports_100_percent_since_monitoring_began(tmp_path: Path) -> None:
    """Installed today, three good samples: no lost year, no negative budget, no alarm."""
    now = dt.datetime.now(dt.UTC)
    first = now - dt.timedelta(seconds=90)
    with closing(Store(tmp_path / "p.sqlite3")) as store:
        store.set_meta("interval_s", "30")
        assert report.build(store, now).monitoring_since is None  # nothing measured yet
        for k in range(3):
            store.record(
                Recorded(first + dt.timedelta(seconds=30 * k), True, None, None, 9.0, False)
            )
        picture = report.build(store, now)
    year = picture.periods[f"year_{picture.year}"]
    assert picture.monitoring_since == first
    assert year.availability == 1.0 and year.down_s == 0 and year.unknown_s == 0
    assert year.not_monitored_s > 0  # the year before the probe: apart, not downtime
    assert year.remaining_budget_h == year.budget_h > 80  # 1 % of a year, untouched
    assert all(rate == 0 for rate in picture.burn_rates.values())
    html = page.html(picture)
    assert f"Year {picture.year}: <b>100.000 %</b>" in html
    assert f"monitoring since {report.brussels(first)}" in html
    assert "alarm" not in html.split("</style>")[1]
    days = [page.day_colour(f) for _, f in picture.days]
    assert days[-1] == page.GREEN and set(days[:-2]) == {page.GREY}  # not monitored before


def _png_pixels(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = bit_depth = colour_type = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, bit_depth, colour_type = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert bit_depth == 8 and colour_type in (2, 6)
    channels = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        rows.append(line)
        previous = line
    pixels = [
        (row[x * channels], row[x * channels + 1], row[x * channels + 2])
        for row in rows
        for x in range(width)
    ]
    return width, height, pixels


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHECK_PAGE = """<!doctype html><html><body><pre id="result">pending</pre>
<iframe id="f" src="/framed" style="border:0;width:{width}px;height:800px"></iframe>
<script>
document.getElementById("f").addEventListener("load", () => {{
  const d = document.getElementById("f").contentDocument.documentElement;
  document.getElementById("result").textContent =
    JSON.stringify({{scrollWidth: d.scrollWidth, clientWidth: d.clientWidth}});
}});
</script></body></html>"""


def _serve_for_chromium(store_path: Path) -> ThreadingHTTPServer:
    """/status (the page as the probe renders it, with the probe's headers: its
    Content-Security-Policy must leave it styled), and /check?w=N on one origin, so that
    the check page may measure the status page in an N px wide frame (/framed: the page
    without the headers, whose frame-ancestors 'none' forbids any frame)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/check"):
                body = CHECK_PAGE.format(width=int(self.path.split("w=")[1]))
            else:
                with closing(Store(store_path)) as store:
                    body = page.html(report.build(store))
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if self.path.startswith("/status"):
                for name, value in page.security_headers(body, "text/html").items():
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _chromium_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium'}", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_status_page_sends_the_services_security_headers(tmp_path: Path) -> None:
    _synthetic_store(tmp_path / "p.sqlite3", dt.datetime.now(dt.UTC))
    port = free_port()
    server = page.serve(tmp_path / "p.sqlite3", f"127.0.0.1:{port}")
    try:
        status = httpx.get(f"http://127.0.0.1:{port}/status", timeout=10)
        missing = httpx.get(f"http://127.0.0.1:{port}/nothing", timeout=10)
    finally:
        server.shutdown()
    service = PAGE_HEADERS | {"Strict-Transport-Security": HSTS}
    for answer in (status, missing):
        for name, value in service.items():
            if name != "Content-Security-Policy":
                assert answer.headers[name] == value, (answer.url, name)
        policy = answer.headers["content-security-policy"]
        # The service's policy, but for the one inline stylesheet the page carries.
        assert re.sub(r"style-src '[^']+'", "style-src 'self'", policy) == CONTENT_SECURITY_POLICY
        assert "python" not in answer.headers.get("server", "").lower()
    style = status.text.split("<style>", 1)[1].split("</style>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in status.headers["content-security-policy"]
    assert missing.status_code == 404 and missing.json()["status"] == 404


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="Debian chromium is not installed "
                    "(make test installs it)")  # fmt: skip
def test_the_status_page_renders_in_headless_chromium_at_360_and_1280_px(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    _synthetic_store(tmp_path / "p.sqlite3", now)
    server = _serve_for_chromium(tmp_path / "p.sqlite3")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert httpx.get(f"{base}/status", timeout=10).status_code == 200
        for width in (360, 1280):
            shot = tmp_path / f"status-{width}.png"
            done = _chromium_run(tmp_path, f"--screenshot={shot}", f"--window-size={width},900",
                                 f"{base}/status")  # fmt: skip
            assert shot.exists(), done.stderr[-2000:]
            shutil.copy(shot, Path(f"/tmp/cdb-status-{width}.png"))
            # No horizontal overflow: measured by Chromium itself, in a frame that wide.
            dom = _chromium_run(tmp_path, "--virtual-time-budget=5000", "--dump-dom",
                                f"{base}/check?w={width}").stdout  # fmt: skip
            found = re.search(r'<pre id="result">(\{.*?\})</pre>', dom.replace("&quot;", '"'))
            assert found, dom[-2000:]
            measured = json.loads(found.group(1))
            assert measured["scrollWidth"] <= measured["clientWidth"] == width, (width, measured)
    finally:
        server.shutdown()
    width, height, pixels = _png_pixels(tmp_path / "status-1280.png")
    assert (width, height) == (1280, 900)
    counts = {name: sum(1 for p in pixels if p == colour)
              for name, colour in (("green", GREEN), ("red", RED), ("grey", GREY))}  # fmt: skip
    # Bars are 10 × 60 px: about 40 green days, one red, about 50 grey (no data) days.
    assert counts["green"] >= 30 * 600, counts
    assert 600 <= counts["red"] <= 3 * 600, counts
    assert counts["grey"] >= 40 * 600, counts
    narrow, _, _ = _png_pixels(tmp_path / "status-360.png")
    assert narrow == 360
