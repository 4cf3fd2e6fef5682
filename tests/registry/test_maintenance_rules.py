"""Annex I 6.3–6.4: working-day notice, preferred hours, derived fields of maintenance windows."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from cdb_service.kernel.calendar import (
    HOLIDAYS_FILE,
    Calendar,
    notice_met,
    notice_working_days,
    required_notice_working_days,
    within_preferred_hours,
)
from tests.support.api import Api

UTC = dt.UTC
V1 = "/api/v1"
NO_HOLIDAYS = Calendar(frozenset())


def t(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# 2027-06-07 is a Monday; 2027-06-14 the Monday after.
ANNOUNCED = t(2027, 6, 7, 10)
START = t(2027, 6, 14, 18)  # 20:00 CEST


def test_four_hours_announced_five_working_days_before_is_met() -> None:
    end = START + dt.timedelta(hours=4)
    assert required_notice_working_days(START, end) == 5
    assert notice_working_days(ANNOUNCED, START, NO_HOLIDAYS) == 5  # Tue … Mon
    assert notice_met(ANNOUNCED, START, end, NO_HOLIDAYS)
    # One day later is too late.
    assert not notice_met(ANNOUNCED + dt.timedelta(days=1), START, end, NO_HOLIDAYS)


def test_a_public_holiday_in_between_is_not_a_working_day() -> None:
    end = START + dt.timedelta(hours=4)
    holiday = Calendar(frozenset({dt.date(2027, 6, 10)}))
    assert notice_working_days(ANNOUNCED, START, holiday) == 4
    assert not notice_met(ANNOUNCED, START, end, holiday)


def test_four_hours_and_one_minute_needs_ten_then_thirty_beyond_twelve() -> None:
    assert required_notice_working_days(START, START + dt.timedelta(hours=4, minutes=1)) == 10
    assert not notice_met(ANNOUNCED, START, START + dt.timedelta(hours=4, minutes=1), NO_HOLIDAYS)
    assert required_notice_working_days(START, START + dt.timedelta(hours=12)) == 10
    assert required_notice_working_days(START, START + dt.timedelta(hours=12, minutes=1)) == 30
    # Announced after (or at) the start is never sufficient notice.
    assert not notice_met(START, START, START + dt.timedelta(hours=1), NO_HOLIDAYS)


def test_preferred_hours_follow_the_brussels_clock_across_a_dst_change() -> None:
    # 2027-03-28 (Sunday): CET (UTC+1) → CEST (UTC+2). Thursday 25 March is Maundy Thursday
    # and Monday 29 March Easter Monday (EU institutions' holidays): use Wednesday and Tuesday.
    cal = Calendar.load()
    before, after = dt.date(2027, 3, 24), dt.date(2027, 3, 30)  # Wednesday, Tuesday
    assert not cal.is_working_day(dt.date(2027, 3, 29))
    assert cal.is_working_day(before) and cal.is_working_day(after)

    def utc(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(hour, minute), UTC)

    # 19:00–20:00 UTC is 20:00–21:00 in winter, 21:00–22:00 in summer: preferred in both.
    assert within_preferred_hours(utc(before, 19), utc(before, 20), cal)
    assert within_preferred_hours(utc(after, 19), utc(after, 20), cal)
    # 18:30 UTC is 19:30 CET (too early) but 20:30 CEST (fine).
    assert not within_preferred_hours(utc(before, 18, 30), utc(before, 19, 30), cal)
    assert within_preferred_hours(utc(after, 18, 30), utc(after, 19, 30), cal)
    # 05:30–06:00 UTC is 06:30–07:00 CET (fine) but 07:30–08:00 CEST (daytime).
    assert not within_preferred_hours(utc(after, 5, 30), utc(after, 6), cal)  # 07:30 CEST
    assert within_preferred_hours(utc(before, 5, 30), utc(before, 6), cal)  # 06:30–07:00 CET
    # A whole night from a working evening to the next morning is preferred (the next day
    # being a holiday does not matter: the night belongs to its evening) …
    assert within_preferred_hours(utc(before, 19), utc(before + dt.timedelta(days=1), 6), cal)
    # … the night that begins on Good Friday (a holiday) is not, nor the Sunday night of
    # the change itself, nor two nights with the day between, nor a daytime window.
    assert not within_preferred_hours(
        utc(dt.date(2027, 3, 26), 21), utc(dt.date(2027, 3, 26), 22), cal
    )
    sunday = dt.date(2027, 3, 28)
    assert not within_preferred_hours(utc(sunday, 0, 30), utc(sunday, 2), cal)  # 01:30–04:00
    assert not within_preferred_hours(utc(before, 19), utc(before + dt.timedelta(days=1), 19), cal)
    assert not within_preferred_hours(utc(before, 10), utc(before, 11), cal)
    # A working Friday night into Saturday morning (CEST, after the change) is preferred.
    friday = dt.date(2027, 4, 2)
    assert within_preferred_hours(utc(friday, 18), utc(friday + dt.timedelta(days=1), 5), cal)


def test_the_default_calendar_is_the_eu_institutions_holidays_data_file() -> None:
    data = json.loads(Path(HOLIDAYS_FILE).read_text("utf-8"))
    cal = Calendar.load()
    assert {2026, 2027, 2028} <= cal.years
    assert dt.date(2027, 5, 9) in cal.holidays  # Schuman day
    assert dt.date(2027, 3, 26) in cal.holidays  # Good Friday
    assert dt.date(2027, 12, 27) in cal.holidays  # end-of-year closure
    assert len(data["years"]["2027"]) >= 15


# --- the API ---------------------------------------------------------------------------


def _window(starts: dt.datetime, hours: float, ref: str = "w1") -> dict[str, Any]:
    return {
        "owner": "EC", "ref": ref, "component": "cdb", "reason": "database upgrade",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + dt.timedelta(hours=hours)).isoformat(),
    }  # fmt: skip


async def test_windows_carry_derived_fields_announced_at_is_fixed_and_they_are_cancelled(
    api: Api,
) -> None:
    now = dt.datetime.now(UTC)
    far = (now + dt.timedelta(days=60)).replace(hour=19, minute=0, second=0, microsecond=0)
    async with api.client("operator") as c:
        created = await c.post(f"{V1}/maintenance-windows", json=_window(far, 2))
        assert created.status_code == 201, created.text
        w = created.json()
        assert w["required_notice_working_days"] == 5
        assert w["notice_met"] is True
        assert w["notice_working_days"] >= 30
        assert isinstance(w["within_preferred_hours"], bool)
        announced = w["announced_at"]
        url = f"{V1}/maintenance-windows/{w['id']}"

        # A client cannot set server or derived fields: what it sends there is ignored.
        forged = _window(far, 2) | {"announced_at": "2020-01-01T00:00:00Z", "notice_met": False,
                                    "required_notice_working_days": 1}  # fmt: skip
        kept = await c.put(url, json=forged, headers={"If-Match": '"1"'})
        assert kept.status_code == 200, kept.text
        k = kept.json()
        assert (k["announced_at"], k["notice_met"]) == (announced, True)
        assert k["required_notice_working_days"] == 5

        # Moving the window to tomorrow: derived fields follow, announced_at stays.
        soon = now + dt.timedelta(days=1)
        moved = await c.put(url, json=_window(soon, 13), headers={"If-Match": '"2"'})
        assert moved.status_code == 200, moved.text
        m = moved.json()
        assert m["announced_at"] == announced
        assert m["required_notice_working_days"] == 30
        assert m["notice_met"] is False  # allowed, but marked

        # Never deleted: cancelled instead.
        refused = await c.delete(url, headers={"If-Match": '"3"'})
        assert refused.status_code == 409
        assert "cancel" in refused.json()["detail"]
        cancelled = await c.put(
            url, json=_window(soon, 13) | {"cancelled": True}, headers={"If-Match": '"3"'}
        )
        assert cancelled.status_code == 200
        assert cancelled.json()["cancelled"] is True
        assert (await c.get(url)).json()["version"] == 4
        listed = (await c.get(f"{V1}/maintenance-windows")).json()["items"]
        assert [x["notice_met"] for x in listed] == [False]
