"""Regular, fixed maintenance windows (Annex I 6.5, 6.8): declared once with notice, each
occurrence excluded from downtime by the probe, one-off windows inside one exempt from
notice; the schedule follows the Brussels clock across daylight-saving changes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cdb_service.kernel.calendar import Calendar
from cdb_service.kernel.recurrence import Recurrence
from cdb_service.probe import availability as av
from cdb_service.probe import report
from cdb_service.probe.availability import Sample
from cdb_service.probe.page import html
from cdb_service.probe.store import Store, Window
from tests.support.api import Api

UTC = dt.UTC
V1 = "/api/v1"
TUESDAYS = {"frequency": "weekly", "weekday": "tuesday", "time": "21:00", "duration_minutes": 120}
NO_HOLIDAYS = Calendar(frozenset())


def t(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_a_weekly_window_keeps_its_brussels_hour_across_the_clock_change() -> None:
    schedule = Recurrence.of(TUESDAYS)
    # Tuesdays around the end of summer time (2027-10-31): 19:00 UTC, then 20:00 UTC.
    found = list(schedule.occurrences(t(2027, 10, 18), t(2027, 11, 10)))
    assert found == [
        (t(2027, 10, 19, 19), t(2027, 10, 19, 21)),
        (t(2027, 10, 26, 19), t(2027, 10, 26, 21)),
        (t(2027, 11, 2, 20), t(2027, 11, 2, 22)),
        (t(2027, 11, 9, 20), t(2027, 11, 9, 22)),
    ]
    # The schedule's bounds: only occurrences wholly within them.
    bounded = list(schedule.occurrences(t(2027, 10, 1), t(2027, 12, 1),
                                        (t(2027, 10, 26, 19, 30), t(2027, 11, 9, 21))))  # fmt: skip
    assert bounded == [(t(2027, 11, 2, 20), t(2027, 11, 2, 22))]
    monthly = Recurrence.of({"frequency": "monthly", "day_of_month": 1, "time": "06:00",
                             "duration_minutes": 30})  # fmt: skip
    starts = [lo for lo, _ in monthly.occurrences(t(2027, 1, 1), t(2027, 12, 31, 23))]
    assert len(starts) == 12 and starts[0] == t(2027, 1, 1, 5) and starts[6] == t(2027, 7, 1, 4)
    # A year of a weekly schedule is 52 or 53 occurrences, whatever the schedule's own span.
    ever = Recurrence.of(TUESDAYS).occurrences(t(2027, 1, 1), t(2028, 1, 1),
                                               (t(1970, 1, 1), t(2999, 1, 1)))  # fmt: skip
    assert len(list(ever)) == 52


def _window(ident: str, starts: dt.datetime, ends: dt.datetime, announced: dt.datetime,
            recurrence: dict[str, Any] | None = None, owner: str = "EC") -> Window:  # fmt: skip
    return Window(ident, owner, "cdb", starts, ends, announced, False, "upgrade", recurrence)


def test_the_probe_excludes_each_occurrence_and_one_off_windows_inside_one(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "probe.sqlite3")
    store.set_meta("interval_s", "30")
    regular = _window("regular", t(2027, 3, 1), t(2027, 12, 31), t(2027, 2, 1), TUESDAYS)
    # Announced the day before, inside Tuesday 2027-03-16's occurrence: no notice needed.
    inside = _window("inside", t(2027, 3, 16, 20, 15), t(2027, 3, 16, 20, 45), t(2027, 3, 15))
    # Announced the day before, on a Wednesday: its notice is not met, it counts.
    outside = _window("outside", t(2027, 3, 17, 20), t(2027, 3, 17, 21), t(2027, 3, 16))
    store.replace_windows([regular, inside, outside], t(2027, 3, 1))
    spans = report.excluded_spans(store.windows(), NO_HOLIDAYS, t(2027, 3, 14), t(2027, 3, 21))
    assert sorted(spans) == [(t(2027, 3, 16, 20), t(2027, 3, 16, 22)),
                             (t(2027, 3, 16, 20, 15), t(2027, 3, 16, 20, 45))]  # fmt: skip
    # Down for the whole occurrence on Tuesday and for an hour on Wednesday night:
    # only Wednesday's hour is downtime.
    lo, hi = t(2027, 3, 16), t(2027, 3, 18)
    down = [(t(2027, 3, 16, 20), t(2027, 3, 16, 22)), (t(2027, 3, 17, 20), t(2027, 3, 17, 21))]
    samples, at = [], lo
    while at < hi:
        samples.append(Sample(at, not any(a <= at < b for a, b in down)))
        at += dt.timedelta(seconds=30)
    figures = av.measure(av.timeline(samples, dt.timedelta(seconds=30), lo, hi), spans, lo, hi, hi)
    assert figures.maintenance_s == 2 * 3600
    assert figures.down_s == 3600


def test_a_regular_window_declared_without_notice_excludes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "probe.sqlite3")
    late = _window("late", t(2027, 3, 16), t(2027, 12, 31), t(2027, 3, 15), TUESDAYS)
    store.replace_windows([late], t(2027, 3, 15))
    spans = report.excluded_spans(store.windows(), NO_HOLIDAYS, t(2027, 3, 14), t(2027, 3, 31))
    assert spans == []  # its first occurrence (the 16th) had one working day of notice


def test_the_status_page_names_the_schedule_and_its_next_occurrence(tmp_path: Path) -> None:
    store = Store(tmp_path / "probe.sqlite3")
    store.set_meta("interval_s", "30")
    regular = _window("regular", t(2027, 3, 1), t(2027, 12, 31), t(2027, 2, 1), TUESDAYS)
    store.replace_windows([regular], t(2027, 3, 1))
    picture = report.build(store, now=t(2027, 3, 17, 12), cal=NO_HOLIDAYS)
    (listed,) = picture.maintenance
    assert listed["regular"] == "every Tuesday at 21:00 (Brussels) for 120 min"
    assert listed["next"] == ["2027-03-23T20:00:00Z", "2027-03-23T22:00:00Z"]
    page = html(picture)
    assert "regular, every Tuesday at 21:00 (Brussels) for 120 min" in page
    assert "next 2027-03-23 21:00:00 CET" in page


async def test_a_regular_window_is_declared_once_and_checked_against_its_first_occurrence(
    api: Api,
) -> None:
    now = dt.datetime.now(UTC)
    body = {"owner": "EC", "ref": "tuesdays", "component": "cdb", "reason": "patching",
            "starts_at": (now + dt.timedelta(days=60)).isoformat(),
            "ends_at": (now + dt.timedelta(days=400)).isoformat(),
            "recurrence": TUESDAYS}  # fmt: skip
    async with api.client("operator") as c:
        created = await c.post(f"{V1}/maintenance-windows", json=body)
        assert created.status_code == 201, created.text
        window = created.json()
        assert window["recurrence"] == TUESDAYS
        # Two hours need 5 working days; the first occurrence is some 40 away.
        assert window["required_notice_working_days"] == 5 and window["notice_met"] is True
        assert window["within_preferred_hours"] is True
        soon = body | {"ref": "soon", "starts_at": (now + dt.timedelta(hours=1)).isoformat()}
        hurried = (await c.post(f"{V1}/maintenance-windows", json=soon)).json()
        assert hurried["notice_met"] is False  # allowed, marked: its occurrences count
        for wrong, field in (
            ({"frequency": "weekly", "time": "21:00", "duration_minutes": 60}, "recurrence"),
            (TUESDAYS | {"time": "25:00"}, "time"),
            (TUESDAYS | {"duration_minutes": 3000}, "duration_minutes"),
            ({"frequency": "monthly", "day_of_month": 31, "time": "21:00",
              "duration_minutes": 60}, "day_of_month"),
        ):  # fmt: skip
            refused = await c.post(f"{V1}/maintenance-windows",
                                   json=body | {"ref": "bad", "recurrence": wrong})  # fmt: skip
            assert refused.status_code == 422, refused.text
            assert field in str(refused.json()["errors"]), refused.json()
        # A schedule of one day that holds no Tuesday evening has no occurrence.
        empty = body | {"ref": "empty", "starts_at": "2030-01-02T00:00:00+01:00",
                        "ends_at": "2030-01-03T00:00:00+01:00"}  # a Wednesday  # fmt: skip
        refused = await c.post(f"{V1}/maintenance-windows", json=empty)
        assert refused.status_code == 422 and "no occurrence" in refused.text, refused.text
