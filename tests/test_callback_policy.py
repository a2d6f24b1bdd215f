"""The callback policy: calling windows, retries, escalation levels, replies."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from gateway.callbacks.policy import (
    CallingWindows,
    CallOutcome,
    PolicyError,
    after_unanswered,
    next_level,
    parse_hours_per_level,
    parse_rating_reply,
    parse_rectification_reply,
    parse_windows,
    satisfaction,
)
from gateway.clock import LOCAL_TZ

WINDOWS = CallingWindows(
    parse_windows("09:00-12:00,14:00-20:30"),
    excluded_weekdays=frozenset({6}),
    excluded_dates=frozenset({date(2026, 12, 1)}),
)


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=LOCAL_TZ)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (local(2026, 11, 30, 10), local(2026, 11, 30, 10)),  # inside: now
        (local(2026, 11, 30, 12, 30), local(2026, 11, 30, 14)),  # lunch: afternoon
        (local(2026, 11, 30, 21), local(2026, 12, 2, 9)),  # night; 1 Dec excluded
        (local(2026, 12, 5, 22), local(2026, 12, 7, 9)),  # Saturday night; Sunday excluded
        (local(2026, 11, 30, 3), local(2026, 11, 30, 9)),  # early morning
    ],
)
def test_next_open_skips_nights_and_excluded_days(now: datetime, expected: datetime) -> None:
    """A call due outside the windows waits for the next window on an allowed day."""
    assert WINDOWS.next_open(now) == expected


def test_window_end_is_exclusive() -> None:
    """20:30 is already closed in a window that ends at 20:30."""
    assert WINDOWS.is_open(local(2026, 11, 30, 20, 29))
    assert not WINDOWS.is_open(local(2026, 11, 30, 20, 30))


def test_a_window_may_end_at_midnight() -> None:
    """ "20:00-24:00", which the configuration accepts, is open until the day ends and
    opens again the next evening."""
    evening = CallingWindows(parse_windows("20:00-24:00"))
    assert evening.is_open(local(2026, 11, 30, 23, 59))
    assert not evening.is_open(local(2026, 12, 1, 0, 0))
    assert evening.next_open(local(2026, 12, 1, 0, 0)) == local(2026, 12, 1, 20)


@pytest.mark.parametrize(
    ("text", "message"),
    [("9-12", "not HH:MM-HH:MM"), ("12:00-09:00", "ends before it starts"), ("", "no calling")],
)
def test_bad_windows_name_the_problem(text: str, message: str) -> None:
    """A malformed window setting is refused with the reason."""
    with pytest.raises(PolicyError, match=message):
        parse_windows(text)


def test_windows_that_never_open_are_an_error() -> None:
    """Windows with every weekday excluded are reported, not looped over forever."""
    closed = CallingWindows(((time(9), time(10)),), excluded_weekdays=frozenset(range(7)))
    with pytest.raises(PolicyError, match="never open"):
        closed.next_open(local(2026, 11, 30, 8))


def test_retries_are_spaced_then_sms() -> None:
    """Busy and no answer retry with growing spacing; after the last try, SMS."""
    now = datetime(2026, 11, 30, 2, tzinfo=UTC)
    spacing = timedelta(minutes=30)
    first = after_unanswered(CallOutcome.BUSY, 1, 3, spacing, now)
    second = after_unanswered(CallOutcome.NO_ANSWER, 2, 3, spacing, now)
    assert (first.action, first.at) == ("retry", now + spacing)
    assert (second.action, second.at) == ("retry", now + 2 * spacing)
    assert after_unanswered(CallOutcome.CONGESTION, 3, 3, spacing, now).action == "sms"
    assert after_unanswered(CallOutcome.BUSY, 3, 3, spacing, now, sms_fallback=False).action == (
        "unreachable"
    )


def test_a_number_that_does_not_exist_is_not_called_again() -> None:
    """No such number goes straight to the SMS fallback."""
    now = datetime(2026, 11, 30, 2, tzinfo=UTC)
    step = after_unanswered(CallOutcome.NO_SUCH_NUMBER, 1, 3, timedelta(minutes=5), now)
    assert step.action == "sms"


def test_levels_climb_to_four_and_stop() -> None:
    """Station → sub-bureau → supervision office → leadership, then no higher."""
    assert [next_level(n) for n in (1, 2, 3, 4)] == [2, 3, 4, None]
    with pytest.raises(PolicyError):
        next_level(5)


@pytest.mark.parametrize(
    ("text", "ok"),
    [("72,48,24,24", True), ("72,48", False), ("a,b,c,d", False), ("1,0,1,1", False)],
)
def test_deadlines_per_level(text: str, ok: bool) -> None:
    """Order deadlines are four positive numbers of hours."""
    if ok:
        assert parse_hours_per_level(text) == (72, 48, 24, 24)
    else:
        with pytest.raises(PolicyError, match="order_deadline_hours"):
            parse_hours_per_level(text)


def test_satisfaction_counts_basically_satisfied_as_satisfied() -> None:
    """The rate is (satisfied + basically satisfied) over rated."""
    result = satisfaction([1, 1, 2, 3])
    assert (result.rated, result.satisfied, result.basically, result.dissatisfied) == (4, 2, 1, 1)
    assert result.rate == pytest.approx(0.75)
    assert satisfaction([]).rate is None
    with pytest.raises(PolicyError):
        satisfaction([4])


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("1", 1),
        (" 2 ", 2),
        ("３", 3),
        ("3。", 3),
        ("满意", 1),
        ("基本满意", 2),
        ("不满意", 3),
        ("4", None),
        ("12", None),
        ("好", None),
        ("", None),
    ],
)
def test_rating_replies(text: str, score: int | None) -> None:
    """SMS rating replies accept 1/2/3 in either width and the three words, nothing else."""
    assert parse_rating_reply(text) == score


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("整改 ZG20261130-0001 已上门道歉并说明进度", ("ZG20261130-0001", "已上门道歉并说明进度")),
        ("整改：zg20261130-0002", ("ZG20261130-0002", "")),
        ("整改", None),
        ("收到", None),
    ],
)
def test_rectification_replies(text: str, parsed: tuple[str, str] | None) -> None:
    """A chief reports done with '整改 <ref> <note>'; anything else is not a report."""
    assert parse_rectification_reply(text) == parsed
