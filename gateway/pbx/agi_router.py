"""The AGI router: every live AGI call of one PBX, whatever transport brought it.

A transport (AsyncAGI over AMI today) builds an :class:`AgiChannel` for each
call that enters AGI and hands it to :meth:`AgiRouter.start`; the router runs
the flow handler in a task it owns, catches the caller's hang-up and any flow
error once, hands a call the flow left unfinished back to the dialplan, and
cancels what still runs when the session closes. The transport tells the router
when a channel is gone (hang-up, AGI ended, link lost).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gateway.pbx.channel import AgiChannel
from gateway.pbx.exceptions import AmiError, ChannelHungUp
from gateway.supervise import Supervisor

log = logging.getLogger(__name__)

AgiHandler = Callable[[AgiChannel], Awaitable[None]]


class AgiTransport(Protocol):
    """What the router needs of the transport that brought a call."""

    async def hand_back(self, channel: AgiChannel) -> None:
        """Return the call to the dialplan now, even while a command runs (shutdown)."""
        ...


class AgiRouter:
    """Live AGI channels by name and the flow tasks that serve them."""

    def __init__(self, pbx: str, handler: AgiHandler | None = None) -> None:
        self.pbx = pbx
        self.handler = handler
        self.channels: dict[str, AgiChannel] = {}  # channel name → live AGI call
        self._transports: dict[str, AgiTransport] = {}  # channel name → its transport
        self._flows = Supervisor(f"PBX {pbx} AGI")
        self._closed = False
        self._draining = False  # shutting down: calls go back to the dialplan
        self._emptied = asyncio.Event()
        self._orphaned: set[str] = set()  # channel names a link loss cut off

    def start(self, channel: AgiChannel, transport: AgiTransport) -> asyncio.Task[Any] | None:
        """Serve a call that ``transport`` brought: run the flow handler in an owned task
        (returned, for a transport that must know when the flow is over)."""
        if self._closed:
            return None  # the session is closing: the dialplan goes on when the link ends
        old = self.channels.get(channel.name)
        if old is not None:
            self.gone(old.name, "AGI restarted on the channel")
        self.channels[channel.name] = channel
        self._transports[channel.name] = transport
        if self._draining:
            return self._flows.spawn(f"agi-{channel.name}", self._hand_back_late(channel))
        return self._flows.spawn(f"agi-{channel.name}", self._run(channel))

    @property
    def flows(self) -> int:
        """Flow tasks still running."""
        return self._flows.tasks

    def gone(self, name: str, reason: str) -> list[str]:
        """The call on ``name`` is over; return the command ids it was waiting for."""
        channel = self.channels.pop(name, None)
        if channel is None:
            return []
        self._transports.pop(name, None)
        if not self.channels:
            self._emptied.set()
        return channel.mark_gone(reason)

    def serving(self, name: str) -> bool:
        return name in self.channels

    def by_uniqueid(self, uid: str) -> AgiChannel | None:
        for channel in self.channels.values():
            if channel.uniqueid == uid:
                return channel
        return None

    def link_lost(self, transport: AgiTransport) -> None:
        """``transport`` is gone: the flows of its calls end; remember who was still up."""
        for name in [n for n, t in self._transports.items() if t is transport]:
            channel = self.channels.pop(name)
            del self._transports[name]
            if not channel.hung_up:
                self._orphaned.add(name)
            channel.mark_link_lost()

    def take_orphaned(self) -> set[str]:
        """The channels whose flow a link loss ended, since the last call."""
        orphaned, self._orphaned = self._orphaned, set()
        return orphaned

    async def hand_back(self, within: float) -> int:
        """Shutting down: hand every call in a flow back to the dialplan (each through
        its transport) and wait up to ``within`` seconds until their AGI ended; calls
        entering AGI from now on go straight back. Returns how many are left."""
        self._draining = True
        calls = [c for c in self.channels.values() if not c.hung_up]
        if not calls:
            return 0
        log.info("PBX %s: handing %d calls back to the dialplan", self.pbx, len(calls))
        self._emptied.clear()
        try:
            async with asyncio.timeout(within):
                await asyncio.gather(*(self._transports[c.name].hand_back(c) for c in calls))
                if self.channels:
                    await self._emptied.wait()
        except TimeoutError:
            log.warning(
                "PBX %s: %d calls still in AGI after %gs; their BREAK is queued",
                self.pbx,
                len(self.channels),
                within,
            )
        return len(self.channels)

    async def _hand_back_late(self, channel: AgiChannel) -> None:
        log.info("PBX %s: %s entered AGI while shutting down: released", self.pbx, channel.name)
        try:
            await channel.release()
        except AmiError as exc:
            log.warning("PBX %s: could not release %s: %s", self.pbx, channel.name, exc)
        self._forget(channel)

    async def aclose(self) -> None:
        """Cancel every flow task and wait for them."""
        self._closed = True
        await self._flows.aclose()

    async def _run(self, channel: AgiChannel) -> None:
        handler = self.handler
        try:
            if handler is None:
                log.warning(
                    "PBX %s: no AGI handler; %s handed back to the dialplan",
                    self.pbx,
                    channel.name,
                )
                await channel.release()
                return
            await handler(channel)
        except ChannelHungUp as exc:
            log.info("PBX %s: %s", self.pbx, exc)
        except asyncio.CancelledError:
            self._forget(channel)
            raise
        except Exception:
            log.exception("PBX %s: AGI handler failed on %s", self.pbx, channel.name)
        if not channel.hung_up:
            # The handler ended without hanging up or releasing the call: hand it
            # back to the dialplan rather than leave the caller in silence.
            log.info("PBX %s: %s handed back to the dialplan", self.pbx, channel.name)
            try:
                await channel.release()
            except AmiError as exc:
                log.warning("PBX %s: could not release %s: %s", self.pbx, channel.name, exc)
        self._forget(channel)

    def _forget(self, channel: AgiChannel) -> None:
        if self.channels.get(channel.name) is channel:
            del self.channels[channel.name]
            self._transports.pop(channel.name, None)
            if not self.channels:
                self._emptied.set()
