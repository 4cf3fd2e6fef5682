"""Availability maths (Annex I 6.2), pure functions on synthetic or recorded timelines.

Inputs
  samples   the probe's observations, each (at, ok), in time order; `ok` is False for a
            connection/TLS failure, timeout, 5xx, failed health check or wrong lookup answer.
  interval  the probe's sampling interval.
  excluded  maintenance windows announced with the required notice and not cancelled,
            each only from its planned start to its planned end (an overrun is not excluded).

Timeline (`timeline`)
  * Sample i decides the state of [t_i, t_{i+1}) if t_{i+1} − t_i ≤ 2·interval.
  * A longer stretch without samples is unknown after its first interval:
    [t_i, t_i + interval) has sample i's state, [t_i + interval, t_{i+1}) is UNKNOWN.
    Time before the first sample is UNKNOWN; after the last sample the same rule runs to `until`.
  * A failed sample is DOWN only when confirmed: it belongs to a run of at least two
    consecutive failed samples. A confirmed outage counts from its first failed sample to
    the first successful one. A single failure between successes is not an outage (UP).
    A failure that is the latest sample is not confirmed yet: UP until the next sample.

Figures for a period P = [start, end) (`measure`), T = |P ∩ [.., now)|:
  M = |excluded ∩ P|,  D = |DOWN ∩ P \\ M|,  U = |UNKNOWN ∩ P \\ M|
  A            = (T − M − D − U) / (T − M)          (unknown counts against us)
  A_optimistic = (T − M − D − U) / (T − M − U)      (unknown left out; shown beside A)
  Either is None when its denominator is 0.
  Error budget of P = (1 − target) · (|P| − M_P) where |P| is the whole period (a whole
  calendar year, or 30/365 days) and M_P its excluded time; remaining = budget − D − U, in hours.
  Burn rate over the last h hours = ((D + U) / (T − M) in those h hours) / (1 − target):
  1.0 spends the budget exactly by the end of the period, 14.4 over 1 h spends 2 % of a
  30-day budget in that hour.
Calendar years are Europe/Brussels years: 2026 begins at 2025-12-31T23:00:00Z.

Monitoring since (`monitored_from`, the probe's first sample): time before it was not
monitored at all. It is neither downtime nor unknown: a period is measured from
max(start, monitored_from), and the time before is reported apart (`not_monitored_s`),
so that a probe installed in November does not report the year's first ten months as
lost. A gap after monitoring began stays unknown (the probe's absence counts against us).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from zoneinfo import ZoneInfo

BRUSSELS = ZoneInfo("Europe/Brussels")
TARGET = 0.99
Span = tuple[dt.datetime, dt.datetime]


class State(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Sample:
    at: dt.datetime
    ok: bool


@dataclass(frozen=True)
class Segment:
    start: dt.datetime
    end: dt.datetime
    state: State


@dataclass(frozen=True)
class Outage:
    start: dt.datetime  # the first failed sample
    end: dt.datetime | None  # the first successful sample after it; None while it lasts
    confirmed: bool  # at least two consecutive failed samples
    failures: int

    def duration(self, now: dt.datetime) -> dt.timedelta:
        return (self.end or now) - self.start


@dataclass(frozen=True)
class Figures:
    start: dt.datetime
    end: dt.datetime
    total_s: float  # T
    maintenance_s: float  # M
    down_s: float  # D
    unknown_s: float  # U
    availability: float | None  # A
    optimistic: float | None  # A with U left out
    budget_h: float
    remaining_budget_h: float
    target: float = TARGET
    extra: dict[str, float | None] = field(default_factory=dict)
    not_monitored_s: float = 0.0  # of [start, now): before monitoring began
    monitored_from: dt.datetime | None = None


# --- spans ------------------------------------------------------------------------------


def union(spans: Iterable[Span]) -> list[Span]:
    out: list[Span] = []
    for lo, hi in sorted(s for s in spans if s[1] > s[0]):
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def clip(spans: Iterable[Span], lo: dt.datetime, hi: dt.datetime) -> list[Span]:
    return [(max(a, lo), min(b, hi)) for a, b in spans if a < hi and b > lo]


def length_s(spans: Iterable[Span]) -> float:
    return sum((b - a).total_seconds() for a, b in spans)


def minus(spans: Sequence[Span], holes: Sequence[Span]) -> list[Span]:
    """spans \\ holes, both sorted and disjoint (as `union` gives them)."""
    out: list[Span] = []
    for a, b in spans:
        cursor = a
        for h_lo, h_hi in holes:
            if h_hi <= cursor or h_lo >= b:
                continue
            if h_lo > cursor:
                out.append((cursor, h_lo))
            cursor = max(cursor, h_hi)
            if cursor >= b:
                break
        if cursor < b:
            out.append((cursor, b))
    return out


# --- timeline ----------------------------------------------------------------------------


def failure_runs(samples: Sequence[Sample]) -> Iterator[tuple[int, int]]:
    """(first, past-the-last) index of each run of consecutive failed samples."""
    i = 0
    while i < len(samples):
        if samples[i].ok:
            i += 1
            continue
        j = i
        while j < len(samples) and not samples[j].ok:
            j += 1
        yield i, j
        i = j


def confirmed_failures(samples: Sequence[Sample]) -> list[bool]:
    """For each sample: is it a failure within a run of ≥ 2 consecutive failures?"""
    out = [False] * len(samples)
    for i, j in failure_runs(samples):
        if j - i >= 2:
            out[i:j] = [True] * (j - i)
    return out


def timeline(
    samples: Sequence[Sample], interval: dt.timedelta, since: dt.datetime, until: dt.datetime
) -> list[Segment]:
    """UP / DOWN / UNKNOWN segments covering [since, until), adjacent equal states merged."""
    segments: list[Segment] = []

    def add(lo: dt.datetime, hi: dt.datetime, state: State) -> None:
        lo, hi = max(lo, since), min(hi, until)
        if hi <= lo:
            return
        if segments and segments[-1].state is state and segments[-1].end == lo:
            segments[-1] = Segment(segments[-1].start, hi, state)
        else:
            segments.append(Segment(lo, hi, state))

    samples = [s for s in samples if s.at < until]
    down = confirmed_failures(samples)
    first = samples[0].at if samples else until
    add(since, first, State.UNKNOWN)
    for i, sample in enumerate(samples):
        state = State.DOWN if down[i] else State.UP
        following = samples[i + 1].at if i + 1 < len(samples) else until
        if following - sample.at <= 2 * interval:
            add(sample.at, following, state)
        else:
            add(sample.at, sample.at + interval, state)
            add(sample.at + interval, following, State.UNKNOWN)
    return segments


def outages(samples: Sequence[Sample]) -> list[Outage]:
    """Runs of failed samples: confirmed ones (≥ 2) are outages, single ones are not."""
    out: list[Outage] = []
    for i, j in failure_runs(samples):
        end = samples[j].at if j < len(samples) else None
        out.append(Outage(samples[i].at, end, j - i >= 2, j - i))
    return out


# --- figures ------------------------------------------------------------------------------


def _ratio(num: float, den: float) -> float | None:
    return None if den <= 0 else num / den


def measure(
    segments: Sequence[Segment],
    excluded: Iterable[Span],
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    target: float = TARGET,
    monitored_from: dt.datetime | None = None,
) -> Figures:
    """The figures of period [start, end) as observed up to `now` (and since `monitored_from`)."""
    observed_end = max(start, min(end, now))
    period_start = start
    not_monitored = 0.0
    if monitored_from is not None and monitored_from > start:
        start = min(monitored_from, observed_end)
        not_monitored = (start - period_start).total_seconds()
    windows = union(excluded)
    m_all = clip(windows, period_start, end)
    m = clip(windows, start, observed_end)
    total, m_s = (observed_end - start).total_seconds(), length_s(m)

    def state_time(state: State) -> float:
        spans = [(s.start, s.end) for s in segments if s.state is state]
        return length_s(minus(clip(spans, start, observed_end), m))

    d_s, u_s = state_time(State.DOWN), state_time(State.UNKNOWN)
    # Time inside [start, observed_end) that no segment covers is unknown too.
    covered = union((s.start, s.end) for s in segments)
    u_s += length_s(minus(minus([(start, observed_end)], covered), m)) if total > 0 else 0.0
    budget_h = (1 - target) * ((end - period_start).total_seconds() - length_s(m_all)) / 3600
    return Figures(
        start=period_start,
        end=end,
        total_s=total,
        maintenance_s=m_s,
        down_s=d_s,
        unknown_s=u_s,
        availability=_ratio(total - m_s - d_s - u_s, total - m_s),
        optimistic=_ratio(total - m_s - d_s - u_s, total - m_s - u_s),
        budget_h=budget_h,
        remaining_budget_h=budget_h - (d_s + u_s) / 3600,
        target=target,
        not_monitored_s=not_monitored,
        monitored_from=monitored_from,
    )


def calendar_year(year: int) -> Span:
    """The calendar year in Brussels, as UTC instants."""
    lo = dt.datetime(year, 1, 1, tzinfo=BRUSSELS).astimezone(dt.UTC)
    hi = dt.datetime(year + 1, 1, 1, tzinfo=BRUSSELS).astimezone(dt.UTC)
    return lo, hi


def rolling(now: dt.datetime, days: int) -> Span:
    return now - dt.timedelta(days=days), now


def burn_rate(
    segments: Sequence[Segment],
    excluded: Iterable[Span],
    now: dt.datetime,
    hours: float,
    target: float = TARGET,
    monitored_from: dt.datetime | None = None,
) -> float | None:
    """Error-budget burn rate over the last `hours` (see the module docstring)."""
    lo = now - dt.timedelta(hours=hours)
    f = measure(segments, excluded, lo, now, now, target, monitored_from)
    if f.availability is None:
        return None
    return (1 - f.availability) / (1 - target)


def daily(
    segments: Sequence[Segment],
    excluded: Iterable[Span],
    now: dt.datetime,
    days: int,
    target: float = TARGET,
    monitored_from: dt.datetime | None = None,
) -> list[tuple[dt.date, Figures]]:
    """One figure per Brussels date, the last `days` dates up to today, oldest first."""
    today = now.astimezone(BRUSSELS).date()
    windows = union(excluded)
    out = []
    for back in range(days - 1, -1, -1):
        day = today - dt.timedelta(days=back)
        lo = dt.datetime.combine(day, dt.time(0), BRUSSELS).astimezone(dt.UTC)
        hi = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), BRUSSELS).astimezone(
            dt.UTC
        )
        out.append((day, measure(segments, windows, lo, hi, now, target, monitored_from)))
    return out
