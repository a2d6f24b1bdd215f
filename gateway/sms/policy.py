"""The outbox's rules as pure functions: status order, retry backoff, quiet hours,
the per-sender rate limit. No I/O; time comes in as arguments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

# Outbox statuses, in the only order a text moves through them.
QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
UNDELIVERED = "undelivered"
FAILED = "failed"
STATUSES = (QUEUED, SENDING, SENT, DELIVERED, UNDELIVERED, FAILED)
FINAL = frozenset({DELIVERED, UNDELIVERED, FAILED})

# Twilio's message statuses mapped onto ours (callbacks and look-ups speak Twilio's).
_PROVIDER_STATUS = {
    "accepted": SENDING,
    "scheduled": SENDING,
    "queued": SENDING,
    "sending": SENDING,
    "sent": SENT,
    "delivered": DELIVERED,
    "read": DELIVERED,
    "undelivered": UNDELIVERED,
    "failed": FAILED,
    "canceled": FAILED,
}
_RANK = {QUEUED: 0, SENDING: 1, SENT: 2, DELIVERED: 3, UNDELIVERED: 3, FAILED: 3}


def from_provider_status(status: str) -> str | None:
    """Our status for a provider status (``queued`` at Twilio means ``sending`` here)."""
    return _PROVIDER_STATUS.get(status.strip().lower())


def advances(current: str, new: str) -> bool:
    """True when moving ``current`` → ``new`` is progress; a final status never changes.

    A late ``sent`` after ``delivered``, a repeated ``delivered``, a ``queued`` after
    ``sent``: all False, so callbacks out of order or twice change nothing.
    """
    if current in FINAL:
        return False
    return _RANK[new] > _RANK[current]


# Twilio error codes that no retry can fix.
PERMANENT_CODES = frozenset(
    {
        20003,  # authentication failed
        20404,  # resource not found (bad account)
        21211,  # invalid 'To'
        21212,  # invalid 'From'
        21408,  # region not enabled
        21602,  # body required
        21604,  # 'From' required
        21606,  # 'From' cannot send texts
        21610,  # recipient unsubscribed (STOP)
        21612,  # cannot route to this number
        21614,  # 'To' is not a mobile number
        21617,  # body too long
    }
)


def is_retryable(status: int, code: int | None) -> bool:
    """Whether an HTTP answer is worth another try: 429, 5xx, no answer (status 0)."""
    if code is not None and code in PERMANENT_CODES:
        return False
    return status == 0 or status == 429 or status >= 500


@dataclass(frozen=True)
class Backoff:
    minimum: float
    maximum: float

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt + 1`` ("full jitter", floor ``minimum``).

        The provider's ``Retry-After`` is honoured: the delay is never shorter.
        """
        ceiling = min(self.maximum, self.minimum * (2 ** max(0, attempt - 1)))
        wait = self.minimum + rng.random() * max(0.0, ceiling - self.minimum)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return float(min(wait, max(self.maximum, retry_after or 0.0)))


@dataclass(frozen=True)
class QuietHours:
    """Local hours during which texts to citizens wait; ``start == end`` means none."""

    start: time
    end: time
    tz: ZoneInfo

    @classmethod
    def parse(cls, start: str, end: str, tz: ZoneInfo) -> QuietHours:
        return cls(_parse_hhmm(start, "quiet_start"), _parse_hhmm(end, "quiet_end"), tz)

    def contains(self, when: datetime) -> bool:
        local = when.astimezone(self.tz).time()
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # spans midnight

    def release_time(self, when: datetime) -> datetime:
        """``when`` if outside quiet hours, else the next ``end`` in local time."""
        if not self.contains(when):
            return when
        local = when.astimezone(self.tz)
        release = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if release <= local:
            release += timedelta(days=1)
        return release.astimezone(when.tzinfo)


def earliest_send(audience: str, when: datetime, quiet: QuietHours) -> datetime:
    """When a text for ``audience`` may go out: officers' orders are never held."""
    return when if audience == "officer" else quiet.release_time(when)


def _parse_hhmm(text: str, key: str) -> time:
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"sms.{key} must be HH:MM, got {text!r}") from None


class TokenBucket:
    """``rate`` sends per second with a burst of ``burst``; time is passed in.

    :meth:`reserve` books the next slot and returns how long to wait for it, so
    concurrent senders queue up fairly without a lock.
    """

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.burst = max(1.0, burst)
        self._tokens = self.burst
        self._at: float | None = None

    def reserve(self, now: float) -> float:
        if self._at is None:
            self._at = now
        elif now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate
