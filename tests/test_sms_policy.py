"""The outbox's pure rules: status order, backoff, quiet hours, rate limit."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from gateway.clock import LOCAL_TZ
from gateway.sms.policy import (
    Backoff,
    QuietHours,
    TokenBucket,
    advances,
    earliest_send,
    from_provider_status,
    is_retryable,
)


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        ("queued", "sending", True),
        ("sending", "sent", True),
        ("sent", "delivered", True),
        ("sending", "delivered", True),
        ("sent", "undelivered", True),
        ("sending", "failed", True),
        ("delivered", "sent", False),
        ("delivered", "delivered", False),
        ("sent", "sent", False),
        ("sent", "sending", False),
        ("undelivered", "delivered", False),
        ("failed", "delivered", False),
    ],
)
def test_status_only_moves_forward(current: str, new: str, expected: bool) -> None:
    """A late or repeated status never moves a text backwards; a final status never changes."""
    assert advances(current, new) is expected


def test_provider_statuses_map_onto_ours() -> None:
    """Twilio's queued/accepted mean sending here; unknown words map to nothing."""
    assert from_provider_status("queued") == "sending"
    assert from_provider_status("Delivered") == "delivered"
    assert from_provider_status("receiving") is None


@pytest.mark.parametrize(
    ("status", "code", "retry"),
    [
        (429, 20429, True),
        (500, None, True),
        (503, None, True),
        (0, None, True),
        (400, 21211, False),
        (400, 21610, False),
        (401, 20003, False),
        (400, None, False),
    ],
)
def test_retryable_errors(status: int, code: int | None, retry: bool) -> None:
    """429, 5xx and no answer are retried; invalid or unsubscribed numbers never."""
    assert is_retryable(status, code) is retry


def test_backoff_grows_with_jitter_within_bounds() -> None:
    """Delays stay within [min, min·2^(n-1)] capped at max."""
    backoff = Backoff(1.0, 60.0)
    rng = random.Random(7)
    for attempt in range(1, 12):
        delay = backoff.delay(attempt, None, rng)
        assert 1.0 <= delay <= min(60.0, 2 ** (attempt - 1))


def test_backoff_honours_retry_after() -> None:
    """A Retry-After longer than the backoff is waited in full."""
    assert Backoff(0.1, 1.0).delay(1, 30.0, random.Random(1)) == 30.0


QUIET = QuietHours.parse("21:00", "08:00", LOCAL_TZ)


def _shanghai(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 30, hour, minute, tzinfo=LOCAL_TZ).astimezone(UTC)


@pytest.mark.parametrize(
    ("hour", "minute", "quiet"),
    [(20, 59, False), (21, 0, True), (23, 30, True), (3, 0, True), (7, 59, True), (8, 0, False)],
)
def test_quiet_hours_span_midnight(hour: int, minute: int, quiet: bool) -> None:
    """21:00–08:00 local is quiet, both sides of midnight."""
    assert QUIET.contains(_shanghai(hour, minute)) is quiet


def test_citizen_text_at_night_waits_until_eight_next_morning() -> None:
    """A citizen's text queued at 22:30 goes at 08:00 the next day, local time."""
    release = earliest_send("citizen", _shanghai(22, 30), QUIET)
    local = release.astimezone(LOCAL_TZ)
    assert (local.day, local.hour, local.minute) == (1, 8, 0)


def test_citizen_text_after_midnight_waits_until_eight_same_morning() -> None:
    """A citizen's text queued at 02:00 goes at 08:00 that morning."""
    local = earliest_send("citizen", _shanghai(2, 0), QUIET).astimezone(LOCAL_TZ)
    assert (local.day, local.hour) == (30, 8)


def test_officer_order_is_never_held() -> None:
    """A rectification order to a chief at 23:00 goes at once."""
    when = _shanghai(23, 0)
    assert earliest_send("officer", when, QUIET) == when


def test_malformed_quiet_hours_are_refused() -> None:
    """A quiet-hours value that is not HH:MM names the key."""
    with pytest.raises(ValueError, match="quiet_start"):
        QuietHours.parse("9pm", "08:00", LOCAL_TZ)


def test_token_bucket_paces_sends() -> None:
    """At 10/s the 1st send goes now, the 2nd waits 0.1 s, the 3rd 0.2 s; time refills."""
    bucket = TokenBucket(10.0)
    assert bucket.reserve(100.0) == 0.0
    assert bucket.reserve(100.0) == pytest.approx(0.1)
    assert bucket.reserve(100.0) == pytest.approx(0.2)
    assert bucket.reserve(101.0) == 0.0
