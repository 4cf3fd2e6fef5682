"""Regular, fixed maintenance windows (Annex I 6.5 and 6.8): a day and a time that repeat,
declared once, each occurrence exempt from notice (pure functions).

A regular window is a maintenance window with a `recurrence`:

    {"frequency": "weekly", "weekday": "tuesday", "time": "21:00", "duration_minutes": 120}
    {"frequency": "monthly", "day_of_month": 1, "time": "21:00", "duration_minutes": 120}

`time` is on the Brussels clock (CET/CEST, as the regulation's 20:00–07:00), so an
occurrence starts at 21:00 in winter and in summer alike; `duration_minutes` is real
time. A monthly day is 1 to 28, a day every month has. The window's `starts_at` and
`ends_at` bound the schedule: occurrences start on or after `starts_at` and end by
`ends_at`. The notice of Annex I 6.4 is checked once, when the schedule is declared,
against its first occurrence; later occurrences need none.

Expansion is bounded by the range asked for (`occurrences(since, until)`): one step per
week or month of the range, never the schedule's whole life.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

BRUSSELS = ZoneInfo("Europe/Brussels")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FREQUENCIES = ("weekly", "monthly")
LONGEST_MINUTES = 24 * 60  # an occurrence longer than a day is not a regular window
Span = tuple[dt.datetime, dt.datetime]


@dataclass(frozen=True)
class Recurrence:
    frequency: str
    time: dt.time
    minutes: int
    weekday: int | None = None  # 0 = Monday (weekly)
    day_of_month: int | None = None  # 1 … 28 (monthly)

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> Recurrence:
        """From a window's `recurrence` member (as validated on the way in)."""
        hours, minutes = (int(part) for part in str(document["time"]).split(":"))
        weekday = document.get("weekday")
        return cls(
            frequency=str(document["frequency"]),
            time=dt.time(hours, minutes),
            minutes=int(document["duration_minutes"]),
            weekday=WEEKDAYS.index(weekday) if weekday else None,
            day_of_month=document.get("day_of_month"),
        )

    @property
    def duration(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.minutes)

    def _days(self, first: dt.date, last: dt.date) -> Iterator[dt.date]:
        if self.frequency == "weekly":
            day = first + dt.timedelta(days=((self.weekday or 0) - first.weekday()) % 7)
            while day <= last:
                yield day
                day += dt.timedelta(days=7)
            return
        year, month = first.year, first.month
        while True:
            day = dt.date(year, month, self.day_of_month or 1)
            if day > last:
                return
            if day >= first:
                yield day
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def occurrences(self, since: dt.datetime, until: dt.datetime,
                    schedule: Span | None = None) -> Iterator[Span]:  # fmt: skip
        """The occurrences that overlap [since, until), within the schedule's bounds
        (`schedule`: the window's starts_at and ends_at), in time order."""
        lo, hi = since, until
        if schedule is not None:
            lo, hi = max(lo, schedule[0]), min(hi, schedule[1])
        if hi <= lo:
            return
        # A day before: an occurrence that began the evening before may still run.
        first = lo.astimezone(BRUSSELS).date() - dt.timedelta(days=1)
        for day in self._days(first, hi.astimezone(BRUSSELS).date()):
            start = dt.datetime.combine(day, self.time, BRUSSELS).astimezone(dt.UTC)
            end = start + self.duration
            if schedule is not None and (start < schedule[0] or end > schedule[1]):
                continue
            if end > since and start < until:
                yield start, end

    def first(self, schedule: Span) -> Span | None:
        """The schedule's first occurrence (the one its notice is checked against)."""
        horizon = schedule[0] + dt.timedelta(days=62)  # a monthly day always comes by then
        return next(self.occurrences(schedule[0], min(horizon, schedule[1]), schedule), None)

    def words(self) -> str:
        """The schedule as the status page says it: "every Tuesday at 21:00 for 120 min"."""
        when = (f"every {WEEKDAYS[self.weekday or 0].title()}" if self.frequency == "weekly"
                else f"on day {self.day_of_month} of every month")  # fmt: skip
        return f"{when} at {self.time:%H:%M} (Brussels) for {self.minutes} min"
