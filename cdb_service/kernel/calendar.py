"""Working days and the maintenance rules of Annex I 6.3–6.4 (pure functions).

Dates are civil dates in Europe/Brussels ("CET" in the regulation is read as the
clock in Brussels: CET in winter, CEST in summer).

* Working day: Monday to Friday and not a public holiday of the calendar in use
  (default: the EU institutions' holidays, `seed/holidays/eu-institutions.json`;
  `CDB_HOLIDAYS_FILE` names another file of the same shape).
* Required notice (6.4), by planned duration d = ends_at − starts_at:
  d ≤ 4 h → 5 working days; 4 h < d ≤ 12 h → 10; d > 12 h → 30.
* Notice given = the number of working days D with  date(announced_at) < D ≤ date(starts_at),
  i.e. a window starting on Monday 8 days after an announcement on the Monday before has
  5 working days of notice (Tuesday … Monday). Met when given ≥ required.
* Preferred hours (6.3): the window lies wholly in nights of working days, the night of
  date D being [D 20:00, D+1 07:00) on the Brussels clock and D a working day. The night
  from a working Friday into Saturday counts; the night from Sunday into Monday does not.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cdb_service.kernel.resources import seed_dir

BRUSSELS = ZoneInfo("Europe/Brussels")
HOLIDAYS_FILE = seed_dir() / "holidays" / "eu-institutions.json"
HOUR = dt.timedelta(hours=1)
PREFERRED_FROM = dt.time(20, 0)
PREFERRED_UNTIL = dt.time(7, 0)
# The years a date of the calendar may lie in (windows, incidents, the console's notice
# check): every computation below is bounded for them, and a date outside is refused
# where it is given (422 naming the field).
YEARS = range(1970, 3000)
# The longest preferred night (20:00 to 07:00, 12 h when the clocks go back): a longer
# window cannot lie within one, whatever the calendar says.
LONGEST_NIGHT = dt.timedelta(hours=12)


class OutsideCalendar(ValueError):
    """A date outside `YEARS`: said as "must lie in the years …"."""


def check_year(moment: dt.datetime | dt.date) -> None:
    """Refuses a moment whose year (in UTC for a time with a zone) is outside `YEARS`."""
    try:
        year = (moment.astimezone(dt.UTC) if isinstance(moment, dt.datetime)
                and moment.tzinfo else moment).year  # fmt: skip
    except OverflowError:
        year = 0
    if year not in YEARS:
        raise OutsideCalendar(f"must lie in the years {YEARS.start} to {YEARS.stop - 1}")


@dataclass(frozen=True)
class Calendar:
    holidays: frozenset[dt.date]
    years: frozenset[int] = frozenset()

    @property
    def _weekday_holidays(self) -> tuple[int, ...]:
        """The holidays that fall on a weekday, as sorted ordinals (computed once)."""
        cached: tuple[int, ...] | None = self.__dict__.get("_sorted")
        if cached is None:
            cached = tuple(sorted(d.toordinal() for d in self.holidays if d.weekday() < 5))
            object.__setattr__(self, "_sorted", cached)
        return cached

    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def working_days_between(self, after: dt.date, up_to: dt.date) -> int:
        """Working days D with after < D ≤ up_to: weekdays by arithmetic, less the
        weekday holidays found by bisection (O(log holidays) for any two dates)."""
        first, last = after.toordinal() + 1, up_to.toordinal()
        if last < first:
            return 0
        weekdays = _weekdays_up_to(last) - _weekdays_up_to(first - 1)
        holidays = self._weekday_holidays
        return weekdays - (bisect.bisect_right(holidays, last)
                           - bisect.bisect_left(holidays, first))  # fmt: skip

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Calendar:
        days = {
            dt.date.fromisoformat(item["date"] if isinstance(item, dict) else item)
            for items in document.get("years", {}).values()
            for item in items
        }
        years = frozenset(int(y) for y in document.get("years", {}))
        return cls(frozenset(days), years)

    @classmethod
    def load(cls, path: Path | str | None = None) -> Calendar:
        chosen = path or os.environ.get("CDB_HOLIDAYS_FILE") or HOLIDAYS_FILE
        return _load(str(chosen))


def _weekdays_up_to(ordinal: int) -> int:
    """Mondays to Fridays among the days 1 … `ordinal` (day 1, 0001-01-01, is a Monday)."""
    weeks, rest = divmod(ordinal, 7)
    return weeks * 5 + min(rest, 5)


@lru_cache(maxsize=8)
def _load(path: str) -> Calendar:
    return Calendar.from_document(json.loads(Path(path).read_text("utf-8")))


def default_calendar() -> Calendar:
    return Calendar.load()


def today() -> dt.date:
    """Today on the Brussels clock: the default date of look-ups and routing tables."""
    return dt.datetime.now(BRUSSELS).date()


def local_date(at: dt.datetime) -> dt.date:
    return at.astimezone(BRUSSELS).date()


def required_notice_working_days(starts_at: dt.datetime, ends_at: dt.datetime) -> int:
    duration = ends_at - starts_at
    if duration <= 4 * HOUR:
        return 5
    if duration <= 12 * HOUR:
        return 10
    return 30


def notice_working_days(announced_at: dt.datetime, starts_at: dt.datetime, cal: Calendar) -> int:
    return cal.working_days_between(local_date(announced_at), local_date(starts_at))


def notice_met(
    announced_at: dt.datetime, starts_at: dt.datetime, ends_at: dt.datetime, cal: Calendar
) -> bool:
    if announced_at >= starts_at:
        return False
    given = notice_working_days(announced_at, starts_at, cal)
    return given >= required_notice_working_days(starts_at, ends_at)


def _at(day: dt.date, time: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, time, BRUSSELS)


def _outside_preferred(day: dt.date, cal: Calendar) -> Iterable[tuple[dt.datetime, dt.datetime]]:
    """Daytime of date D, and the night that follows it when D is not a working day."""
    yield _at(day, PREFERRED_UNTIL), _at(day, PREFERRED_FROM)
    if not cal.is_working_day(day):
        yield _at(day, PREFERRED_FROM), _at(day + dt.timedelta(days=1), PREFERRED_UNTIL)


def within_preferred_hours(starts_at: dt.datetime, ends_at: dt.datetime, cal: Calendar) -> bool:
    if ends_at - starts_at > LONGEST_NIGHT:  # some daytime lies within it: a few days walked
        return False
    day, last = local_date(starts_at) - dt.timedelta(days=1), local_date(ends_at)
    while day <= last:
        for lo, hi in _outside_preferred(day, cal):
            if lo < ends_at and starts_at < hi:
                return False
        day += dt.timedelta(days=1)
    return True


@dataclass(frozen=True)
class Derived:
    required_notice_working_days: int
    notice_working_days: int
    notice_met: bool
    within_preferred_hours: bool


def derive(
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    announced_at: dt.datetime,
    cal: Calendar | None = None,
) -> Derived:
    for moment in (starts_at, ends_at, announced_at):
        check_year(moment)
    cal = cal or default_calendar()
    return Derived(
        required_notice_working_days(starts_at, ends_at),
        notice_working_days(announced_at, starts_at, cal),
        notice_met(announced_at, starts_at, ends_at, cal),
        within_preferred_hours(starts_at, ends_at, cal),
    )
