"""The probe's status page and its small HTTP server (/status, /metrics, /report.json, /report.csv).

Rendered server-side: an HTML page holding one SVG, no script. One bar per Brussels day for
the last 90 days, coloured by that day's availability (green ≥ 99.9 %, yellow ≥ 99 %,
red below, grey for no data); the current state, open incidents, upcoming maintenance
and the remaining error budget.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cdb_service.kernel import page_headers
from cdb_service.probe import report
from cdb_service.probe.availability import Figures
from cdb_service.probe.store import Store

GREEN, YELLOW, RED, GREY = "#2e9d3e", "#e0b000", "#d62828", "#b8b8b8"
STATE_COLOURS = {"up": GREEN, "down": RED, "suspect": YELLOW, "maintenance": "#3572b0",
                 "unknown": GREY}  # fmt: skip


def day_colour(f: Figures) -> str:
    known = f.total_s - f.maintenance_s - f.unknown_s
    if f.total_s <= 0 or known <= 0 or f.optimistic is None:
        return GREY
    if f.availability is not None and f.availability >= 0.999:
        return GREEN
    return YELLOW if (f.availability or 0) >= 0.99 else RED


def _pct(value: float | None) -> str:
    return "no data" if value is None else f"{100 * value:.3f} %"


def svg(p: report.Picture) -> str:
    """The 90 day bars. A viewBox, so that the picture scales down to a phone's width."""
    width, bar_w, gap, bar_h = 1100, 10, 2, 60
    left = 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} 170" '
             f'width="{width}" height="170" class="days" preserveAspectRatio="xMinYMin meet" '
             f'role="img" aria-label="availability per day, last 90 days">']  # fmt: skip
    for i, (day, f) in enumerate(p.days):
        x = left + i * (bar_w + gap)
        state = "not monitored" if f.total_s <= 0 else _pct(f.availability)
        title = f"{day.isoformat()}: {state}"
        parts.append(
            f'<rect x="{x}" y="30" width="{bar_w}" height="{bar_h}" fill="{day_colour(f)}" '
            f'class="day"><title>{escape(title)}</title></rect>'
        )
    if p.days:
        first, last = p.days[0][0].isoformat(), p.days[-1][0].isoformat()
        parts.append(f'<text x="{left}" y="110" font-size="13" fill="#333">{first}</text>')
        right = left + (len(p.days) - 1) * (bar_w + gap) + bar_w
        parts.append(
            f'<text x="{right}" y="110" font-size="13" text-anchor="end" fill="#333">'
            f"{last} (today)</text>"
        )
    parts.append('<text x="20" y="20" font-size="15" fill="#111">Availability per day, last '
                 f"{len(p.days)} days (Europe/Brussels)</text>")  # fmt: skip
    legend = [(GREEN, "≥ 99.9 %"), (YELLOW, "≥ 99 %"), (RED, "< 99 %"),
              (GREY, "no data / not monitored")]  # fmt: skip
    for i, (colour, label) in enumerate(legend):
        x = left + i * 130
        parts.append(f'<rect x="{x}" y="130" width="14" height="14" fill="{colour}"/>')
        parts.append(f'<text x="{x + 20}" y="142" font-size="13" fill="#333">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _recovery(at: str | None) -> str:
    return f" — expected recovery {escape(report.brussels(at))}" if at else ""


def _lasted(incident: dict[str, Any], now: dt.datetime) -> str:
    """How long an incident lasted, or has lasted so far."""
    if incident["ended_at"] is not None:
        return report.duration(incident["duration_s"])
    started = dt.datetime.fromisoformat(incident["started_at"].replace("Z", "+00:00"))
    return f"{report.duration((now - started).total_seconds())} so far"


def _burn(p: report.Picture) -> str:
    """Burn rates against the 30-day budget; flagged only when above 1 (the budget runs out)."""
    parts = []
    for window, rate in p.burn_rates.items():
        if rate is None:
            parts.append(f"{window}: no data")
        elif rate > 1:
            parts.append(f'<b class="alarm">{window}: {rate:.2f}</b>')
        else:
            parts.append(f"{window}: {rate:.2f}")
    return " · ".join(parts)


def _when(w: dict[str, Any]) -> str:
    """A one-off window's start and end; a regular one's schedule and next occurrence."""
    b = report.brussels
    if not w.get("regular"):
        return f"{escape(b(w['starts_at']))} → {escape(b(w['ends_at']))}"
    following = w.get("next")
    upcoming = f"; next {escape(b(following[0]))} → {escape(b(following[1]))}" if following else ""
    return f"regular, {escape(w['regular'])}{upcoming} (until {escape(b(w['ends_at']))})"


def html(p: report.Picture) -> str:
    year = p.periods[f"year_{p.year}"]
    month = p.periods["rolling_30d"]
    colour = STATE_COLOURS.get(p.state, GREY)
    b = report.brussels
    open_incidents = [i for i in p.incidents if i["ended_at"] is None]
    incidents = "".join(
        f"<li><b>since {escape(b(i['started_at']))}</b> ({_lasted(i, p.now)}) — "
        f"{escape(i['description'])}{_recovery(i['expected_recovery_at'])}</li>"
        for i in open_incidents
    ) or "<li>none</li>"  # fmt: skip
    maintenance = "".join(
        f"<li>{escape(w['component'])} ({escape(w['owner'])}): {_when(w)}"
        f"{' — cancelled' if w['cancelled'] else ''}"
        f"{' — ' + escape(w['reason']) if w['reason'] else ''}"
        f"{'' if w['notice_met'] else ' — notice NOT met: counted as downtime'}</li>"
        for w in p.maintenance
    ) or "<li>none announced</li>"  # fmt: skip
    recent = "".join(
        f"<li>{escape(b(i['started_at']))} → "
        f"{escape(b(i['ended_at'])) if i['ended_at'] else 'ongoing'} ({_lasted(i, p.now)})</li>"
        for i in p.incidents[-5:][::-1]
    ) or "<li>none</li>"  # fmt: skip
    since = p.monitoring_since
    monitoring = (
        f"monitoring since {escape(b(since))}" if since is not None else "not monitored yet"
    )
    before = (
        f"<br><small>Before {escape(b(since))}: not monitored (not counted).</small>"
        if since is not None and year.not_monitored_s > 0
        else ""
    )
    last = (p.last_sample or {}).get("at")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CDB status: {escape(p.state)}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; color: #111; line-height: 1.35; }}
.state {{ display: inline-block; padding: 8px 18px; color: #fff; background: {colour};
          font-size: 26px; font-weight: bold; border-radius: 6px; }}
.head {{ display: flex; flex-wrap: wrap; align-items: center; gap: 8px 16px; }}
.figures {{ display: flex; flex-wrap: wrap; gap: 10px 28px; margin: 14px 0; font-size: 16px; }}
.figures > div {{ flex: 0 1 auto; }}
/* On a phone the bars keep a readable size and scroll sideways inside their own box;
   rtl starts the box scrolled to its right end: today. The page itself never overflows. */
.chart {{ overflow-x: auto; direction: rtl; max-width: 1100px; }}
.chart svg.days {{ direction: ltr; width: 100%; min-width: 720px; height: auto; display: block; }}
.cols {{ display: flex; flex-wrap: wrap; gap: 0 40px; }}
.cols > div {{ flex: 1 1 260px; min-width: 0; }}
ul {{ padding-left: 20px; }}
li {{ overflow-wrap: anywhere; margin: 3px 0; }}
.alarm {{ color: {RED}; }}
h2 {{ font-size: 17px; margin: 14px 0 4px; }}
.note {{ color: #555; font-size: 12px; }}
</style></head><body>
<div class="head"><span class="state">CDB is {escape(p.state.upper())}</span>
 <span>last sample {escape(b(last)) if last else "none yet"}, every {p.interval_s:g} s;
 {monitoring}</span></div>
<div class="figures">
<div>Year {p.year}: <b>{_pct(year.availability)}</b>
 (without unknown: {_pct(year.optimistic)}){before}</div>
<div>30 days: <b>{_pct(month.availability)}</b></div>
<div>Target 99 % — error budget left this year: <b>{year.remaining_budget_h:.2f} h</b>
 of {year.budget_h:.2f} h</div>
<div>Burn rate (30-day budget): {_burn(p)}</div>
</div>
<div class="chart">{svg(p)}</div>
<div class="cols">
<div><h2>Open incidents</h2><ul>{incidents}</ul></div>
<div><h2>Upcoming maintenance</h2><ul>{maintenance}</ul></div>
<div><h2>Recent incidents</h2><ul>{recent}</ul></div>
</div>
<p class="note">Generated {escape(b(p.now))} by the probe. Times are Europe/Brussels
(CET/CEST). Availability counts from the first sample (monitoring since); after it, unknown
time (no samples) counts against availability; only maintenance announced with the
required notice is excluded, and only up to its planned end.</p>
</body></html>
"""


def security_headers(body: str, content_type: str) -> dict[str, str]:
    """The service's page headers (kernel.page_headers), HSTS included (browsers heed it
    where the page is published over TLS): the page's one inline stylesheet is allowed
    by its hash, nothing else inline."""
    headers = dict(page_headers.PAGE_HEADERS)
    if content_type.startswith("text/html") and "<style>" in body:
        style = body.split("<style>", 1)[1].split("</style>", 1)[0]
        headers = page_headers.with_inline_style(style)
    return headers | {"Strict-Transport-Security": page_headers.HSTS}


def serve(store_path: Path, listen: str) -> ThreadingHTTPServer:
    """Start the status server in a daemon thread; each request reads the store afresh."""
    host, _, port = listen.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        server_version, sys_version = "cdb-probe", ""  # no Python version for the curious

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            store = Store(store_path)
            try:
                body, content_type = _answer(store, path)
            finally:
                store.close()
            status = 200
            if body is None:
                status, content_type = 404, "application/problem+json"
                body = json.dumps({"type": "about:blank", "title": "Not found", "status": 404})
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for name, value in security_headers(body, content_type).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="status-page").start()
    return server


def _answer(store: Store, path: str) -> tuple[str | None, str]:
    if path in ("/", "/status"):
        return html(report.build(store)), "text/html; charset=utf-8"
    if path == "/status.svg":
        return svg(report.build(store)), "image/svg+xml"
    if path == "/metrics":
        return report.prometheus(report.build(store)), "text/plain; version=0.0.4"
    if path == "/report.json":
        return json.dumps(report.build(store).as_dict(), indent=2), "application/json"
    if path == "/report.csv":
        year = dt.datetime.now(dt.UTC).year
        return report.year_csv(store, year), "text/csv; charset=utf-8"
    return None, ""
