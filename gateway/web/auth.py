"""Who may use the API and the dashboard, and how fast a client may guess.

* Machine clients (police systems, channels) send ``Authorization: Bearer
  <web.api_token>``: :func:`token_matches` compares it in constant time; a header
  that is not ASCII (``t\\xf6k\\xe9n``) simply does not match — a 401, never a 500.
* :class:`FailureLimiter` counts wrong bearer tokens per client address: after
  ``web.auth_max_failures`` within ``web.auth_failure_window`` seconds that
  address gets 429 with ``Retry-After`` until the oldest failure leaves the
  window, even with the right token (so guessing learns nothing). The count lives
  in memory on purpose: it protects the running process and a restart forgetting
  it costs an attacker a restart. People's failed logins are counted in the store
  instead, per account and per address (:mod:`gateway.accounts.service`).
* People carry :data:`SESSION_COOKIE` (:mod:`gateway.web.login`).
"""

from __future__ import annotations

import math
import secrets
import time
from collections import deque
from collections.abc import Callable

from aiohttp import web

from gateway.config import Secret
from gateway.web.errors import ApiError

SESSION_COOKIE = "gw_session"

# Addresses with failures kept at most; the oldest are dropped beyond it.
MAX_TRACKED_ADDRESSES = 10_000


def token_matches(token: Secret, given: str) -> bool:
    """True if ``given`` is ``token``; an empty token or a non-ASCII value never matches."""
    if not token or not given.isascii():
        return False
    return secrets.compare_digest(given.encode("ascii"), token.reveal().encode())


def bearer_token(request: web.Request) -> str | None:
    """The value of ``Authorization: Bearer <value>``, or None if there is none."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


class FailureLimiter:
    """Wrong bearer tokens per client address in a sliding window."""

    def __init__(
        self,
        max_failures: int,
        window_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._monotonic = monotonic
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        cutoff = self._monotonic() - self.window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may try again; 0 if it may now."""
        failures = self._recent(address)
        if failures is None or len(failures) < self.max_failures:
            return 0
        wait = failures[-self.max_failures] + self.window - self._monotonic()
        return max(1, math.ceil(wait))

    def failed(self, address: str) -> None:
        if address not in self._failures and len(self._failures) >= MAX_TRACKED_ADDRESSES:
            del self._failures[next(iter(self._failures))]
        self._failures.setdefault(address, deque()).append(self._monotonic())

    def check(self, request: web.Request) -> None:
        """Raise 429 with ``Retry-After`` if this client failed too often lately."""
        wait = self.retry_after(client_address(request))
        if wait:
            raise ApiError(
                429,
                "too_many_failures",
                f"too many wrong tokens from this address; retry in {wait} s",
                {"retry_after": wait},
                headers={"Retry-After": str(wait)},
            )


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


LIMITER = web.AppKey("auth_limiter", FailureLimiter)
