"""The day, week or range a report covers, checked before anything is read.

Reports cover whole local days that are over: a daily log yesterday or earlier (or,
on demand, today so far), a weekly report a finished ISO week, a period report at
most :data:`MAX_RANGE_DAYS` days ending today at the latest (today: its figures so far). A
meeting agenda is for a meeting day (Tuesday, Thursday, Saturday unless configured
otherwise), at most :data:`AGENDA_AHEAD_DAYS` ahead. Each refusal is a
:class:`ReportRefused` with one line for the operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from gateway.reports.errors import ReportRefused

MAX_RANGE_DAYS = 366
AGENDA_AHEAD_DAYS = 14
_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)


@dataclass(frozen=True)
class Span:
    """Local days ``first`` to ``last`` (both included) and the UTC span they cover."""

    kind: str  # 'daily', 'weekly', 'period', 'agenda'
    key: str  # 2026-11-30, 2026-W48, 2026-11-01..2026-11-30
    first: date
    last: date
    since: datetime
    until: datetime

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def label(self) -> str:
        """How people read it: 2026年11月30日, or 2026年11月23日至11月29日."""
        if self.first == self.last:
            return f"{self.first.year}年{self.first.month}月{self.first.day}日"
        end = f"{self.last.month}月{self.last.day}日"
        if self.last.year != self.first.year:
            end = f"{self.last.year}年" + end
        return f"{self.first.year}年{self.first.month}月{self.first.day}日至{end}"


def span(kind: str, key: str, first: date, last: date, tz: tzinfo) -> Span:
    since = datetime.combine(first, time(), tz).astimezone(UTC)
    until = datetime.combine(last + timedelta(days=1), time(), tz).astimezone(UTC)
    return Span(kind, key, first, last, since, until)


def parse_day(text: str, what: str = "date") -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ReportRefused(f"{what} {text!r} is not a date YYYY-MM-DD") from None


def daily_span(day: date, today: date, tz: tzinfo) -> Span:
    """The daily log's day: a past day, or today so far (on demand only)."""
    if day > today:
        raise ReportRefused(f"{day} is in the future (today is {today})")
    return span("daily", day.isoformat(), day, day, tz)


def week_key(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def parse_week(text: str) -> date:
    """The Monday of an ISO week written 2026-W48 (or a date inside it)."""
    cleaned = text.strip()
    match = _WEEK.match(cleaned)
    if match is None:
        try:
            day = date.fromisoformat(cleaned)
        except ValueError:
            raise ReportRefused(
                f"week {text!r} is neither an ISO week YYYY-Www (2026-W48) nor a date"
            ) from None
        return day - timedelta(days=day.isoweekday() - 1)
    try:
        return date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise ReportRefused(f"week {text!r} does not exist") from None


def weekly_span(monday: date, today: date, tz: tzinfo) -> Span:
    """The weekly report's week (Monday to Sunday): a whole week that is over."""
    sunday = monday + timedelta(days=6)
    if sunday >= today:
        raise ReportRefused(
            f"week {week_key(monday)} ends on {sunday}, which is not over yet (today is {today})"
        )
    return span("weekly", week_key(monday), monday, sunday, tz)


def range_span(first: date, last: date, today: date, tz: tzinfo) -> Span:
    """A period report's range: forwards, at most :data:`MAX_RANGE_DAYS`, not in the future."""
    if last < first:
        raise ReportRefused(f"the range ends ({last}) before it starts ({first})")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise ReportRefused(
            f"the range {first}..{last} covers {(last - first).days + 1} days;"
            f" at most {MAX_RANGE_DAYS}"
        )
    if last > today:
        raise ReportRefused(f"the range ends in the future ({last}; today is {today})")
    return span("period", f"{first}..{last}", first, last, tz)


def agenda_day(day: date, today: date, meeting_weekdays: tuple[int, ...]) -> date:
    """A meeting's day: one of ``meeting_weekdays``, not too far ahead."""
    if day.isoweekday() not in meeting_weekdays:
        # 2024-01-01 was a Monday: date(2024, 1, d) is ISO weekday d.
        names = ", ".join(date(2024, 1, d).strftime("%A") for d in sorted(meeting_weekdays))
        raise ReportRefused(f"{day} is a {day.strftime('%A')}, not a meeting day ({names})")
    if day > today + timedelta(days=AGENDA_AHEAD_DAYS):
        raise ReportRefused(
            f"{day} is more than {AGENDA_AHEAD_DAYS} days ahead: its agenda is not known yet"
        )
    return day
