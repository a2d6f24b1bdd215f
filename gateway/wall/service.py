"""Feeds each PBX's :class:`~gateway.wall.state.QueueBoard` from its session.

    wall = HotlineWall(clock)
    wall.connect(pool)                 # before the pool connects
    async with wall: ...               # its resync loop runs meanwhile
    wall.view(queue)                   # what the wall page shows

Queue events are taken as they arrive (a synchronous listener, no task per event).
After every (re)connect the PBX's ``QueueStatus`` replaces what the board knew —
callers who joined or left while the link was down are no longer guessed — and the
events that arrived while that answer was awaited are applied again on top (taking
an event twice changes nothing). The reload runs in a supervised loop, woken by
each connect; a failing reload is retried with backoff and reported by ``/health``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from gateway.ami import names as n
from gateway.ami.frames import Frame
from gateway.clock import Clock
from gateway.pbx.session import PbxPool
from gateway.pbx.values import ResyncReport
from gateway.supervise import Supervisor
from gateway.wall.state import SEAT_STATES, WALL_EVENTS, QueueBoard, SeatView

log = logging.getLogger(__name__)

# Events kept per PBX while its QueueStatus is awaited; beyond it the reload is redone.
MAX_HELD = 10_000


@dataclass(frozen=True)
class WallView:
    """One queue over every PBX: what the wall shows."""

    queue: str
    waiting: int
    longest_wait_s: int | None
    counts: dict[str, int]
    seats: tuple[tuple[str, SeatView], ...]  # (pbx, seat)
    loaded: bool  # every PBX's board was loaded from QueueStatus at least once

    def as_json(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "waiting": self.waiting,
            "longest_wait_s": self.longest_wait_s,
            "seats": self.counts,
            "loaded": self.loaded,
            "members": [
                {
                    "pbx": pbx,
                    "interface": seat.interface,
                    "name": seat.name,
                    "state": seat.state,
                    "seconds": seat.seconds,
                    "calls_taken": seat.calls_taken,
                }
                for pbx, seat in self.seats
            ],
        }


class HotlineWall:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.boards: dict[str, QueueBoard] = {}
        self.loaded: set[str] = set()
        self._pool: PbxPool | None = None
        self._held: dict[str, list[Frame]] = {}  # PBXs awaiting QueueStatus → their events
        self._wake = asyncio.Event()
        self._supervisor: Supervisor | None = None

    def connect(self, pool: PbxPool) -> None:
        self._pool = pool
        for session in pool:
            self.boards[session.name] = QueueBoard()
        pool.add_listener(self.on_event, WALL_EVENTS)
        pool.add_resync_listener(self.on_resync)

    def on_event(self, pbx: str, frame: Frame) -> None:
        held = self._held.get(pbx)
        if held is not None:
            if len(held) < MAX_HELD:
                held.append(frame)
            return
        self.boards.setdefault(pbx, QueueBoard()).apply(frame, self.clock.now())

    def on_resync(self, report: ResyncReport) -> None:
        self._held[report.pbx] = []
        self._wake.set()

    async def reload(self) -> None:
        """Load each PBX that (re)connected from its ``QueueStatus``."""
        assert self._pool is not None
        for pbx in list(self._held):
            items = await self._pool[pbx].event_list({n.H_ACTION: n.ACTION_QUEUE_STATUS})
            held = self._held.get(pbx, [])
            if len(held) >= MAX_HELD:
                log.warning("PBX %s: queue events overflowed during a reload; reloading", pbx)
                self._held[pbx] = []
                self._wake.set()
                continue
            now = self.clock.now()
            board = self.boards.setdefault(pbx, QueueBoard())
            board.load(items, now)
            for frame in held:
                board.apply(frame, now)
            del self._held[pbx]
            self.loaded.add(pbx)

    def queues(self) -> list[str]:
        """The names of every queue any PBX reported."""
        return sorted({name for board in self.boards.values() for name in board.queues})

    def view(self, queue: str) -> WallView:
        now = self.clock.now()
        counts = dict.fromkeys(SEAT_STATES, 0)
        waiting, longest = 0, None
        seats: list[tuple[str, SeatView]] = []
        for pbx, board in sorted(self.boards.items()):
            part = board.view(queue, now)
            waiting += part.waiting
            if part.longest_wait_s is not None:
                longest = max(longest or 0, part.longest_wait_s)
            for state, count in part.counts.items():
                counts[state] += count
            seats.extend((pbx, seat) for seat in part.seats)
        loaded = bool(self.boards) and self.loaded >= set(self.boards)
        return WallView(queue, waiting, longest, counts, tuple(seats), loaded)

    def check(self) -> None:
        if self._supervisor is not None:
            self._supervisor.check()

    async def __aenter__(self) -> Self:
        self._supervisor = Supervisor("wall")
        self._supervisor.loop("reload", self.reload, wake=self._wake)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._supervisor is not None:
            await self._supervisor.aclose()
            self._supervisor = None


WALL = web.AppKey("hotline_wall", HotlineWall)
