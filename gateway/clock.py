"""Injected time: the store keeps UTC, people read Asia/Shanghai.

Every component that needs "now" takes a :class:`Clock`; tests and the demo use
:class:`ManualClock` or :class:`FastClock` to move time without waiting.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


class Clock:
    """Real time."""

    #: Whether ``now()`` follows real time (a host's clock), so it can be compared with
    #: another machine's (:mod:`gateway.cluster.skew`); a test's or the demo's cannot.
    real_time = True
    #: How many of this clock's seconds pass in a real second.
    speed = 1.0

    def __init__(self, tz: ZoneInfo = LOCAL_TZ) -> None:
        self.tz = tz

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        return datetime.now(UTC)

    def local(self, when: datetime | None = None) -> datetime:
        """``when`` (default: now) in the people's timezone."""
        return (when or self.now()).astimezone(self.tz)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock(Clock):
    """A clock that only moves when told; ``sleep`` yields but does not wait."""

    real_time = False

    def __init__(self, start: datetime, tz: ZoneInfo = LOCAL_TZ) -> None:
        super().__init__(tz)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | float) -> None:
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        self._now += delta

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


def utc_iso(when: datetime) -> str:
    """The store's text form of a time: ISO 8601 in UTC with microseconds."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def parse_utc(text: str) -> datetime:
    """The inverse of :func:`utc_iso`."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class ScaledClock(Clock):
    """Time that runs ``speed`` times faster than real time from ``start`` (the demo).

    ``sleep(s)`` waits ``s / speed`` real seconds, so timeouts written in the
    clock's seconds keep their meaning.
    """

    real_time = False

    def __init__(self, start: datetime, speed: float, tz: ZoneInfo = LOCAL_TZ) -> None:
        super().__init__(tz)
        if start.tzinfo is None:
            raise ValueError("ScaledClock needs a timezone-aware start")
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self._start = start.astimezone(UTC)
        self._origin = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(time.monotonic() - self._origin) * self.speed)

    def advance(self, delta: timedelta | float) -> None:
        """Jump ahead (a test moving past a deadline); time keeps running from there."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        self._start += delta

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


def real_seconds(clock: Clock, seconds: float) -> float:
    """How long ``seconds`` of ``clock``'s time last in real time (a loop's pause on a
    clock that runs faster, as the demo's does)."""
    return seconds / clock.speed


def clock_span(clock: Clock, real: timedelta) -> timedelta:
    """How much of ``clock``'s time passes in ``real`` time: a bound on work that takes
    real time (a provider call, a flow's next write), written in the store in the clock's
    time. The same on a real clock; longer on one that runs faster (the demo's)."""
    return real * clock.speed
