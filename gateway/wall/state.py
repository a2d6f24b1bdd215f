"""The queues of one PBX as its events tell them: who waits since when, and each seat's state.

Fed by ``QueueCallerJoin``/``QueueCallerLeave``/``QueueCallerAbandon`` (callers),
``AgentConnect``/``AgentComplete`` (a seat talking), ``QueueMemberStatus``,
``QueueMemberAdded``/``Removed`` and ``QueueMemberPause`` (a seat's device state and
pause), and reloaded whole from a ``QueueStatus`` list (``QueueParams``,
``QueueMember``, ``QueueEntry``). A member's ``Status`` is Asterisk's device state:
1 not in use, 2 in use, 3 busy, 4 invalid, 5 unavailable, 6 ringing, 7 ringing
while in use, 8 on hold (0 unknown). Asterisk 22 reports ``InCall: 0`` for a
Local-channel seat that is talking, so the state and the connect events decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.ami import names as n

SEAT_STATES = ("talking", "ringing", "free", "paused", "offline")
SEAT_STATE_NAMES = {
    "talking": "通话中",
    "ringing": "振铃",
    "free": "空闲",
    "paused": "示忙",
    "offline": "未登录",
}
IN_USE = frozenset({2, 3, 7, 8})
RINGING = 6
UNREACHABLE = frozenset({4, 5})
MEMBER_EVENTS = frozenset(
    {
        n.EV_QUEUE_MEMBER_STATUS,
        n.EV_QUEUE_MEMBER_ADDED,
        n.EV_QUEUE_MEMBER_PAUSE,
    }
)
WALL_EVENTS = frozenset(
    {
        n.EV_QUEUE_CALLER_JOIN,
        n.EV_QUEUE_CALLER_LEAVE,
        n.EV_QUEUE_CALLER_ABANDON,
        n.EV_AGENT_CONNECT,
        n.EV_AGENT_COMPLETE,
        n.EV_QUEUE_MEMBER_REMOVED,
        *MEMBER_EVENTS,
    }
)

Event = Mapping[str, str]


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text or "")
    except ValueError:
        return default


@dataclass
class Seat:
    name: str
    status: int = 0
    paused: bool = False
    connected: bool = False  # between AgentConnect and AgentComplete
    since: datetime | None = None  # when its state last changed
    calls_taken: int = 0

    @property
    def state(self) -> str:
        if self.connected or self.status in IN_USE:
            return "talking"
        if self.status == RINGING:
            return "ringing"
        if self.paused:
            return "paused"
        if self.status in UNREACHABLE:
            return "offline"
        return "free"


@dataclass
class Queue:
    name: str
    callers: dict[str, datetime] = field(default_factory=dict)  # Uniqueid → joined
    seats: dict[str, Seat] = field(default_factory=dict)  # Interface → seat


@dataclass(frozen=True)
class SeatView:
    interface: str
    name: str
    state: str
    seconds: int | None  # in this state for so long (None: since before we looked)
    calls_taken: int


@dataclass(frozen=True)
class QueueView:
    queue: str
    waiting: int
    longest_wait_s: int | None
    counts: Mapping[str, int]  # by seat state
    seats: tuple[SeatView, ...]


class QueueBoard:
    """The queues of one PBX."""

    def __init__(self) -> None:
        self.queues: dict[str, Queue] = {}

    def _queue(self, name: str) -> Queue:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = Queue(name)
        return queue

    def apply(self, event: Event, now: datetime) -> None:
        """Take one queue event into account (events of other kinds are ignored)."""
        kind = event.get(n.H_EVENT, "")
        name = event.get(n.H_QUEUE, "")
        if kind not in WALL_EVENTS or not name:
            return
        queue = self._queue(name)
        uniqueid = event.get(n.H_UNIQUEID, "")
        if kind == n.EV_QUEUE_CALLER_JOIN:
            if uniqueid:
                queue.callers.setdefault(uniqueid, now)
            return
        if kind in (n.EV_QUEUE_CALLER_LEAVE, n.EV_QUEUE_CALLER_ABANDON):
            queue.callers.pop(uniqueid, None)
            return
        interface = event.get(n.H_INTERFACE, "")
        if not interface:
            return
        if kind == n.EV_QUEUE_MEMBER_REMOVED:
            queue.seats.pop(interface, None)
            return
        seat = queue.seats.get(interface)
        if seat is None:
            seat = queue.seats[interface] = Seat(event.get(n.H_MEMBER_NAME) or interface)
        before = seat.state
        if kind == n.EV_AGENT_CONNECT:
            seat.connected = True
        elif kind == n.EV_AGENT_COMPLETE:
            seat.connected = False
        else:
            seat.name = event.get(n.H_MEMBER_NAME) or seat.name
            seat.status = _int(event.get("Status"), seat.status)
            seat.paused = event.get("Paused", "0") == "1"
            seat.calls_taken = _int(event.get("CallsTaken"), seat.calls_taken)
        if seat.state != before or seat.since is None:
            seat.since = now

    def load(self, items: Iterable[Event], now: datetime) -> None:
        """Replace everything with a ``QueueStatus`` answer (its list items)."""
        queues: dict[str, Queue] = {}
        for item in items:
            kind = item.get(n.H_EVENT, "")
            name = item.get(n.H_QUEUE, "")
            if not name:
                continue
            queue = queues.setdefault(name, Queue(name))
            if kind == n.EV_QUEUE_MEMBER:
                interface = item.get("Location") or item.get("StateInterface") or ""
                if not interface:
                    continue
                old = self.queues.get(name, Queue(name)).seats.get(interface)
                seat = Seat(
                    item.get("Name") or interface,
                    status=_int(item.get("Status")),
                    paused=item.get("Paused", "0") == "1",
                    connected=item.get("InCall") == "1",
                    calls_taken=_int(item.get("CallsTaken")),
                )
                seat.since = old.since if old is not None and old.state == seat.state else None
                queue.seats[interface] = seat
            elif kind == n.EV_QUEUE_ENTRY:
                uniqueid = item.get(n.H_UNIQUEID, "")
                if uniqueid:
                    waited = max(0, _int(item.get("Wait")))
                    queue.callers[uniqueid] = now - timedelta(seconds=waited)
        self.queues = queues

    def view(self, name: str, now: datetime) -> QueueView:
        queue = self.queues.get(name, Queue(name))
        counts = dict.fromkeys(SEAT_STATES, 0)
        seats = []
        for interface, seat in sorted(queue.seats.items(), key=lambda kv: kv[1].name):
            state = seat.state
            counts[state] += 1
            seconds = None if seat.since is None else int((now - seat.since).total_seconds())
            seats.append(SeatView(interface, seat.name, state, seconds, seat.calls_taken))
        longest = None
        if queue.callers:
            longest = max(0, int((now - min(queue.callers.values())).total_seconds()))
        return QueueView(name, len(queue.callers), longest, counts, tuple(seats))
