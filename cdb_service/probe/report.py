"""What the probe reports, from its own store: figures, incidents, maintenance, the day bars.

One `build()` gives the whole picture as plain data; the terminal table, JSON, CSV,
Prometheus metrics and the status page are renderings of it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cdb_service.kernel.calendar import Calendar, Derived, derive
from cdb_service.kernel.recurrence import Recurrence
from cdb_service.probe import availability as av
from cdb_service.probe.store import Store, Window

DEFAULT_INTERVAL_S = 30.0
DAYS_ON_PAGE = 90
# How far ahead regular windows are expanded beyond the year (the page's "upcoming").
UPCOMING = dt.timedelta(days=62)


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def brussels(value: dt.datetime | str | None) -> str:
    """An instant as people in the Commission read it: Brussels time, to the second, zone named."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(av.BRUSSELS).strftime("%Y-%m-%d %H:%M:%S %Z")


def duration(seconds: float | None) -> str:
    """A duration a person reads at a glance: 33 s, 4 min 05 s, 2 h 03 min, 3 d 4 h."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def excluded_spans(windows: Sequence[Window], cal: Calendar, since: dt.datetime,
                   until: dt.datetime) -> list[av.Span]:  # fmt: skip
    """What counts as planned maintenance in [since, until), each only up to its planned end:
    the occurrences of regular windows (Annex I 6.5, 6.8: declared once, with the notice
    their first occurrence needed); one-off windows announced with the required notice;
    and one-off windows lying wholly within an occurrence of a regular window of the same
    owner, which need no notice of their own. Cancelled windows count for nothing."""
    regular: list[tuple[str, av.Span]] = []  # (owner, occurrence)
    for w in windows:
        if w.recurrence and not w.cancelled and _notice(w, cal).notice_met:
            schedule = Recurrence.of(w.recurrence)
            occurring = schedule.occurrences(since, until, (w.starts_at, w.ends_at))
            regular += [(w.owner, span) for span in occurring]
    spans = [span for _, span in regular]
    for w in windows:
        if w.recurrence or w.cancelled:
            continue
        inside = any(owner == w.owner and lo <= w.starts_at and w.ends_at <= hi
                     for owner, (lo, hi) in regular)  # fmt: skip
        if inside or _notice(w, cal).notice_met:
            spans.append((w.starts_at, w.ends_at))
    return spans


def _announced(w: Window, cal: Calendar, now: dt.datetime) -> dict[str, Any]:
    """A window as the page and the report list it; a regular one with its schedule in
    words and its next occurrence."""
    item: dict[str, Any] = {
        "id": w.id, "owner": w.owner, "component": w.component,
        "starts_at": iso(w.starts_at), "ends_at": iso(w.ends_at),
        "announced_at": iso(w.announced_at), "cancelled": w.cancelled, "reason": w.reason,
        **asdict(_notice(w, cal)),
    }  # fmt: skip
    if w.recurrence:
        schedule = Recurrence.of(w.recurrence)
        upcoming = schedule.occurrences(now, w.ends_at, (w.starts_at, w.ends_at))
        following = next(upcoming, None)
        item |= {"regular": schedule.words(),
                 "next": None if following is None else [iso(t) for t in following]}  # fmt: skip
    return item


def _notice(w: Window, cal: Calendar) -> Derived:
    """The window's notice (of its first occurrence, for a regular window)."""
    starts_at, ends_at = w.starts_at, w.ends_at
    if w.recurrence:
        first = Recurrence.of(w.recurrence).first((w.starts_at, w.ends_at))
        if first is not None:
            starts_at, ends_at = first
    return derive(starts_at, ends_at, w.announced_at, cal)


@dataclass(frozen=True)
class Picture:
    now: dt.datetime
    year: int
    interval_s: float
    state: str
    last_sample: dict[str, Any] | None
    periods: dict[str, av.Figures]
    burn_rates: dict[str, float | None]
    latency: dict[str, Any]
    days: list[tuple[dt.date, av.Figures]]
    incidents: list[dict[str, Any]]
    maintenance: list[dict[str, Any]]
    samples: int
    monitoring_since: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "generated_at": iso(self.now),
            "monitoring_since": iso(self.monitoring_since),
            "target": av.TARGET,
            "interval_s": self.interval_s,
            "state": self.state,
            "last_sample": self.last_sample,
            "samples": self.samples,
            "periods": {name: figures_dict(f) for name, f in self.periods.items()},
            "burn_rate_30d": self.burn_rates,
            "latency": self.latency,
            "incidents": self.incidents,
            "maintenance": self.maintenance,
            "days": [{"date": d.isoformat(), **figures_dict(f)} for d, f in self.days],
        }


