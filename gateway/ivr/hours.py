"""Working hours of the hotline, in local time: spans of the day, working days, holidays."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from gateway.clock import LOCAL_TZ


class HoursError(ValueError):
    """A working-hours setting cannot be read."""


# The end of the day, as a working-hours span may end: "00:00-24:00" is the whole day.
END_OF_DAY = "24:00"
SECONDS_PER_DAY = 24 * 3600


def _seconds(moment: time) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _span_bound(text: str, *, end: bool) -> int:
    """Seconds since midnight of ``HH:MM``; an end may also be ``24:00``."""
    if end and text == END_OF_DAY:
        return SECONDS_PER_DAY
    return _seconds(time.fromisoformat(text))


@dataclass(frozen=True)
class WorkingHours:
    # Each span is [start, end) in seconds since local midnight; an end of 86400 is 24:00.
    spans: tuple[tuple[int, int], ...]
    days: frozenset[int]  # ISO weekdays, 1 = Monday
    holidays: frozenset[date] = frozenset()
    tz: ZoneInfo = LOCAL_TZ

    @classmethod
    def parse(
        cls,
        spans: str,
        days: Iterable[int] = (1, 2, 3, 4, 5),
        holidays: Iterable[str] = (),
        tz: ZoneInfo = LOCAL_TZ,
    ) -> WorkingHours:
        """``spans`` like ``"08:30-17:30"``, ``"08:30-12:00,13:30-17:30"`` or, for a
        hotline staffed round the clock, ``"00:00-24:00"``."""
        parsed: list[tuple[int, int]] = []
        for part in spans.split(","):
            start_text, sep, end_text = part.strip().partition("-")
            try:
                start = _span_bound(start_text.strip(), end=False)
                end = _span_bound(end_text.strip(), end=True)
            except ValueError:
                raise HoursError(f"working hours {part.strip()!r}: use HH:MM-HH:MM") from None
            if not sep or start >= end:
                raise HoursError(f"working hours {part.strip()!r}: start must precede end")
            parsed.append((start, end))
        day_set = frozenset(days)
        if not day_set or not day_set <= set(range(1, 8)):
            raise HoursError(f"working days {sorted(day_set)} must be weekdays 1 (Monday) to 7")
        try:
            holiday_set = frozenset(date.fromisoformat(h) for h in holidays)
        except ValueError as exc:
            raise HoursError(f"holidays must be YYYY-MM-DD dates: {exc}") from None
        return cls(tuple(parsed), day_set, holiday_set, tz)

    def is_open(self, when: datetime) -> bool:
        """Whether ``when`` (timezone-aware) falls in working hours, local time."""
        local = when.astimezone(self.tz)
        if local.isoweekday() not in self.days or local.date() in self.holidays:
            return False
        now = _seconds(local.time())
        return any(start <= now < end for start, end in self.spans)
