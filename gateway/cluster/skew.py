"""How far this gateway's clock is off the database server's, and what follows from it.

Leases and call bounds are times written by the gateway that holds them, by its own
clock (``lease_until`` of an outbox row, ``up_until`` of a callback attempt); another
gateway takes them over once they have passed by *its* clock. A gateway whose clock ran
minutes ahead would take them early: send a text its holder is still sending, call a
citizen who is still on the line. The times stay in the gateways' clocks (the tests and
the demo run the gateway on a manual or accelerated clock, which the store must keep
meaning), and two rules make the takeover safe:

* each gateway measures its offset to the database server's clock
  (``clock_timestamp()``, halfway through the round trip) at start and every few
  seconds, and claims no work while it exceeds ``store.max_clock_skew`` (``/health``
  shows the clock failing);
* a gateway takes another's lease only ``2 × max_clock_skew`` after its end: with both
  clocks within the bound of the server's, the holder's lease has then ended by the
  server's clock, whichever way either clock is off.

A clock that does not follow real time (the tests' manual clock, the demo's accelerated
one) is shared by every gateway of its process and cannot be compared with the server's:
no bound applies and no margin is added. On SQLite there is one gateway: none either.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from gateway.errors import GatewayError

log = logging.getLogger(__name__)


class ClockSkewed(GatewayError):
    """This gateway's clock is off the database server's by more than the bound."""


class ClockSkew:
    """The latest measured offset (this clock minus the server's) and the rules above."""

    def __init__(self, max_skew: timedelta, *, applies: bool) -> None:
        self.max_skew = max_skew
        self.applies = applies
        self.offset: timedelta | None = None

    @property
    def ok(self) -> bool:
        """Whether this gateway may claim work: its offset is known and within the bound."""
        if not self.applies:
            return True
        return self.offset is not None and abs(self.offset) <= self.max_skew

    @property
    def margin(self) -> timedelta:
        """How long past its end another gateway's lease is left to its holder."""
        return 2 * self.max_skew if self.applies else timedelta(0)

    def record(self, offset: timedelta) -> None:
        """A new measurement; a change between within and beyond the bound is logged once."""
        was = self.ok if self.offset is not None else None
        self.offset = offset
        if was is None and self.ok:
            return
        if self.ok != was:
            if self.ok:
                log.warning("cluster: the clock is back within %s of the database's", self.max_skew)
            else:
                log.error("cluster: %s; no work is claimed until it is fixed", self.problem())

    def problem(self) -> str:
        seconds = self.offset.total_seconds() if self.offset is not None else 0.0
        way = "ahead of" if seconds > 0 else "behind"
        return (
            f"this gateway's clock is {abs(seconds):.1f}s {way} the database server's"
            f" (store.max_clock_skew is {self.max_skew.total_seconds():g}s)"
        )

    def check(self) -> None:
        """Raise :class:`ClockSkewed` (for ``/health``) while work is not claimed."""
        if self.ok:
            return
        if self.offset is None:
            raise ClockSkewed("the clock was not compared with the database server's yet")
        raise ClockSkewed(self.problem())