def figures_dict(f: av.Figures) -> dict[str, Any]:
    out = asdict(f)
    out.pop("extra")
    out["start"], out["end"] = iso(f.start), iso(f.end)
    out["monitored_from"] = iso(f.monitored_from)
    out["not_monitored_h"] = f.not_monitored_s / 3600
    out["down_h"] = f.down_s / 3600
    out["unknown_h"] = f.unknown_s / 3600
    out["maintenance_h"] = f.maintenance_s / 3600
    return out


def build(
    store: Store,
    now: dt.datetime | None = None,
    year: int | None = None,
    cal: Calendar | None = None,
    latency_objective_ms: float | None = None,
) -> Picture:
    now = now or dt.datetime.now(dt.UTC)
    cal = cal or Calendar.load()
    year = year or now.astimezone(av.BRUSSELS).year
    interval_s = float(store.meta("interval_s") or DEFAULT_INTERVAL_S)
    interval = dt.timedelta(seconds=interval_s)
    year_lo, year_hi = av.calendar_year(year)
    lo = min(year_lo, now - dt.timedelta(days=365))
    hi = min(max(year_hi, now), now)
    recorded = store.samples(lo - 2 * interval, hi)
    samples = [r.sample() for r in recorded]
    segments = av.timeline(samples, interval, lo, hi)
    windows = store.windows()
    excluded = excluded_spans(windows, cal, lo, max(year_hi, now + UPCOMING))
    # Before the first sample nothing was monitored: not downtime, not counted (see
    # `availability`). With no sample yet, nothing is measured at all.
    since = store.first_sample_at() or now
    periods = {
        f"year_{year}": av.measure(segments, excluded, year_lo, year_hi, now, monitored_from=since),
        "rolling_30d": av.measure(segments, excluded, *av.rolling(now, 30), now,
                                  monitored_from=since),
        "rolling_365d": av.measure(segments, excluded, *av.rolling(now, 365), now,
                                   monitored_from=since),
    }  # fmt: skip
    burn = {
        "1h": av.burn_rate(segments, excluded, now, 1, monitored_from=since),
        "6h": av.burn_rate(segments, excluded, now, 6, monitored_from=since),
    }
    month = [r for r in recorded if r.at >= now - dt.timedelta(days=30) and r.ok]
    objective = latency_objective_ms or float(store.meta("latency_objective_ms") or 1000)
    slow = sum(1 for r in month if r.latency_ms is not None and r.latency_ms > objective)
    latency = {
        "objective_ms": objective,
        "successful_samples_30d": len(month),
        "slow_samples_30d": slow,
        "within_objective_30d": None if not month else 1 - slow / len(month),
    }
    last = recorded[-1] if recorded else None
    state = _state(recorded, now, interval, excluded)
    incidents = [i.as_dict() for i in store.incidents()]
    maintenance = [_announced(w, cal, now) for w in windows if w.ends_at > now]
    return Picture(
        now=now,
        year=year,
        interval_s=interval_s,
        state=state,
        last_sample=None
        if last is None
        else {
            "at": iso(last.at),
            "ok": last.ok,
            "error": last.error,
            "latency_ms": last.latency_ms,
        },
        periods=periods,
        burn_rates=burn,
        latency=latency,
        days=av.daily(segments, excluded, now, DAYS_ON_PAGE, monitored_from=since),
        monitoring_since=store.first_sample_at(),
        incidents=incidents,
        maintenance=maintenance,
        samples=len(recorded),
    )


def _state(recorded: Sequence[Any], now: dt.datetime, interval: dt.timedelta,
           excluded: Sequence[av.Span]) -> str:  # fmt: skip
    """up, down (confirmed), suspect (one failure), maintenance, or unknown (no fresh sample)."""
    if not recorded or now - recorded[-1].at > 2 * interval:
        return "unknown"
    in_window = any(lo <= now < hi for lo, hi in excluded)
    last_two = recorded[-2:]
    if not last_two[-1].ok:
        if len(last_two) == 2 and not last_two[0].ok:
            return "maintenance" if in_window else "down"
        return "suspect"
    return "maintenance" if in_window else "up"


# --- renderings ---------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.3f} %"


