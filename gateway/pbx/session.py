"""One AMI session per PBX: the public face over the link's parts.

``async with AmiSession(config) as session:`` keeps one PBX link alive. The
session only wires its parts, each a module of its own with a narrow interface:

* :mod:`gateway.pbx.transport`: the wire protocol, bytes ↔ frames;
* :mod:`gateway.pbx.dispatch`: pending actions and event lists, internal event
  handlers, listeners fed in order by one consumer task;
* :mod:`gateway.pbx.link`: connect, login, keep-alive, reconnect with backoff;
* :mod:`gateway.pbx.resync`: live channels and what each (re)connect found;
* :mod:`gateway.pbx.agi_router` and :mod:`gateway.pbx.asyncagi`: the AGI calls
  and the AsyncAGI transport that brings them (:mod:`gateway.pbx.fastagi`, the
  second transport, hands its calls to the same router);
* :mod:`gateway.pbx.originate`: Originate and its ``OriginateResponse``.

Every task the session starts is owned by it. Closing hands the callers in a
flow back to the dialplan (bounded by ``HANDBACK_TIMEOUT``), then logs off, then
cancels and awaits what still runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Self

from gateway.ami import names as n
from gateway.ami.frames import Frame
from gateway.clock import Clock
from gateway.config import PbxSection
from gateway.pbx.agi_router import AgiHandler, AgiRouter
from gateway.pbx.asyncagi import AsyncAgiTransport, agi_break
from gateway.pbx.dispatch import ActionHeaders, Dispatcher, Listener
from gateway.pbx.exceptions import AmiActionFailed, AmiError
from gateway.pbx.link import LOGOFF_TIMEOUT, Link, backoff_delay
from gateway.pbx.originate import Originator
from gateway.pbx.pool import PbxPool
from gateway.pbx.resync import ChannelTracker, asyncagi_orphans
from gateway.pbx.transport import AmiProtocol
from gateway.pbx.values import (
    ChannelInfo,
    OriginateOutcome,
    OriginateResult,
    ResyncListener,
    ResyncReport,
    originate_outcome,
)
from gateway.supervise import Supervisor

__all__ = [
    "LOGOFF_TIMEOUT",
    "ActionHeaders",
    "AgiHandler",
    "AmiProtocol",
    "AmiSession",
    "ChannelInfo",
    "Listener",
    "OriginateOutcome",
    "OriginateResult",
    "PbxPool",
    "ResyncListener",
    "ResyncReport",
    "backoff_delay",
    "originate_outcome",
]

log = logging.getLogger(__name__)

HANDBACK_TIMEOUT = 3.0  # seconds the callers in the IVR get to go back to the dialplan at close


class AmiSession:
    """``async with AmiSession(config) as session:`` keeps one PBX link alive."""

    def __init__(
        self,
        config: PbxSection,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        agi_handler: AgiHandler | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or Clock()
        uid = str(uuid.uuid4())
        self.dispatcher = Dispatcher(config.name, uid)
        self.agi = AgiRouter(config.name, agi_handler)
        self.asyncagi = AsyncAgiTransport(config.name, uid, self.agi, self.action)
        self.tracker = ChannelTracker(config.name, self.clock)
        self.originator = Originator(
            config.name, self.dispatcher, self._link_for, config.action_timeout
        )
        self.link = Link(
            config,
            self.dispatcher,
            clock=self.clock,
            rng=rng or random.Random(),
            on_up=self._resync,
            on_lost=self._on_link_lost,
        )
        handle = self.dispatcher.handle
        handle(n.EV_NEWCHANNEL, self.tracker.ev_newchannel)
        handle(n.EV_HANGUP, self._ev_hangup)
        handle(n.EV_ASYNC_AGI_START, self.asyncagi.ev_agi_start)
        handle(n.EV_ASYNC_AGI_EXEC, self.asyncagi.ev_agi_exec)
        handle(n.EV_ASYNC_AGI_END, self.asyncagi.ev_agi_end)
        handle(n.EV_SHUTDOWN, self._ev_shutdown)
        self.supervisor = Supervisor(f"PBX {config.name}")
        self._entered = False
        self._closing = False

    # -- state ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    pbx_name = name

    @property
    def connected(self) -> bool:
        return self.link.connected.is_set()

    @property
    def connects(self) -> int:
        """Successful logins so far."""
        return self.link.connects

    @property
    def frame_errors(self) -> int:
        return self.dispatcher.frame_errors

    @property
    def live_channels(self) -> Mapping[str, ChannelInfo]:
        """Channels believed live on the PBX, by ``Uniqueid``."""
        return dict(self.tracker.live)

    # -- lifecycle ----------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("an AmiSession is entered once")
        self._entered = True
        self.link.started = True
        self.supervisor.spawn(f"ami-{self.name}-events", self.dispatcher.consume())
        self.supervisor.spawn(f"ami-{self.name}-link", self.link.run())
        await asyncio.sleep(0)  # let both start: a task cancelled unstarted leaks its coroutine
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Log off, stop every task the session owns and close the socket."""
        if self._closing:
            return
        self._closing = True
        if self.connected:
            # Callers in a flow go back to the dialplan (its fallback queues them for a
            # seat) before we log off and before their flows are cancelled.
            await self.agi.hand_back(HANDBACK_TIMEOUT)
        await self.link.logoff()
        await self.agi.aclose()
        await self.supervisor.aclose()
        await self.link.close()

    def __del__(self) -> None:
        if self._entered and not self._closing:
            import warnings

            warnings.warn(f"AmiSession {self.name} was never closed", ResourceWarning, stacklevel=1)

    async def wait_connected(self, within: float | None = None) -> None:
        """Wait until logged in; raise the login error if the session gave up."""
        await self.link.wait_connected(within)

    # -- listeners ----------------------------------------------------------

    def add_listener(self, fn: Listener, events: Iterable[str] | None = None) -> None:
        """Call ``fn(frame)`` for every event (or only those named in ``events``).

        ``fn`` is synchronous and runs in the session's one consumer task; an
        exception it raises is logged and the next event goes on.
        """
        self.dispatcher.add_listener(fn, events)

    def add_resync_listener(self, fn: ResyncListener) -> None:
        """Call ``fn(report)`` after every (re)connect, in order with the events."""
        self.dispatcher.add_resync_listener(fn)

    def share_asyncagi(self, serves: Callable[[], bool]) -> None:
        """With other gateways logged in to this PBX: run the flows of its AsyncAGI calls,
        and hand calls back at a resync, only while ``serves()``; call
        :meth:`asyncagi_gained` when this gateway starts serving them."""
        self.asyncagi.serves = serves

    def asyncagi_gained(self) -> None:
        """This gateway serves the PBX's AsyncAGI calls from now on, after another that
        died: the calls it left waiting in AsyncAGI go back to the dialplan."""
        if self._closing:
            return  # stopping: the calls go back with the others (close)
        self.supervisor.spawn(f"ami-{self.name}-asyncagi", self._take_over_asyncagi())

    def set_agi_handler(self, handler: AgiHandler) -> None:
        """Run ``await handler(channel)`` for every call entering AGI, in a task the
        session owns; ChannelHungUp and any other exception are caught and logged."""
        self.agi.handler = handler

    # -- actions --------------------------------------------------------------

    async def _link_for(self, action: str) -> AmiProtocol:
        return await self.link.get(action)

    async def action(
        self, headers: ActionHeaders, *, reply_timeout: float | None = None, check: bool = True
    ) -> Frame:
        """Send one action and return its response frame.

        Raises AmiActionFailed on ``Response: Error`` (unless ``check=False``),
        AmiActionTimeout, AmiConnectionLost, AmiNotConnected.
        """
        action = str(headers.get(n.H_ACTION, ""))
        protocol = await self.link.get(action)
        reply = await self.dispatcher.request(
            protocol, headers, reply_timeout or self.config.action_timeout
        )
        if check and reply.response not in (n.RESPONSE_SUCCESS, n.RESPONSE_GOODBYE):
            raise AmiActionFailed(
                self.name, action, reply.get(n.H_ACTION_ID, ""), reply.get(n.H_MESSAGE, "")
            )
        return reply

    async def event_list(
        self, headers: ActionHeaders, *, reply_timeout: float | None = None
    ) -> list[Frame]:
        """Send an action answered by an event list; return its items (not the
        ``…Complete`` event)."""
        action = str(headers.get(n.H_ACTION, ""))
        protocol = await self.link.get(action)
        return await self.dispatcher.request_list(
            protocol, headers, reply_timeout or self.config.action_timeout
        )

    async def command(self, text: str, *, reply_timeout: float | None = None) -> list[str]:
        """Run an Asterisk CLI command; return its output lines."""
        reply = await self.action(
            {n.H_ACTION: n.ACTION_COMMAND, n.H_COMMAND: text}, reply_timeout=reply_timeout
        )
        return reply.getall(n.H_OUTPUT)

    async def ping(self) -> float:
        """Round trip of an AMI ``Ping``, in seconds."""
        protocol = await self.link.get(n.ACTION_PING)
        return await self.link.ping(protocol)

    async def originate(
        self,
        channel: str,
        context: str,
        exten: str,
        priority: int = 1,
        caller_id: str = "",
        timeout_ms: int = 30000,
        variables: Mapping[str, str] | None = None,
        action_id: str | None = None,
    ) -> OriginateResult:
        """Place a call (``Async: true``) and wait for its ``OriginateResponse``.

        What the call is about goes in ``variables`` (channel variables the flow
        reads with ``GET VARIABLE``). Raises AmiNotConnected when nothing was sent,
        OriginateOutcomeUnknown when it was sent but its outcome was lost.
        """
        return await self.originator.originate(
            channel, context, exten, priority, caller_id, timeout_ms, variables, action_id
        )

    # -- the parts' shared events --------------------------------------------------

    def _ev_hangup(self, frame: Frame) -> None:
        self.tracker.ev_hangup(frame)
        self.asyncagi.ev_hangup(frame)

    def _ev_shutdown(self, frame: Frame) -> None:
        log.warning(
            "PBX %s: Asterisk is shutting down (%s, restart: %s); reconnecting",
            self.name,
            frame.get("Shutdown", "?"),
            frame.get(n.H_RESTART, "?"),
        )
        self.link.drop()

    def _on_link_lost(self) -> None:
        self.asyncagi.link_lost()
        self.tracker.link_lost()

    async def _resync(self, protocol: AmiProtocol) -> None:
        self.tracker.begin()
        items = await self.dispatcher.request_list(
            protocol, {n.H_ACTION: n.ACTION_CORE_SHOW_CHANNELS}, self.config.action_timeout
        )
        # Events raised while the list was built come after its Complete; the answer to
        # a Ping comes after them, so every Hangup of that time is seen before we judge.
        await self.dispatcher.request(
            protocol, {n.H_ACTION: n.ACTION_PING}, self.config.action_timeout
        )
        report = self.tracker.reconcile(
            items,
            reconnect=self.link.connects > 1,
            orphaned=self.agi.take_orphaned(),
            serving=self.agi.serving,
        )
        if not self.asyncagi.serves():
            # Another gateway runs this PBX's AsyncAGI calls: they are its to hand back.
            report = dataclasses.replace(report, released=(), maybe_in_asyncagi=())
        self.dispatcher.inbox.put_nowait(report)
        await self._hand_back_orphans(protocol, report.released, report.maybe_in_asyncagi)

    async def _take_over_asyncagi(self) -> None:
        if not self.connected:
            return  # the next login's resync hands them back
        try:
            protocol = await self.link.get(n.ACTION_CORE_SHOW_CHANNELS)
            items = await self.dispatcher.request_list(
                protocol, {n.H_ACTION: n.ACTION_CORE_SHOW_CHANNELS}, self.config.action_timeout
            )
        except AmiError as exc:
            log.warning("PBX %s: no channel list to take AsyncAGI calls over: %s", self.name, exc)
            return
        released, maybe = asyncagi_orphans(items, self.agi.serving)
        log.info(
            "PBX %s: taking over its AsyncAGI calls: %d waiting, %d maybe inside an application",
            self.name,
            len(released),
            len(maybe),
        )
        await self._hand_back_orphans(protocol, released, maybe)

    async def _hand_back_orphans(
        self, protocol: AmiProtocol, released: Iterable[str], maybe: Iterable[str]
    ) -> None:
        """Hand back to the dialplan the calls waiting in AsyncAGI with no flow, and
        those that may run an application inside such a session (see the resync)."""
        for channel in released:
            # Their IVR session ended with the link (or never began): hand the caller
            # back to the dialplan rather than leave them in silence.
            log.info("PBX %s: %s handed back to the dialplan after the resync", self.name, channel)
            await self._hand_back(protocol, channel)
        for channel in maybe:
            # Refused ("Failed to add AGI command") unless the call is in AsyncAGI. One
            # whose AsyncAGIStart came meanwhile is a new call for a flow of ours.
            if self.agi.serving(channel):
                continue
            if await self._hand_back(protocol, channel):
                log.info(
                    "PBX %s: %s runs an application inside AsyncAGI with no flow: handed back"
                    " to the dialplan when it returns",
                    self.name,
                    channel,
                )

    async def _hand_back(self, protocol: AmiProtocol, channel: str) -> bool:
        """Queue ``ASYNCAGI BREAK`` on ``channel``; whether Asterisk accepted it."""
        try:
            reply = await self.dispatcher.request(
                protocol,
                agi_break(channel, self.asyncagi.next_command_id()),
                self.config.action_timeout,
            )
        except AmiError as exc:
            log.warning("PBX %s: could not release %s: %s", self.name, channel, exc)
            return False
        return reply.response == n.RESPONSE_SUCCESS
