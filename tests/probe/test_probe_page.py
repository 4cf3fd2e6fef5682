"""The status page: rendered server-side, readable at a glance, screenshot in headless Chromium."""

from __future__ import annotations

import datetime as dt
import shutil
import struct
import subprocess
import zlib
from contextlib import closing
from pathlib import Path

import httpx
import pytest

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
    assert "CDB is UP" in html and "upgrade" not in html  # reasons stay off the front page
    assert "cdb (EC)" in html and "error budget left" in html
    assert picture.state == "up"


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


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="Debian chromium is not installed "
                    "(make test installs it)")  # fmt: skip
def test_the_status_page_renders_in_headless_chromium_with_its_bars(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    _synthetic_store(tmp_path / "p.sqlite3", now)
    port = free_port()
    server = page.serve(tmp_path / "p.sqlite3", f"127.0.0.1:{port}")
    shot = tmp_path / "status.png"
    try:
        url = f"http://127.0.0.1:{port}/status"
        assert httpx.get(url, timeout=10).status_code == 200
        done = subprocess.run(
            [str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}",
             f"--screenshot={shot}", "--window-size=1200,800", url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert shot.exists(), done.stderr[-2000:]
    finally:
        server.shutdown()
    width, height, pixels = _png_pixels(shot)
    assert (width, height) == (1200, 800)
    counts = {name: sum(1 for p in pixels if p == colour)
              for name, colour in (("green", GREEN), ("red", RED), ("grey", GREY))}  # fmt: skip
    # Bars are 10 × 60 px: about 40 green days, one red, about 50 grey (no data) days.
    assert counts["green"] >= 30 * 600, counts
    assert 600 <= counts["red"] <= 3 * 600, counts
    assert counts["grey"] >= 40 * 600, counts
    shutil.copy(shot, Path("/tmp/cdb-status-screenshot.png"))
