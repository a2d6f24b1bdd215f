"""The callback policy, without I/O: calling windows, retries, escalation, satisfaction.

Times given to these functions are aware datetimes; windows are in local time
(the clock's timezone), deadlines and due times in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import Enum

from gateway.errors import GatewayError


class PolicyError(GatewayError):
    """A callback setting is malformed; the message names the setting."""


@dataclass(frozen=True)
class CallingWindows:
    """When citizens may be called: daily local windows, minus excluded days."""

    windows: tuple[tuple[time, time], ...]
    excluded_weekdays: frozenset[int] = frozenset()  # 0 = Monday
    excluded_dates: frozenset[date] = frozenset()

    def is_open(self, local: datetime) -> bool:
        if not self._day_allowed(local.date()):
            return False
        now = local.timetz().replace(tzinfo=None)
        return any(start <= now < end for start, end in self.windows)

    def next_open(self, local: datetime) -> datetime:
        """The earliest moment at or after ``local`` inside a window (same timezone)."""
        if self.is_open(local):
            return local
        day = local.date()
        for offset in range(0, 366):
            candidate_day = day + timedelta(days=offset)
            if not self._day_allowed(candidate_day):
                continue
            for start, _end in sorted(self.windows):
                candidate = datetime.combine(candidate_day, start, tzinfo=local.tzinfo)
                if candidate >= local:
                    return candidate
        raise PolicyError("the calling windows never open within a year")

    def _day_allowed(self, day: date) -> bool:
        return day.weekday() not in self.excluded_weekdays and day not in self.excluded_dates


def parse_windows(text: str, *, key: str = "callbacks.windows") -> tuple[tuple[time, time], ...]:
    """``"09:00-12:00,14:00-20:30"`` → ((09:00, 12:00), (14:00, 20:30)). An end of
    ``24:00`` (accepted by the configuration's check) is the end of the day."""
    windows = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        start_text, sep, end_text = part.partition("-")
        try:
            if not sep:
                raise ValueError
            start = time.fromisoformat(start_text.strip())
            end_text = end_text.strip()
            end = time.max if end_text == "24:00" else time.fromisoformat(end_text)
        except ValueError:
            raise PolicyError(f"{key}: {part!r} is not HH:MM-HH:MM") from None
        if end <= start:
            raise PolicyError(f"{key}: {part!r} ends before it starts")
        windows.append((start, end))
    if not windows:
        raise PolicyError(f"{key}: no calling window given")
    return tuple(windows)


class CallOutcome(Enum):
    """How an originated callback ended, from OriginateResponse's Reason."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    NO_SUCH_NUMBER = "no_such_number"
    FAILED = "failed"
    # The Originate's response was lost (the link cut while waiting): the call may
    # have rung or be up; settled later, and then counted like a call not answered.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class NextStep:
    """What to do with an item after a call that did not reach the citizen."""

    action: str  # "retry", "sms", "unreachable"
    at: datetime | None = None


def after_unanswered(
    outcome: CallOutcome,
    attempts_made: int,
    max_attempts: int,
    spacing: timedelta,
    now: datetime,
    *,
    sms_fallback: bool = True,
) -> NextStep:
    """Busy, no answer and congestion are retried, spaced further each time; a
    number that does not exist is not called again. After the last try a rating
    request goes by SMS (or, without the fallback, the item is unreachable)."""
    if outcome is CallOutcome.ANSWERED:
        raise PolicyError("an answered call is not retried")
    if outcome is not CallOutcome.NO_SUCH_NUMBER and attempts_made < max_attempts:
        return NextStep("retry", now + spacing * attempts_made)
    return NextStep("sms" if sms_fallback else "unreachable")


# The four levels of the callback system, and who is told at each.
LEVEL_NAMES = {
    1: "派出所所长",
    2: "分局（县局）局长",
    3: "市局督办室",
    4: "局党委及纪检监察室",
}
TOP_LEVEL = 4


def next_level(level: int) -> int | None:
    """The level an order climbs to from ``level``; None at the top."""
    if not 1 <= level <= TOP_LEVEL:
        raise PolicyError(f"no escalation level {level}")
    return level + 1 if level < TOP_LEVEL else None


def parse_hours_per_level(
    text: str, *, key: str = "callbacks.order_deadline_hours"
) -> tuple[float, ...]:
    """``"72,48,24,24"`` → the deadline of each level, in hours."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise PolicyError(f"{key}: {text!r} is not four numbers separated by commas") from None
    if len(values) != TOP_LEVEL or any(v <= 0 for v in values):
        raise PolicyError(f"{key}: give {TOP_LEVEL} positive numbers of hours, got {text!r}")
    return values


@dataclass(frozen=True)
class Satisfaction:
    rated: int
    satisfied: int
    basically: int
    dissatisfied: int

    @property
    def rate(self) -> float | None:
        """(satisfied + basically satisfied) / rated; None when nothing was rated."""
        if not self.rated:
            return None
        return (self.satisfied + self.basically) / self.rated


def satisfaction(scores: Iterable[int]) -> Satisfaction:
    counts = {1: 0, 2: 0, 3: 0}
    for score in scores:
        if score not in counts:
            raise PolicyError(f"a rating is 1, 2 or 3, not {score!r}")
        counts[score] += 1
    return Satisfaction(sum(counts.values()), counts[1], counts[2], counts[3])


_FULL_WIDTH = str.maketrans("１２３", "123")


def parse_rating_reply(text: str) -> int | None:
    """A citizen's SMS answer to a rating request: 1, 2 or 3 (full-width digits and
    the words 满意 / 基本满意 / 不满意 too). Anything else is None."""
    cleaned = text.strip().translate(_FULL_WIDTH).rstrip("。.!！ ")
    if cleaned in ("1", "2", "3"):
        return int(cleaned)
    return {"满意": 1, "基本满意": 2, "不满意": 3}.get(cleaned)


def parse_rectification_reply(text: str) -> tuple[str, str] | None:
    """A chief's report ``整改 <ref> <note>`` → (ref, note); None if it is not one."""
    body = text.strip()
    if not body.startswith("整改"):
        return None
    rest = body[2:].strip().lstrip(":：").strip()
    ref, _, note = rest.partition(" ")
    if not ref:
        return None
    return ref.upper(), note.strip()
