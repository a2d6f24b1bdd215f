"""What the booking service refuses; each carries the facts that explain it.

::

    BookingError               (gateway.errors.GatewayError)
    ├── BadBooking             a field is missing or malformed: ``field``
    ├── BookingRefused         the client's credential is missing or wrong
    ├── BookingConflict        the client's reference came before with other content: ``ref``
    ├── NoSuchBooking          ``ref``
    ├── CancelRefused          already cancelled, or the slot has begun: ``ref``
    └── KindsError             the kinds file does not hold together
"""

from __future__ import annotations

from gateway.errors import GatewayError


class BookingError(GatewayError):
    """Something the booking service refuses."""


class BadBooking(BookingError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class BookingRefused(BookingError):
    """The booking client's credential (``X-Channel-Token``) is missing or wrong."""


class BookingConflict(BookingError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"booking reference {ref!r} was used before with different content")
        self.ref = ref


class NoSuchBooking(BookingError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"no booking {ref!r}")
        self.ref = ref


class CancelRefused(BookingError):
    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(f"booking {ref!r}: {reason}")
        self.ref = ref
        self.reason = reason


class KindsError(BookingError):
    """The kinds file does not hold together; the message names the entry."""
