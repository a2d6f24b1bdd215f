"""The working-day calendar: holidays, make-up working days (调休) and deadlines."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.calendar import (
    SHANGHAI,
    CalendarError,
    add_working_days,
    covers,
    is_working_day,
    load_calendar,
    parse_calendar,
    working_days_between,
)

CAL = load_calendar()


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("day", "worked"),
    [
        ("2026-11-30", True),  # an ordinary Monday
        ("2026-12-05", False),  # an ordinary Saturday
        ("2026-10-01", False),  # National Day, a Thursday
        ("2026-10-03", False),  # a Saturday inside the holiday
        ("2026-10-10", True),  # make-up Saturday
        ("2026-09-20", True),  # make-up Sunday
        ("2026-10-11", False),  # the Sunday after it
        ("2026-02-14", True),  # make-up Saturday before the Spring Festival
        ("2026-02-23", False),  # last day of the Spring Festival, a Monday
        ("2026-02-24", True),
        ("2026-01-04", True),  # make-up Sunday after New Year
        ("2025-01-01", False),
        ("2025-01-26", True),  # make-up Sunday, 2025
        ("2025-10-08", False),  # National Day and Mid-Autumn together, 2025
        ("2025-10-11", True),
    ],
)
def test_is_working_day(day: str, worked: bool) -> None:
    """Weekdays are worked unless a holiday; weekend days only when made up (调休)."""
    assert is_working_day(CAL, date.fromisoformat(day)) is worked


@pytest.mark.parametrize(
    ("moment", "days", "deadline"),
    [
        # Mon + 3: naively Thu 1 Oct, a holiday; the third working day is Thu 8 Oct.
        ("2026-09-28 10:00", 3, "2026-10-09 00:00"),
        # The fourth working day after Tue 29 Sep is the make-up Saturday 10 Oct.
        ("2026-09-29 10:00", 4, "2026-10-11 00:00"),
        # Submitted on a holiday: counting starts at the first working day after it.
        ("2026-10-03 15:00", 1, "2026-10-09 00:00"),
        # The moment's own day never counts, even late at night.
        ("2026-11-30 23:59", 1, "2026-12-02 00:00"),
        ("2026-11-30 08:00", 0, "2026-12-01 00:00"),
        # Friday + 1 skips an ordinary weekend.
        ("2026-12-04 09:00", 1, "2026-12-08 00:00"),
        # Across the Spring Festival 2026: Fri 13 Feb + 2 = Sat 14 Feb (made up), Tue 24 Feb.
        ("2026-02-13 09:00", 2, "2026-02-25 00:00"),
        # 2025: Fri 24 Jan + 2 = Sun 26 Jan (made up), Mon 27 Jan.
        ("2025-01-24 09:00", 2, "2025-01-28 00:00"),
    ],
)
def test_add_working_days(moment: str, days: int, deadline: str) -> None:
    """A deadline is the end of the Nth working day after the moment's local day."""
    got = add_working_days(CAL, local(moment), days)
    assert got == local(deadline)
    assert working_days_between(CAL, local(moment), got) == days


def test_add_working_days_reads_the_moment_in_local_time() -> None:
    """A UTC moment that is already the next local day counts from that local day."""
    moment = datetime(2026, 10, 9, 17, 0, tzinfo=UTC)  # Sat 10 Oct 01:00 in Shanghai
    assert add_working_days(CAL, moment, 1) == local("2026-10-13 00:00")


def test_between_inverts_add_for_every_hour_of_a_holiday_season() -> None:
    """working_days_between(m, add_working_days(m, n)) == n for moments all through autumn."""
    start = local("2026-09-15 00:30")
    for hour in range(0, 24 * 40, 7):
        moment = start + timedelta(hours=hour)
        for days in (0, 1, 2, 5, 10):
            deadline = add_working_days(CAL, moment, days)
            assert working_days_between(CAL, moment, deadline) == days, (moment, days)


def test_between_is_zero_when_end_comes_first() -> None:
    """No working days lie between a moment and an earlier one."""
    assert working_days_between(CAL, local("2026-11-30 10:00"), local("2026-11-20 10:00")) == 0


def test_a_year_the_calendar_does_not_hold_is_refused() -> None:
    """A deadline running into a year without data fails, naming the year, instead of guessing."""
    with pytest.raises(CalendarError, match="no data for 2027"):
        add_working_days(CAL, local("2026-12-28 10:00"), 5)
    with pytest.raises(CalendarError, match="2024"):
        is_working_day(CAL, date(2024, 5, 1))


def test_a_lenient_deadline_counts_weekdays_in_a_year_without_data() -> None:
    """Not strict, a year without data counts Monday–Friday, and covers() says it is estimated."""
    moment = local("2026-12-28 10:00")  # Monday; 29, 30, 31 Dec, then Fri 1 Jan 2027 and Mon 4
    deadline = add_working_days(CAL, moment, 5, strict=False)
    assert deadline == local("2027-01-05 00:00")
    assert not covers(CAL, moment, deadline)
    assert covers(CAL, local("2026-09-28 10:00"), local("2026-10-09 00:00"))


def test_naive_moments_are_refused() -> None:
    """A moment without a timezone cannot be placed on a local day."""
    with pytest.raises(ValueError, match="timezone"):
        add_working_days(CAL, datetime(2026, 11, 30, 10, 0), 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"20x6": {"holidays": []}}, "not a year"),
        ({"2026": {"holidays": ["2026-13-01"]}}, "not a date"),
        ({"2026": {"holidays": ["2025-10-01"]}}, "is not in 2026"),
        ({"2026": {"workdays": ["2026-11-30"]}}, "not a weekend day"),
        ({"2026": {"holiday": []}}, "unknown key"),
        ({"2026": {"holidays": ["2026-10-10"], "workdays": ["2026-10-10"]}}, "both"),
    ],
)
def test_a_bad_calendar_file_names_its_entry(data: dict[str, object], message: str) -> None:
    """A calendar whose entries do not hold together is refused, naming the entry."""
    with pytest.raises(CalendarError, match=message):
        parse_calendar(data)


def test_shipped_calendar_matches_the_notices_counts() -> None:
    """The shipped data has the notices' counts: 28+5 days in 2025, 33+6 in 2026."""
    for year, holidays, workdays in ((2025, 28, 5), (2026, 33, 6)):
        assert sum(1 for d in CAL.holidays if d.year == year) == holidays
        assert sum(1 for d in CAL.workdays if d.year == year) == workdays
