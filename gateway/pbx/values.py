"""Values the PBX session hands out: Originate outcomes, live channels, resync reports."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from gateway.ami import names as n


class OriginateOutcome(enum.Enum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    NO_SUCH_NUMBER = "no_such_number"
    FAILED = "failed"


_REASONS = {
    n.REASON_NO_SUCH_NUMBER: OriginateOutcome.NO_SUCH_NUMBER,
    n.REASON_NO_ANSWER: OriginateOutcome.NO_ANSWER,
    n.REASON_RING_TIMEOUT: OriginateOutcome.NO_ANSWER,
    n.REASON_ANSWERED: OriginateOutcome.ANSWERED,
    n.REASON_BUSY: OriginateOutcome.BUSY,
    n.REASON_CONGESTION: OriginateOutcome.CONGESTION,
}


def originate_outcome(response: str | None, reason: str | None) -> OriginateOutcome:
    """Map an ``OriginateResponse``'s ``Response`` and ``Reason`` code to an outcome."""
    try:
        code: int | None = int(reason) if reason not in (None, "") else None
    except ValueError:
        code = None
    if response == n.RESPONSE_SUCCESS and code in (None, n.REASON_ANSWERED):
        return OriginateOutcome.ANSWERED
    if code is None:
        return OriginateOutcome.FAILED
    outcome = _REASONS.get(code, OriginateOutcome.FAILED)
    if outcome is OriginateOutcome.ANSWERED and response != n.RESPONSE_SUCCESS:
        return OriginateOutcome.FAILED
    return outcome


@dataclass(frozen=True)
class OriginateResult:
    """How an originated call went: the outcome and the facts Asterisk gave."""

    outcome: OriginateOutcome
    reason: int | None
    action_id: str
    channel: str
    uniqueid: str
    response: str

    @property
    def answered(self) -> bool:
        return self.outcome is OriginateOutcome.ANSWERED


@dataclass(frozen=True)
class ChannelInfo:
    """A channel the session knows to be live on the PBX."""

    channel: str
    uniqueid: str
    linkedid: str
    caller_number: str = ""
    application: str = ""  # what the channel runs now, e.g. "AGI(agi:async)"


@dataclass(frozen=True)
class ResyncReport:
    """What a (re)connect found. ``lost`` calls ended while the link was down;
    ``survived`` are still up; ``appeared`` started while we were away (or before
    the first connect); ``released`` are AsyncAGI calls handed back to the
    dialplan: those whose IVR session the link loss ended, and those that entered
    AsyncAGI while nobody listened (their AsyncAGIStart is gone). ``maybe_in_asyncagi``
    appeared running another dialplan application, which may be one a flow of a gateway
    since killed started by ``EXEC`` (its queue): they are offered ``ASYNCAGI BREAK``
    too, which Asterisk runs when the application returns, or refuses if the call is
    not in AsyncAGI."""

    pbx: str
    at: datetime
    reconnect: bool
    survived: tuple[ChannelInfo, ...] = ()
    lost: tuple[ChannelInfo, ...] = ()
    appeared: tuple[ChannelInfo, ...] = ()
    released: tuple[str, ...] = ()
    maybe_in_asyncagi: tuple[str, ...] = ()


ResyncListener = Callable[[ResyncReport], None]