def table(p: Picture) -> str:
    from rich.console import Console
    from rich.table import Table

    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False, color_system=None)
    console.print(f"cdb probe report — {brussels(p.now)} — state: {p.state.upper()} — "
                  f"target {100 * av.TARGET:.0f} % — {p.samples} samples — "
                  f"monitoring since {brussels(p.monitoring_since)}")  # fmt: skip
    t = Table("period", "availability", "optimistic (U left out)", "down h", "unknown h",
              "maintenance h", "budget h", "remaining h")  # fmt: skip
    for name, f in p.periods.items():
        t.add_row(name, _pct(f.availability), _pct(f.optimistic), f"{f.down_s / 3600:.3f}",
                  f"{f.unknown_s / 3600:.3f}", f"{f.maintenance_s / 3600:.3f}",
                  f"{f.budget_h:.2f}", f"{f.remaining_budget_h:.2f}")  # fmt: skip
    console.print(t)
    rates = ", ".join(f"{k}: {'n/a' if v is None else f'{v:.2f}'}" for k, v in p.burn_rates.items())
    console.print(f"burn rate (30-day budget): {rates}")
    lat = p.latency
    console.print(
        f"latency objective {lat['objective_ms']:.0f} ms: "
        f"{lat['slow_samples_30d']} slow of {lat['successful_samples_30d']} (30 days)"
    )
    i = Table("incident", "started", "detected", "ended", "duration s", "description")
    for inc in p.incidents:
        duration = inc["duration_s"]
        i.add_row(str(inc["id"]), brussels(inc["started_at"]), brussels(inc["detected_at"]),
                  brussels(inc["ended_at"]) if inc["ended_at"] else "OPEN",
                  "" if duration is None else f"{duration:.1f}", inc["description"])  # fmt: skip
    console.print(i)
    m = Table("maintenance", "owner", "starts", "ends", "notice met", "excluded", "reason")
    for w in p.maintenance:
        m.add_row(w["component"], w["owner"], brussels(w["starts_at"]), brussels(w["ends_at"]),
                  str(w["notice_met"]), str(w["notice_met"] and not w["cancelled"]),
                  w["reason"] or "")  # fmt: skip
    console.print(m)
    return out.getvalue()


CSV_FIELDS = ("date", "availability", "optimistic", "down_s", "unknown_s", "maintenance_s",
              "total_s")  # fmt: skip


def year_csv(store: Store, year: int, now: dt.datetime | None = None,
             cal: Calendar | None = None) -> str:  # fmt: skip
    """One row per Brussels date of the year (up to today)."""
    now = now or dt.datetime.now(dt.UTC)
    cal = cal or Calendar.load()
    interval = dt.timedelta(seconds=float(store.meta("interval_s") or DEFAULT_INTERVAL_S))
    lo, hi = av.calendar_year(year)
    until = min(hi, now)
    samples = [r.sample() for r in store.samples(lo - 2 * interval, until)]
    segments = av.timeline(samples, interval, lo, until)
    excluded = excluded_spans(store.windows(), cal, lo, hi)
    since = store.first_sample_at() or until
    last_day = (until - dt.timedelta(microseconds=1)).astimezone(av.BRUSSELS).date()
    first_day = dt.date(year, 1, 1)
    count = max(0, (last_day - first_day).days + 1)
    days = av.daily(segments, excluded, until - dt.timedelta(microseconds=1), count,
                    monitored_from=since)  # fmt: skip
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for day, f in days:
        writer.writerow([day.isoformat(), f.availability, f.optimistic, f.down_s, f.unknown_s,
                         f.maintenance_s, f.total_s])  # fmt: skip
    return out.getvalue()


def prometheus(p: Picture) -> str:
    lines = []

    def metric(name: str, kind: str, help_: str, values: list[tuple[str, float | None]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in values:
            if value is not None:
                lines.append(f"{name}{labels} {value}")

    periods = list(p.periods.items())

    def per_period(attr: str, scale: float = 1.0) -> list[tuple[str, float | None]]:
        out: list[tuple[str, float | None]] = []
        for name, f in periods:
            value = getattr(f, attr)
            out.append((f'{{period="{name}"}}', None if value is None else value * scale))
        return out

    metric("cdb_probe_up", "gauge", "1 if the latest sample succeeded, 0 if not",
           [("", None if p.last_sample is None else float(p.last_sample["ok"]))])  # fmt: skip
    metric("cdb_probe_availability_ratio", "gauge", "A = (T-M-D-U)/(T-M)",
           per_period("availability"))  # fmt: skip
    metric("cdb_probe_availability_optimistic_ratio", "gauge", "A with unknown time left out",
           per_period("optimistic"))  # fmt: skip
    metric("cdb_probe_downtime_seconds", "gauge", "D", per_period("down_s"))
    metric("cdb_probe_unknown_seconds", "gauge", "U", per_period("unknown_s"))
    metric("cdb_probe_maintenance_seconds", "gauge", "M", per_period("maintenance_s"))
    metric("cdb_probe_error_budget_remaining_hours", "gauge", "budget minus D and U",
           per_period("remaining_budget_h"))  # fmt: skip
    metric("cdb_probe_burn_rate", "gauge", "error-budget burn rate against the 30-day budget",
           [(f'{{window="{k}"}}', v) for k, v in p.burn_rates.items()])  # fmt: skip
    metric("cdb_probe_last_latency_milliseconds", "gauge", "latency of the latest sample",
           [("", None if p.last_sample is None else p.last_sample["latency_ms"])])  # fmt: skip
    metric("cdb_probe_open_incidents", "gauge", "incidents the probe has open",
           [("", float(sum(1 for i in p.incidents if i["ended_at"] is None)))])  # fmt: skip
    metric("cdb_probe_samples", "gauge", "samples in the reported range", [("", float(p.samples))])
    return "\n".join(lines) + "\n"
