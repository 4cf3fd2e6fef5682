"""Golden tests of the availability maths (probe/availability.py) on synthetic timelines."""

from __future__ import annotations

import datetime as dt

import pytest

from cdb_service.kernel.calendar import Calendar, notice_met
from cdb_service.probe import availability as av
from cdb_service.probe.availability import Sample, State

UTC = dt.UTC
IV = dt.timedelta(seconds=30)
H = 3600.0


def steady(lo: dt.datetime, hi: dt.datetime, down: list[tuple[dt.datetime, dt.datetime]] = ()
           ) -> list[Sample]:  # fmt: skip
    """A sample every 30 s in [lo, hi); failed inside the `down` spans."""
    out, t = [], lo
    while t < hi:
        out.append(Sample(t, not any(a <= t < b for a, b in down)))
        t += IV
    return out


def figures(samples, excluded, lo, hi, now=None):  # type: ignore[no-untyped-def]
    now = now or hi
    segments = av.timeline(samples, IV, lo, now)
    return av.measure(segments, excluded, lo, hi, now)


def t(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


DAY_LO, DAY_HI = t(2027, 3, 10), t(2027, 3, 11)


def test_a_year_with_no_data_is_all_unknown_never_silently_up() -> None:
    lo, hi = av.calendar_year(2027)
    f = figures([], [], lo, hi)
    assert f.total_s == 365 * 24 * H
    assert f.unknown_s == f.total_s and f.down_s == 0
    assert f.availability == 0.0
    assert f.optimistic is None  # nothing known: no optimistic figure either
    assert f.budget_h == pytest.approx(87.6)
    assert f.remaining_budget_h == pytest.approx(87.6 - 8760)


def test_a_clean_day_is_fully_available() -> None:
    f = figures(steady(DAY_LO, DAY_HI), [], DAY_LO, DAY_HI)
    assert (f.down_s, f.unknown_s, f.maintenance_s) == (0, 0, 0)
    assert f.availability == 1.0 == f.optimistic


def test_an_outage_inside_a_valid_window_is_excluded() -> None:
    window = (t(2027, 3, 10, 20), t(2027, 3, 10, 22))
    outage = (t(2027, 3, 10, 20, 30), t(2027, 3, 10, 21, 30))
    f = figures(steady(DAY_LO, DAY_HI, [outage]), [window], DAY_LO, DAY_HI)
    assert f.maintenance_s == 2 * H
    assert f.down_s == 0
    assert f.availability == 1.0


def test_an_overrun_of_a_valid_window_counts_as_downtime() -> None:
    window = (t(2027, 3, 10, 20), t(2027, 3, 10, 22))
    outage = (t(2027, 3, 10, 20), t(2027, 3, 10, 22, 45))  # 45 min past the planned end
    f = figures(steady(DAY_LO, DAY_HI, [outage]), [window], DAY_LO, DAY_HI)
    assert f.maintenance_s == 2 * H
    assert f.down_s == 45 * 60
    assert f.availability == pytest.approx(1 - 0.75 / 22)


def test_an_outage_inside_a_window_announced_too_late_is_counted() -> None:
    starts, ends = t(2027, 3, 10, 20), t(2027, 3, 10, 22)
    announced = t(2027, 3, 8, 9)  # two working days before a 2 h window: 5 are required
    cal = Calendar(frozenset())
    assert not notice_met(announced, starts, ends, cal)
    excluded = [(starts, ends)] if notice_met(announced, starts, ends, cal) else []
    f = figures(steady(DAY_LO, DAY_HI, [(starts, ends)]), excluded, DAY_LO, DAY_HI)
    assert f.maintenance_s == 0
    assert f.down_s == 2 * H
    assert f.availability == pytest.approx(22 / 24)


def test_gaps_longer_than_two_intervals_are_unknown_shorter_ones_are_not() -> None:
    samples = [s for s in steady(DAY_LO, DAY_HI)
               if not t(2027, 3, 10, 12) < s.at < t(2027, 3, 10, 13)]  # fmt: skip
    # One missing sample (a 60 s gap) does not make anything unknown.
    short = [s for s in steady(DAY_LO, DAY_HI) if s.at != t(2027, 3, 10, 6)]
    assert figures(short, [], DAY_LO, DAY_HI).unknown_s == 0
    f = figures(samples, [], DAY_LO, DAY_HI)
    # The last sample before the gap (12:00:00) stands for one interval; the rest is unknown.
    assert f.unknown_s == H - 30
    assert f.down_s == 0
    assert f.availability == pytest.approx(1 - (H - 30) / (24 * H))
    assert f.optimistic == 1.0
    states = [seg.state for seg in av.timeline(samples, IV, DAY_LO, DAY_HI)]
    assert states == [State.UP, State.UNKNOWN, State.UP]


def test_a_year_boundary_is_midnight_in_brussels_not_utc() -> None:
    lo2026, hi2026 = av.calendar_year(2026)
    assert lo2026 == t(2025, 12, 31, 23) and hi2026 == t(2026, 12, 31, 23)  # CET, UTC+1
    # An outage from 23:30 to 00:30 Brussels time on New Year's night (22:30–23:30 UTC).
    outage = (t(2025, 12, 31, 22, 30), t(2025, 12, 31, 23, 30))
    samples = steady(t(2025, 12, 31, 20), t(2026, 1, 1, 2), [outage])
    lo2025, _ = av.calendar_year(2025)
    segments = av.timeline(samples, IV, lo2025, t(2026, 1, 1, 2))
    old = av.measure(segments, [], lo2025, lo2026, t(2026, 1, 1, 2))
    new = av.measure(segments, [], lo2026, hi2026, t(2026, 1, 1, 2))
    assert old.down_s == 30 * 60 and new.down_s == 30 * 60
    assert new.total_s == 3 * H  # 00:00–03:00 Brussels so far
    # Summer time does not move the year: the 2026 year has 8760 h, DST days included.
    assert (hi2026 - lo2026) == dt.timedelta(days=365)
    # A day of the March change has 23 h, of the October change 25 h, in Brussels.
    march = av.daily([], [], t(2026, 3, 29, 12), 1)[0][1]
    october = av.daily([], [], t(2026, 10, 25, 12), 1)[0][1]
    assert (march.end - march.start) == dt.timedelta(hours=23)
    assert (october.end - october.start) == dt.timedelta(hours=25)


def test_a_leap_year_has_366_days_and_a_larger_budget() -> None:
    lo, hi = av.calendar_year(2028)
    assert hi - lo == dt.timedelta(days=366)
    f = figures([], [], lo, hi, now=lo)
    assert f.budget_h == pytest.approx(0.01 * 366 * 24)  # 87.84 h
    day = (t(2028, 2, 29), t(2028, 3, 1))
    g = figures(steady(*day, [(t(2028, 2, 29, 10), t(2028, 2, 29, 11))]), [], lo, hi, now=day[1])
    assert g.down_s == H
    assert g.remaining_budget_h == pytest.approx(87.84 - 1 - (59 * 24 + 1))  # unknown since 23:00Z


def test_flapping_single_failures_are_not_outages_until_confirmed_then_counted_from_first() -> None:
    base = steady(DAY_LO, DAY_HI)
    flaps = {t(2027, 3, 10, 8), t(2027, 3, 10, 9), t(2027, 3, 10, 10)}
    samples = [Sample(s.at, s.at not in flaps) for s in base]
    f = figures(samples, [], DAY_LO, DAY_HI)
    assert f.down_s == 0  # single failures between successes
    assert [o.confirmed for o in av.outages(samples)] == [False, False, False]
    # Two consecutive failures: an outage from the first failed sample to the first success.
    pair = {t(2027, 3, 10, 14), t(2027, 3, 10, 14, 0, 30)}
    samples = [Sample(s.at, s.at not in pair) for s in samples]
    f = figures(samples, [], DAY_LO, DAY_HI)
    assert f.down_s == 60
    confirmed = [o for o in av.outages(samples) if o.confirmed]
    assert confirmed == [av.Outage(t(2027, 3, 10, 14), t(2027, 3, 10, 14, 1), True, 2)]


def test_an_unconfirmed_latest_failure_is_not_yet_down() -> None:
    samples = [*steady(DAY_LO, t(2027, 3, 10, 1)), Sample(t(2027, 3, 10, 1), False)]
    segments = av.timeline(samples, IV, DAY_LO, t(2027, 3, 10, 1, 0, 20))
    assert {s.state for s in segments} == {State.UP}


def test_rolling_windows_burn_rate_and_overlapping_windows() -> None:
    now = t(2027, 6, 1, 12)
    lo = now - dt.timedelta(days=30)
    outage = (now - dt.timedelta(minutes=30), now - dt.timedelta(minutes=24))
    samples = steady(lo, now, [outage])
    segments = av.timeline(samples, IV, lo, now)
    f = av.measure(segments, [], *av.rolling(now, 30), now)
    assert f.down_s == 6 * 60
    assert f.budget_h == pytest.approx(7.2)
    assert f.remaining_budget_h == pytest.approx(7.2 - 0.1)
    # 6 minutes of one hour down: 10 % errors, 10× the 1 % allowed.
    assert av.burn_rate(segments, [], now, 1) == pytest.approx(10.0)
    assert av.burn_rate(segments, [], now, 6) == pytest.approx(10.0 / 6)
    # Overlapping windows are counted once.
    w = [(now - dt.timedelta(hours=3), now - dt.timedelta(hours=1)),
         (now - dt.timedelta(hours=2), now - dt.timedelta(minutes=50))]  # fmt: skip
    assert av.measure(segments, w, lo, now, now).maintenance_s == 2 * H + 10 * 60
