"""Working days in China: weekends, public holidays and make-up working days (调休).

The days come from ``holidays.toml`` (one table per year, from the State
Council's yearly notice); :func:`load_calendar` reads it once into a
:class:`WorkCalendar`, a frozen value the pure functions below take:

* :func:`is_working_day` — a local day is worked (Mon–Fri not a holiday, or a
  make-up Saturday/Sunday);
* :func:`add_working_days` — the deadline *N working days after a moment*: the end
  (local midnight) of the Nth working day after the moment's local day;
* :func:`working_days_between` — how many working days start after a moment's
  local day and before another moment (the inverse of the above).

A day of a year the calendar does not hold raises :class:`CalendarError`: an
unknown year's holidays are not guessed. A caller that must still give an answer
(a case's deadline) passes ``strict=False``: such a year then counts Monday–Friday
only, and :func:`covers` tells it the answer is an estimate to be said as such.

The callback windows and the hotline's hours can take the same :class:`WorkCalendar`
(not wired yet: they still read their own settings).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from gateway.errors import GatewayError

SHANGHAI = ZoneInfo("Asia/Shanghai")
# How far add_working_days may look: a safety stop, far beyond any deadline.
MAX_WORKING_DAYS = 1000


class CalendarError(GatewayError):
    """A day outside the calendar's years, or a calendar file that does not hold together."""


@dataclass(frozen=True)
class WorkCalendar:
    years: frozenset[int]
    holidays: frozenset[date]
    workdays: frozenset[date]  # weekend days that are worked (调休)

    def check(self, day: date) -> None:
        if day.year not in self.years:
            held = ", ".join(str(y) for y in sorted(self.years)) or "none"
            raise CalendarError(
                f"the working-day calendar has no data for {day.year} (it holds {held})"
            )


def parse_calendar(data: Mapping[str, Any], source: str = "calendar") -> WorkCalendar:
    """A calendar from the TOML's tables; :class:`CalendarError` naming the first bad entry."""
    years: set[int] = set()
    holidays: set[date] = set()
    workdays: set[date] = set()
    for key, table in data.items():
        if not (key.isdigit() and len(key) == 4) or not isinstance(table, Mapping):
            raise CalendarError(f"{source}: [{key}] is not a year's table")
        year = int(key)
        unknown = set(table) - {"holidays", "workdays"}
        if unknown:
            raise CalendarError(f"{source}: [{key}] unknown key {sorted(unknown)[0]!r}")
        for name, into in (("holidays", holidays), ("workdays", workdays)):
            for text in table.get(name, []):
                try:
                    day = date.fromisoformat(str(text))
                except ValueError:
                    raise CalendarError(f"{source}: [{key}] {name}: not a date {text!r}") from None
                if day.year != year:
                    raise CalendarError(f"{source}: [{key}] {name}: {day} is not in {year}")
                if name == "workdays" and day.isoweekday() < 6:
                    raise CalendarError(f"{source}: [{key}] workdays: {day} is not a weekend day")
                into.add(day)
        years.add(year)
    both = holidays & workdays
    if both:
        raise CalendarError(f"{source}: {min(both)} is both a holiday and a working day")
    return WorkCalendar(frozenset(years), frozenset(holidays), frozenset(workdays))


def load_calendar() -> WorkCalendar:
    """The calendar shipped with the gateway (``holidays.toml``)."""
    text = resources.files(__package__).joinpath("holidays.toml").read_text("utf-8")
    return parse_calendar(tomllib.loads(text), "holidays.toml")


def covers(calendar: WorkCalendar, start: datetime, end: datetime, tz: ZoneInfo = SHANGHAI) -> bool:
    """True if the calendar holds every year from ``start``'s local day to ``end``'s."""
    first, last = start.astimezone(tz).year, end.astimezone(tz).year
    return all(year in calendar.years for year in range(first, last + 1))


def is_working_day(calendar: WorkCalendar, day: date, *, strict: bool = True) -> bool:
    """True if ``day`` is worked: a weekday that is no holiday, or a make-up weekend day.
    Not ``strict``: a day of a year without data is worked if Monday–Friday."""
    if strict or day.year in calendar.years:
        calendar.check(day)
    if day in calendar.workdays:
        return True
    return day.isoweekday() < 6 and day not in calendar.holidays


def add_working_days(
    calendar: WorkCalendar,
    moment: datetime,
    days: int,
    tz: ZoneInfo = SHANGHAI,
    *,
    strict: bool = True,
) -> datetime:
    """The end (next local midnight, in ``tz``) of the ``days``-th working day after the
    local day of ``moment``: what "within N working days" means for a deadline.

    The moment's own day never counts, worked or not; ``days`` = 0 is the end of that day.
    """
    if moment.tzinfo is None:
        raise ValueError("add_working_days needs a timezone-aware moment")
    if not 0 <= days <= MAX_WORKING_DAYS:
        raise ValueError(f"working days must be 0–{MAX_WORKING_DAYS}, got {days}")
    day = moment.astimezone(tz).date()
    left = days
    while left:
        day += timedelta(days=1)
        if is_working_day(calendar, day, strict=strict):
            left -= 1
    return _start_of(day + timedelta(days=1), tz)


def working_days_between(
    calendar: WorkCalendar, start: datetime, end: datetime, tz: ZoneInfo = SHANGHAI
) -> int:
    """Working days that begin after ``start``'s local day and before ``end``:
    ``working_days_between(c, m, add_working_days(c, m, n)) == n``. 0 if ``end`` comes first."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("working_days_between needs timezone-aware moments")
    day = start.astimezone(tz).date() + timedelta(days=1)
    count = 0
    while _start_of(day, tz) < end:
        if is_working_day(calendar, day):
            count += 1
        day += timedelta(days=1)
    return count


def _start_of(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)
