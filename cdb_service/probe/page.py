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
    width, bar_w, gap, bar_h = 1100, 10, 2, 60
    left = 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="170" '
             f'role="img" aria-label="availability per day, last 90 days">']  # fmt: skip
    for i, (day, f) in enumerate(p.days):
        x = left + i * (bar_w + gap)
        title = f"{day.isoformat()}: {_pct(f.availability)}"
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
    legend = [(GREEN, "≥ 99.9 %"), (YELLOW, "≥ 99 %"), (RED, "< 99 %"), (GREY, "no data")]
    for i, (colour, label) in enumerate(legend):
        x = left + i * 130
        parts.append(f'<rect x="{x}" y="130" width="14" height="14" fill="{colour}"/>')
        parts.append(f'<text x="{x + 20}" y="142" font-size="13" fill="#333">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _recovery(at: str | None) -> str:
    return f" — expected recovery {escape(at)}" if at else ""


def _seconds(value: float | None) -> str:
    return "ongoing" if value is None else f"{value:.0f} s"


def html(p: report.Picture) -> str:
    year = p.periods[f"year_{p.year}"]
    month = p.periods["rolling_30d"]
    colour = STATE_COLOURS.get(p.state, GREY)
    open_incidents = [i for i in p.incidents if i["ended_at"] is None]
    incidents = "".join(
        f"<li><b>since {escape(i['started_at'])}</b> — {escape(i['description'])}"
        f"{_recovery(i['expected_recovery_at'])}</li>"
        for i in open_incidents
    ) or "<li>none</li>"  # fmt: skip
    maintenance = "".join(
        f"<li>{escape(w['component'])} ({escape(w['owner'])}): {escape(w['starts_at'])} → "
        f"{escape(w['ends_at'])}{' — cancelled' if w['cancelled'] else ''}"
        f"{'' if w['notice_met'] else ' — notice NOT met: counted as downtime'}</li>"
        for w in p.maintenance
    ) or "<li>none announced</li>"  # fmt: skip
    recent = "".join(
        f"<li>{escape(i['started_at'])} → {escape(i['ended_at'] or 'ongoing')} "
        f"({_seconds(i['duration_s'])})</li>"
        for i in p.incidents[-5:][::-1]
    ) or "<li>none</li>"  # fmt: skip
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<title>CDB status: {escape(p.state)}</title>
<style>
body {{ font-family: sans-serif; margin: 20px; color: #111; }}
.state {{ display: inline-block; padding: 8px 18px; color: #fff; background: {colour};
          font-size: 26px; font-weight: bold; border-radius: 6px; }}
.figures td {{ padding: 2px 14px 2px 0; font-size: 16px; }}
.cols {{ display: flex; gap: 40px; }}
h2 {{ font-size: 17px; margin: 14px 0 4px; }}
</style></head><body>
<div><span class="state">CDB is {escape(p.state.upper())}</span>
 <span style="margin-left:16px">last sample {escape(str((p.last_sample or {}).get("at")))},
 every {p.interval_s:g} s</span></div>
<table class="figures"><tr>
<td>Year {p.year}: <b>{_pct(year.availability)}</b> (without unknown: {_pct(year.optimistic)})</td>
<td>30 days: <b>{_pct(month.availability)}</b></td>
<td>Target 99 % — error budget left this year: <b>{year.remaining_budget_h:.2f} h</b>
 of {year.budget_h:.2f} h</td></tr></table>
{svg(p)}
<div class="cols">
<div><h2>Open incidents</h2><ul>{incidents}</ul></div>
<div><h2>Upcoming maintenance</h2><ul>{maintenance}</ul></div>
<div><h2>Recent incidents</h2><ul>{recent}</ul></div>
</div>
<p style="color:#555;font-size:12px">Generated {escape(report.iso(p.now) or "")} by the probe.
Unknown time (no samples) counts against availability; only maintenance announced with the
required notice is excluded, and only up to its planned end.</p>
</body></html>
"""


def serve(store_path: Path, listen: str) -> ThreadingHTTPServer:
    """Start the status server in a daemon thread; each request reads the store afresh."""
    host, _, port = listen.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            store = Store(store_path)
            try:
                body, content_type = _answer(store, path)
            finally:
                store.close()
            if body is None:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
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
