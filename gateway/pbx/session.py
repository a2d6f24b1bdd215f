"""One AMI session per PBX: login, keep-alive, reconnect, resync, actions, AsyncAGI.

The wire protocol class derives from panoramisk 1.4's ``AMIProtocol`` (an
``asyncio.Protocol`` over the event loop's own TCP transport) and replaces each
part of panoramisk that is wrong for a hotline:

* **framing**: panoramisk decodes every TCP read by itself with errors ignored,
  so a Chinese ``CallerIDName`` split across reads loses characters. Bytes go
  through :class:`gateway.ami.frames.FrameParser`, which decodes whole frames.
* **AsyncAGI**: panoramisk's ``send_agi_command`` waits for an Asterisk 11
  ``SubEvent`` that Asterisk 12+ never sends. We send ``Action: AGI`` with our
  ``CommandID`` and match the ``AsyncAGIExec`` event by its ``CommandId``.
* **Originate** always goes out with ``Async: true``; its outcome is the
  ``OriginateResponse`` event with the same ``ActionID``, turned into an
  :class:`OriginateOutcome`.
* **events**: panoramisk's ``dispatch`` turns coroutine callbacks into tasks
  nobody owns. Our listeners are synchronous; events travel through one
  in-order queue read by one consumer task the session owns. Events nobody
  listens to are dropped in ``data_received`` before any allocation.
* **keep-alive**: panoramisk pings without reading the reply. We ping every
  ``ping_interval``; no ``Pong`` within ``ping_timeout`` declares the link dead
  and the session reconnects.

Login is plain or MD5-challenge by configuration; a refused secret is an
:class:`AmiLoginError`, retried ``login_attempts`` times with backoff and then
given up (logged). Reconnects use exponential backoff with jitter between
``reconnect_min`` and ``reconnect_max``. After every (re)connect the session
lists live channels with ``CoreShowChannels`` and tells its resync listeners
which calls survived the outage and which were lost, so the call log closes
records and the IVR knows what it lost. Every task the session starts is owned
by it and cancelled and awaited when the ``async with`` block ends.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import hashlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from panoramisk.ami_protocol import AMIProtocol

from gateway.ami import agi
from gateway.ami import names as n
from gateway.ami.frames import Frame, FrameError, serialize
from gateway.clock import Clock
from gateway.config import PbxSection
from gateway.pbx.channel import AgiChannel
from gateway.pbx.exceptions import (
    AmiActionFailed,
    AmiActionTimeout,
    AmiConnectionLost,
    AmiError,
    AmiLoginError,
    AmiNotConnected,
    ChannelHungUp,
)
from gateway.pbx.wire import FastFrameParser

log = logging.getLogger(__name__)

Listener = Callable[[Frame], None]
AgiHandler = Callable[[AgiChannel], Awaitable[None]]
ActionHeaders = Mapping[str, str | list[str] | tuple[str, ...]]

LOGOFF_TIMEOUT = 1.0  # seconds given to a polite Logoff on close


# ---------------------------------------------------------------------------
# Values the session hands out


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
    AsyncAGI while nobody listened (their AsyncAGIStart is gone)."""

    pbx: str
    at: datetime
    reconnect: bool
    survived: tuple[ChannelInfo, ...] = ()
    lost: tuple[ChannelInfo, ...] = ()
    appeared: tuple[ChannelInfo, ...] = ()
    released: tuple[str, ...] = ()


ResyncListener = Callable[[ResyncReport], None]


def backoff_delay(attempt: int, low: float, high: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: about ``low * 2**attempt``, capped at ``high``,
    drawn from its upper half so reconnecting gateways do not stampede together."""
    if attempt < 0:
        raise ValueError(f"attempt must be ≥ 0, got {attempt}")
    ceiling = min(high, low * (2 ** min(attempt, 32)))
    return rng.uniform(ceiling / 2, ceiling)


# ---------------------------------------------------------------------------
# Pending actions


class _Pending:
    """An action waiting for its response (and, for lists and Originate, events)."""

    __slots__ = ("action", "action_id", "future", "items", "kind", "response")

    def __init__(self, action: str, action_id: str, kind: str, future: asyncio.Future[Any]) -> None:
        self.action = action
        self.action_id = action_id
        self.kind = kind  # "single", "list" or "originate"
        self.future = future
        self.items: list[Frame] = []
        self.response: Frame | None = None


class _Inbox:
    """The session's event queue: batches of frames and resync reports, in order,
    for its one consumer. Leaner than ``asyncio.Queue`` on the hot path: no
    size limit or task accounting, one waiter, and the consumer takes everything
    queued at each wake-up."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[list[Frame] | ResyncReport] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: list[Frame] | ResyncReport) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def take_all(self) -> list[list[Frame] | ResyncReport]:
        """Wait until something is queued; return all of it, oldest first."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items, self._items = self._items, []
        return items


# ---------------------------------------------------------------------------
# The protocol


class AmiProtocol(AMIProtocol):  # type: ignore[misc]
    """Bytes in, frames out to the session; frames from the session out as bytes."""

    def __init__(self, session: AmiSession) -> None:
        self.session = session
        self.parser = FastFrameParser(keep=session._keep())
        loop = asyncio.get_running_loop()
        self.banner: asyncio.Future[str | None] = loop.create_future()
        self._await_banner = True  # until the parser has read the banner line
        self.lost: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        # The hot path: every event of a busy PBX passes here. Frames for
        # listeners go to the session's queue as one batch per read.
        session = self.session
        internal = session._internal
        wanted = session._wanted
        parser = self.parser
        parser.keep = session._keep_set  # listeners may have been added since the last read
        batch: list[Frame] = []
        keep = batch.append  # bound once: called for nearly every frame
        for item in parser.feed(data):
            if type(item) is not Frame:
                session._on_frame_error(item)  # type: ignore[arg-type]
                continue
            event = item.get("Event")
            if event is None:
                session._on_response(item)
                continue
            if "ActionID" in item and session._on_action_event(item, event):
                continue
            # A membership test first: most events have no internal handler, and
            # `in` costs less than a method call that returns None.
            if event in internal:
                internal[event](item)
            if wanted is None or event in wanted:
                keep(item)
        if batch:
            session._queue.put_nowait(batch)
        if self._await_banner and not parser._expect_banner:
            self._await_banner = False
            if not self.banner.done():
                self.banner.set_result(parser.banner)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.banner.done():
            self.banner.set_exception(ConnectionError("closed before the banner"))
            self.banner.exception()  # retrieved: nobody may be waiting any more
        if not self.lost.done():
            self.lost.set_result(None)
        self.session._on_link_lost(self, exc)

    def send(self, data: ActionHeaders, as_list: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("transport closed")
        self.transport.write(serialize(dict(data)))  # type: ignore[arg-type]

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


# ---------------------------------------------------------------------------
# The session


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
        self._rng = rng or random.Random()
        self._agi_handler = agi_handler
        self._uid = str(uuid.uuid4())
        self._action_seq = 0
        self._command_seq = 0
        self._protocol: AmiProtocol | None = None
        self._connected = asyncio.Event()
        self._stopped = asyncio.Event()  # closing, or gave up
        self._closing = False
        self._failure: AmiError | None = None  # set once the session gave up (login refused)
        self._pending: dict[str, _Pending] = {}
        self._listeners: list[tuple[Listener, frozenset[str] | None]] = []
        self._resync_listeners: list[ResyncListener] = []
        self._wanted: frozenset[str] | None = frozenset()  # None: every event
        self._queue = _Inbox()
        self._live: dict[str, ChannelInfo] = {}  # uniqueid → channel
        self._at_loss: dict[str, ChannelInfo] | None = None
        self._agi_channels: dict[str, AgiChannel] = {}  # channel name → live AGI call
        self._agi_waiting: dict[str, AgiChannel] = {}  # CommandID → channel
        self._orphaned: set[str] = set()  # AGI channel names the link loss cut off
        self._originate_vars: dict[str, dict[str, str]] = {}  # Originate ActionID → variables
        self._originated: dict[str, str] = {}  # uniqueid → Originate ActionID
        self._tasks: set[asyncio.Task[None]] = set()
        self._agi_tasks: set[asyncio.Task[None]] = set()
        self._entered = False
        self.connects = 0  # successful logins so far
        self.frame_errors = 0
        self._keep_set: frozenset[str] | None = None
        self._internal: dict[str, Callable[[Frame], None]] = {
            n.EV_NEWCHANNEL: self._ev_newchannel,
            n.EV_HANGUP: self._ev_hangup,
            n.EV_ASYNC_AGI_START: self._ev_agi_start,
            n.EV_ASYNC_AGI_EXEC: self._ev_agi_exec,
            n.EV_ASYNC_AGI_END: self._ev_agi_end,
            n.EV_SHUTDOWN: self._ev_shutdown,
        }
        self._keep_set = self._keep()

    # -- lifecycle ----------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    pbx_name = name

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def live_channels(self) -> Mapping[str, ChannelInfo]:
        """Channels believed live on the PBX, by ``Uniqueid``."""
        return dict(self._live)

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("an AmiSession is entered once")
        self._entered = True
        self._start(self._consume(), "events")
        self._start(self._supervise(), "link")
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
        self._stopped.set()
        protocol = self._protocol
        if protocol is not None and self.connected:
            try:
                await self._request(protocol, {n.H_ACTION: n.ACTION_LOGOFF}, LOGOFF_TIMEOUT)
            except (AmiError, ConnectionError) as exc:
                log.info("PBX %s: logoff not acknowledged: %s", self.name, exc)
        for task in (*self._agi_tasks, *self._tasks):
            task.cancel()
        for task in (*self._agi_tasks, *self._tasks):
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("PBX %s: task %s failed while stopping", self.name, task.get_name())
        if protocol is not None:
            protocol.close()
            await protocol.lost
        self._connected.clear()

    def __del__(self) -> None:
        if self._entered and not self._closing:
            import warnings

            warnings.warn(f"AmiSession {self.name} was never closed", ResourceWarning, stacklevel=1)

    def _start(self, coro: Awaitable[None], what: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"ami-{self.name}-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_connected(self, within: float | None = None) -> None:
        """Wait until logged in; raise the login error if the session gave up."""
        if not self._connected.is_set() and not self._stopped.is_set():
            waiters = {
                asyncio.ensure_future(self._connected.wait()),
                asyncio.ensure_future(self._stopped.wait()),
            }
            try:
                done, _ = await asyncio.wait(
                    waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)
            if not done:
                raise AmiNotConnected(self.name, "wait", f"not logged in within {within:g}s")
        if self._connected.is_set():
            return
        if self._failure is not None:
            raise self._failure
        raise AmiNotConnected(self.name, "wait", "session closed")

    # -- listeners ----------------------------------------------------------

    def add_listener(self, fn: Listener, events: Iterable[str] | None = None) -> None:
        """Call ``fn(frame)`` for every event (or only those named in ``events``).

        ``fn`` is synchronous and runs in the session's one consumer task; an
        exception it raises is logged and the next event goes on.
        """
        wanted = None if events is None else frozenset(events)
        self._listeners.append((fn, wanted))
        if wanted is None or self._wanted is None:
            self._wanted = None
        else:
            self._wanted = self._wanted | wanted
        self._keep_set = self._keep()

    def _keep(self) -> frozenset[str] | None:
        """The events worth parsing: what listeners want and what the session reads."""
        if self._wanted is None:
            return None
        return self._wanted | frozenset(self._internal) | {n.EV_ORIGINATE_RESPONSE}

    def add_resync_listener(self, fn: ResyncListener) -> None:
        """Call ``fn(report)`` after every (re)connect, in order with the events."""
        self._resync_listeners.append(fn)

    def set_agi_handler(self, handler: AgiHandler) -> None:
        """Run ``await handler(channel)`` for every ``AsyncAGIStart``, in a task the
        session owns; ChannelHungUp and any other exception are caught and logged."""
        self._agi_handler = handler

    async def _consume(self) -> None:
        inbox = self._queue
        while True:
            for item in await inbox.take_all():
                if type(item) is list:
                    self._deliver(item)
                else:
                    for resync in self._resync_listeners:
                        try:
                            resync(item)  # type: ignore[arg-type]
                        except Exception:
                            log.exception("PBX %s: resync listener %r failed", self.name, resync)

    def _deliver(self, batch: list[Frame]) -> None:
        """Call the listeners for one read's events (each one has an Event header)."""
        listeners = self._listeners
        for frame in batch:
            event = frame["Event"]
            for fn, wanted in listeners:
                if wanted is None or event in wanted:
                    try:
                        fn(frame)
                    except Exception:
                        log.exception("PBX %s: listener %r failed on %s", self.name, fn, event)

    # -- the link: connect, login, keep alive, reconnect ------------------------

    async def _supervise(self) -> None:
        cfg = self.config
        attempt = 0
        refused = 0
        while not self._closing:
            before = self.connects
            try:
                await self._connect_and_serve()
            except AmiLoginError as exc:
                refused += 1
                log.error("%s (attempt %d of %d)", exc, refused, cfg.login_attempts)
                if refused >= cfg.login_attempts:
                    log.error("PBX %s: giving up after %d refused logins", self.name, refused)
                    self._failure = exc
                    self._stopped.set()
                    return
            except (OSError, TimeoutError, AmiError) as exc:
                log.warning("PBX %s: link down: %s", self.name, exc or type(exc).__name__)
            if self.connects > before:  # it was up: start the backoff afresh
                attempt = 0
                refused = 0
            if self._closing:
                return
            delay = backoff_delay(attempt, cfg.reconnect_min, cfg.reconnect_max, self._rng)
            attempt += 1
            log.info("PBX %s: reconnecting in %.2fs", self.name, delay)
            await self.clock.sleep(delay)

    async def _connect_and_serve(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(cfg.connect_timeout):
            _, protocol = await loop.create_connection(
                lambda: AmiProtocol(self), cfg.host, cfg.port
            )
        self._protocol = protocol
        served = False
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                banner = await protocol.banner
            if banner is None:
                log.warning("PBX %s: no Asterisk banner; going on", self.name)
            await self._login(protocol)
            self.connects += 1
            log.info("PBX %s: logged in as %s (%s)", self.name, cfg.username, banner or "?")
            self._connected.set()
            await self._resync(protocol)
            served = True
            await self._keep_alive(protocol)
        finally:
            protocol.close()
            await protocol.lost
            if not served:
                self._connected.clear()

    async def _login(self, protocol: AmiProtocol) -> None:
        cfg = self.config
        login: dict[str, str] = {
            n.H_ACTION: n.ACTION_LOGIN,
            n.H_USERNAME: cfg.username,
            n.H_EVENTS: "on",
        }
        if cfg.auth.lower() == "md5":
            challenge = await self._request(
                protocol, {n.H_ACTION: n.ACTION_CHALLENGE, n.H_AUTH_TYPE: "MD5"}
            )
            token = challenge.get(n.H_CHALLENGE)
            if challenge.response != n.RESPONSE_SUCCESS or not token:
                raise AmiLoginError(
                    self.name,
                    cfg.username,
                    f"MD5 challenge refused: {challenge.get(n.H_MESSAGE, '')}",
                )
            digest = hashlib.md5((token + cfg.secret.reveal()).encode("utf-8")).hexdigest()
            login[n.H_AUTH_TYPE] = "MD5"
            login[n.H_KEY] = digest
        else:
            login[n.H_SECRET] = cfg.secret.reveal()
        reply = await self._request(protocol, login)
        if reply.response != n.RESPONSE_SUCCESS:
            raise AmiLoginError(self.name, cfg.username, reply.get(n.H_MESSAGE, "") or "refused")

    async def _keep_alive(self, protocol: AmiProtocol) -> None:
        cfg = self.config
        while True:
            done, _ = await asyncio.wait({protocol.lost}, timeout=cfg.ping_interval)
            if done:
                raise AmiConnectionLost(self.name, "the session")
            try:
                rtt = await self._ping(protocol)
            except AmiActionTimeout:
                log.warning(
                    "PBX %s: no Pong within %gs: link declared dead", self.name, cfg.ping_timeout
                )
                raise AmiConnectionLost(self.name, "keep-alive ping") from None
            log.debug("PBX %s: ping %.1f ms", self.name, rtt * 1000)

    def _on_link_lost(self, protocol: AmiProtocol, exc: Exception | None) -> None:
        if protocol is not self._protocol:
            return
        self._connected.clear()
        if not self._closing:
            log.warning("PBX %s: connection lost%s", self.name, f": {exc}" if exc else "")
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(AmiConnectionLost(self.name, pending.action))
        self._pending.clear()
        for channel in self._agi_channels.values():
            if not channel.hung_up:
                self._orphaned.add(channel.name)
            channel.mark_link_lost()
        self._agi_channels.clear()
        self._agi_waiting.clear()
        self._originate_vars.clear()
        if self._at_loss is None:
            self._at_loss = dict(self._live)

    async def _resync(self, protocol: AmiProtocol) -> None:
        items = await self._request_list(protocol, {n.H_ACTION: n.ACTION_CORE_SHOW_CHANNELS})
        alive: dict[str, ChannelInfo] = {}
        for item in items:
            uid = item.get(n.H_UNIQUEID) or item.get_ci(n.H_UNIQUEID) or ""
            if not uid:
                continue
            alive[uid] = ChannelInfo(
                channel=item.get(n.H_CHANNEL, ""),
                uniqueid=uid,
                linkedid=item.get(n.H_LINKEDID) or item.get_ci(n.H_LINKEDID) or uid,
                caller_number=item.get(n.H_CALLER_ID_NUM, ""),
                application=f"{item.get('Application', '')}({item.get('ApplicationData', '')})",
            )
        known = self._at_loss if self._at_loss is not None else {}
        reconnect = self.connects > 1
        survived = tuple(info for uid, info in known.items() if uid in alive)
        lost = tuple(info for uid, info in known.items() if uid not in alive and uid in self._live)
        appeared = tuple(info for uid, info in alive.items() if uid not in known)
        for info in lost:
            self._live.pop(info.uniqueid, None)
        self._live.update(alive)
        self._at_loss = None
        released: list[str] = []
        orphaned, self._orphaned = self._orphaned, set()
        for info in survived:
            if info.channel in orphaned:
                released.append(info.channel)
        for info in appeared:
            # A call that reached AGI(agi:async) while nobody listened waits in
            # silence: its AsyncAGIStart is gone, so no flow can take it. Hand it
            # back to the dialplan (the hotline context queues it for an agent).
            if info.application.startswith("AGI(agi:async") and (
                info.channel not in self._agi_channels
            ):
                released.append(info.channel)
        report = ResyncReport(
            pbx=self.name,
            at=self.clock.now(),
            reconnect=reconnect,
            survived=survived,
            lost=lost,
            appeared=appeared,
            released=tuple(released),
        )
        log.info(
            "PBX %s: resync: %d live, %d survived, %d lost, %d appeared",
            self.name,
            len(alive),
            len(survived),
            len(lost),
            len(appeared),
        )
        self._queue.put_nowait(report)
        for channel in released:
            # Their IVR session ended with the link: hand the caller back to the
            # dialplan rather than leave them in silence.
            try:
                await self._request(
                    protocol,
                    {
                        n.H_ACTION: n.ACTION_AGI,
                        n.H_CHANNEL: channel,
                        n.H_COMMAND: agi.cmd_break(),
                        n.H_COMMAND_ID_ACTION: self.next_command_id(),
                    },
                )
            except AmiError as exc:
                log.warning("PBX %s: could not release %s: %s", self.name, channel, exc)

    # -- frames in ----------------------------------------------------------------

    def _on_response(self, frame: Frame) -> None:
        action_id = frame.get("ActionID")
        pending = self._pending.get(action_id) if action_id is not None else None
        if pending is None:
            if "Response" in frame:
                log.info(
                    "PBX %s: response to unknown ActionID %r ignored: %s",
                    self.name,
                    action_id,
                    frame.get(n.H_MESSAGE, frame.response),
                )
            else:
                log.warning("PBX %s: frame neither event nor response: %r", self.name, frame)
            return
        future = pending.future
        if future.done():
            del self._pending[pending.action_id]
            return
        if pending.kind == "single":
            del self._pending[pending.action_id]
            future.set_result(frame)
            return
        if frame.response != n.RESPONSE_SUCCESS:
            del self._pending[pending.action_id]
            future.set_exception(
                AmiActionFailed(
                    self.name, pending.action, pending.action_id, frame.get(n.H_MESSAGE, "")
                )
            )
            return
        pending.response = frame

    def _on_action_event(self, frame: Frame, event: str) -> bool:
        """An event carrying an ActionID: part of a pending action's answer?
        True if it was consumed (an event-list item)."""
        pending = self._pending.get(frame["ActionID"])
        if pending is None:
            return False
        if pending.kind == "list":
            if frame.get(n.H_EVENT_LIST) == "Complete" or (
                event.endswith("Complete") and n.H_LIST_ITEMS in frame
            ):
                del self._pending[pending.action_id]
                if not pending.future.done():
                    pending.future.set_result(pending.items)
            else:
                pending.items.append(frame)
            return True
        if pending.kind == "originate" and event == n.EV_ORIGINATE_RESPONSE:
            del self._pending[pending.action_id]
            self._note_originated(pending.action_id, frame)
            if not pending.future.done():
                pending.future.set_result(frame)
            return False  # listeners (the call log) see it too
        return False

    def _on_frame_error(self, error: FrameError) -> None:
        self.frame_errors += 1
        log.warning("PBX %s: malformed frame skipped: %s: %r", self.name, error.reason, error.raw)

    # -- internal event handlers ---------------------------------------------------

    def _ev_newchannel(self, frame: Frame) -> None:
        uid = frame.get(n.H_UNIQUEID)
        if uid:
            self._live[uid] = ChannelInfo(
                channel=frame.get(n.H_CHANNEL, ""),
                uniqueid=uid,
                linkedid=frame.get(n.H_LINKEDID, uid),
                caller_number=frame.get(n.H_CALLER_ID_NUM, ""),
            )

    def _ev_hangup(self, frame: Frame) -> None:
        uid = frame.get(n.H_UNIQUEID)
        if uid:
            self._live.pop(uid, None)
            call_id = self._originated.pop(uid, None)
            if call_id is not None:
                self._originate_vars.pop(call_id, None)
        name = frame.get(n.H_CHANNEL)
        if name:
            self._agi_gone(name, f"hang-up ({frame.get(n.H_CAUSE_TXT, '')})")

    def _ev_agi_end(self, frame: Frame) -> None:
        name = frame.get(n.H_CHANNEL)
        if name:
            self._agi_gone(name, "AsyncAGI ended")

    def _agi_gone(self, name: str, reason: str) -> None:
        channel = self._agi_channels.pop(name, None)
        if channel is None:
            return
        for command_id in channel.mark_gone(reason):
            self._agi_waiting.pop(command_id, None)

    def _ev_agi_exec(self, frame: Frame) -> None:
        command_id = frame.get(n.H_COMMAND_ID_EVENT) or frame.get(n.H_COMMAND_ID_ACTION)
        if command_id is None:
            return
        channel = self._agi_waiting.pop(command_id, None)
        if channel is None:
            return
        try:
            result: agi.AgiResult | Exception = agi.parse_result(frame.get(n.H_RESULT, ""))
        except agi.AgiParseError as exc:
            log.warning("PBX %s: %s", self.name, exc)
            result = exc
        channel.deliver(command_id, result)

    def _ev_shutdown(self, frame: Frame) -> None:
        log.warning(
            "PBX %s: Asterisk is shutting down (%s, restart: %s); reconnecting",
            self.name,
            frame.get("Shutdown", "?"),
            frame.get(n.H_RESTART, "?"),
        )
        if self._protocol is not None:
            self._protocol.close()

    def _ev_agi_start(self, frame: Frame) -> None:
        name = frame.get(n.H_CHANNEL, "")
        # The Env is decoded when the flow first reads the channel's environment
        # (URL-decoding it was a fifth of the ingest cost of an AGI burst).
        channel = AgiChannel(
            self,
            functools.partial(self._agi_env, frame, name),
            channel=name,
            linkedid=frame.get(n.H_LINKEDID, ""),
        )
        old = self._agi_channels.get(channel.name)
        if old is not None:
            self._agi_gone(old.name, "AsyncAGI restarted on the channel")
        self._agi_channels[channel.name] = channel
        # Only an Originate in flight needs the uniqueid (and so the parsed Env) now.
        call_id = self._originated.get(channel.uniqueid) if self._originated else None
        if call_id is not None and call_id in self._originate_vars:
            channel.set_variables(self._originate_vars[call_id])
        task = asyncio.get_running_loop().create_task(
            self._run_agi(channel, lookup=call_id is None), name=f"agi-{channel.name}"
        )
        self._agi_tasks.add(task)
        task.add_done_callback(self._agi_tasks.discard)

    def _agi_env(self, frame: Frame, name: str) -> agi.AgiEnvironment:
        """The AGI environment of an AsyncAGIStart; a bad Env is logged and the
        event's own headers stand in for it."""
        try:
            return agi.parse_env(frame.get(n.H_ENV, ""))
        except agi.AgiParseError as exc:
            log.error("PBX %s: AsyncAGIStart on %s with a bad Env: %s", self.name, name, exc)
            return agi.AgiEnvironment(
                channel=name,
                uniqueid=frame.get(n.H_UNIQUEID, ""),
                callerid=frame.get(n.H_CALLER_ID_NUM, ""),
                calleridname=frame.get(n.H_CALLER_ID_NAME, ""),
                context=frame.get(n.H_CONTEXT, ""),
                extension=frame.get(n.H_EXTEN, ""),
            )

    async def _run_agi(self, channel: AgiChannel, *, lookup: bool) -> None:
        handler = self._agi_handler
        try:
            if lookup and self._originate_vars:
                # An Originate is in flight and AsyncAGIStart came before its
                # OriginateResponse: ask the channel which Originate it is.
                call_id = await channel.get_variable(n.VAR_GATEWAY_CALL_ID)
                if call_id is not None and call_id in self._originate_vars:
                    channel.set_variables(self._originate_vars[call_id])
            if handler is None:
                log.warning(
                    "PBX %s: no AGI handler; %s handed back to the dialplan",
                    self.name,
                    channel.name,
                )
                await channel.release()
                return
            await handler(channel)
        except ChannelHungUp as exc:
            log.info("PBX %s: %s", self.name, exc)
        except asyncio.CancelledError:
            self._forget_agi(channel)
            raise
        except Exception:
            log.exception("PBX %s: AGI handler failed on %s", self.name, channel.name)
        if not channel.hung_up:
            # The handler ended without hanging up or releasing the call: hand it
            # back to the dialplan rather than leave the caller in silence.
            log.info("PBX %s: %s handed back to the dialplan", self.name, channel.name)
            try:
                await channel.release()
            except AmiError as exc:
                log.warning("PBX %s: could not release %s: %s", self.name, channel.name, exc)
        self._forget_agi(channel)

    def _forget_agi(self, channel: AgiChannel) -> None:
        if self._agi_channels.get(channel.name) is channel:
            del self._agi_channels[channel.name]

    # -- AgiLink, for AgiChannel -----------------------------------------------------

    def next_command_id(self) -> str:
        self._command_seq += 1
        return f"command/{self._uid}/1/{self._command_seq}"

    def agi_expect(self, command_id: str, channel: AgiChannel) -> None:
        self._agi_waiting[command_id] = channel

    def agi_forget(self, command_id: str) -> None:
        self._agi_waiting.pop(command_id, None)

    async def agi_send(self, channel: str, command: str, command_id: str) -> None:
        try:
            await self.action(
                {
                    n.H_ACTION: n.ACTION_AGI,
                    n.H_CHANNEL: channel,
                    n.H_COMMAND: command,
                    n.H_COMMAND_ID_ACTION: command_id,
                }
            )
        except AmiActionFailed as exc:
            # "Channel X does not exist.": the caller is gone
            self._agi_gone(channel, exc.message)
            raise ChannelHungUp(channel, during=command) from exc
        except AmiNotConnected as exc:
            raise AmiConnectionLost(self.name, command) from exc

    # -- actions out ------------------------------------------------------------

    def _next_action_id(self) -> str:
        self._action_seq += 1
        return f"action/{self._uid}/1/{self._action_seq}"

    def _register(self, headers: ActionHeaders, kind: str) -> tuple[dict[str, Any], _Pending]:
        frame: dict[str, Any] = dict(headers)
        action = str(frame.get(n.H_ACTION, ""))
        if not action:
            raise ValueError("an AMI action needs an 'Action' header")
        action_id = str(frame.get(n.H_ACTION_ID) or self._next_action_id())
        frame[n.H_ACTION_ID] = action_id
        if action_id in self._pending:
            raise ValueError(f"ActionID {action_id!r} is already waiting for an answer")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pending = _Pending(action, action_id, kind, future)
        return frame, pending

    async def _send(
        self, protocol: AmiProtocol, headers: ActionHeaders, kind: str, reply_timeout: float
    ) -> Any:
        frame, pending = self._register(headers, kind)
        self._pending[pending.action_id] = pending
        try:
            protocol.send(frame)
        except ConnectionError as exc:
            self._pending.pop(pending.action_id, None)
            raise AmiConnectionLost(self.name, pending.action) from exc
        try:
            async with asyncio.timeout(reply_timeout):
                return await pending.future
        except TimeoutError:
            raise AmiActionTimeout(
                self.name, pending.action, pending.action_id, reply_timeout
            ) from None
        finally:
            if self._pending.get(pending.action_id) is pending:
                del self._pending[pending.action_id]

    async def _request(
        self, protocol: AmiProtocol, headers: ActionHeaders, reply_timeout: float | None = None
    ) -> Frame:
        result: Frame = await self._send(
            protocol, headers, "single", reply_timeout or self.config.action_timeout
        )
        return result

    async def _request_list(
        self, protocol: AmiProtocol, headers: ActionHeaders, reply_timeout: float | None = None
    ) -> list[Frame]:
        result: list[Frame] = await self._send(
            protocol, headers, "list", reply_timeout or self.config.action_timeout
        )
        return result

    async def _link(self, action: str) -> AmiProtocol:
        """The live protocol, waiting up to ``action_timeout`` for a (re)connect."""
        if self._closing:
            raise AmiNotConnected(self.name, action, "session closed")
        if not self._entered:
            raise AmiNotConnected(self.name, action, "session not started")
        if not self._connected.is_set():
            try:
                await self.wait_connected(self.config.action_timeout)
            except AmiNotConnected as exc:
                raise AmiNotConnected(self.name, action, exc.reason) from None
        protocol = self._protocol
        if protocol is None:
            raise AmiNotConnected(self.name, action, "no link")
        return protocol

    async def action(
        self, headers: ActionHeaders, *, reply_timeout: float | None = None, check: bool = True
    ) -> Frame:
        """Send one action and return its response frame.

        Raises AmiActionFailed on ``Response: Error`` (unless ``check=False``),
        AmiActionTimeout, AmiConnectionLost, AmiNotConnected.
        """
        action = str(headers.get(n.H_ACTION, ""))
        protocol = await self._link(action)
        reply = await self._request(protocol, headers, reply_timeout)
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
        protocol = await self._link(action)
        return await self._request_list(protocol, headers, reply_timeout)

    async def command(self, text: str, *, reply_timeout: float | None = None) -> list[str]:
        """Run an Asterisk CLI command; return its output lines."""
        reply = await self.action(
            {n.H_ACTION: n.ACTION_COMMAND, n.H_COMMAND: text}, reply_timeout=reply_timeout
        )
        return reply.getall(n.H_OUTPUT)

    async def ping(self) -> float:
        """Round trip of an AMI ``Ping``, in seconds."""
        protocol = await self._link(n.ACTION_PING)
        return await self._ping(protocol)

    async def _ping(self, protocol: AmiProtocol) -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        reply = await self._request(protocol, {n.H_ACTION: n.ACTION_PING}, self.config.ping_timeout)
        if reply.response != n.RESPONSE_SUCCESS:
            raise AmiActionFailed(
                self.name, n.ACTION_PING, reply.get(n.H_ACTION_ID, ""), reply.get(n.H_MESSAGE, "")
            )
        return loop.time() - start

    async def originate(
        self,
        channel: str,
        context: str,
        exten: str,
        priority: int = 1,
        caller_id: str = "",
        timeout_ms: int = 30000,
        variables: Mapping[str, str] | None = None,
    ) -> OriginateResult:
        """Place a call (``Async: true``) and wait for its ``OriginateResponse``."""
        if timeout_ms <= 0:
            raise ValueError(f"timeout_ms must be positive, got {timeout_ms}")
        for key, value in (variables or {}).items():
            if "=" in key or not key or "\n" in value or "\r" in value:
                raise ValueError(f"bad Originate variable {key!r}")
        protocol = await self._link(n.ACTION_ORIGINATE)
        action_id = self._next_action_id()
        variables = {**(variables or {}), n.VAR_GATEWAY_CALL_ID: action_id}
        headers: dict[str, str | list[str]] = {
            n.H_ACTION: n.ACTION_ORIGINATE,
            n.H_ACTION_ID: action_id,
            n.H_CHANNEL: channel,
            n.H_CONTEXT: context,
            n.H_EXTEN: exten,
            n.H_PRIORITY: str(priority),
            n.H_TIMEOUT: str(timeout_ms),
            n.H_ASYNC: "true",
            n.H_VARIABLE: [f"{key}={value}" for key, value in variables.items()],
        }
        if caller_id:
            headers[n.H_CALLER_ID] = caller_id
        self._originate_vars[action_id] = variables
        wait = timeout_ms / 1000 + self.config.action_timeout
        try:
            event: Frame = await self._send(protocol, headers, "originate", wait)
        except AmiActionFailed as exc:
            self._originate_vars.pop(action_id, None)
            log.warning("PBX %s: Originate to %s refused: %s", self.name, channel, exc.message)
            return OriginateResult(
                OriginateOutcome.FAILED, None, action_id, channel, "", n.RESPONSE_ERROR
            )
        except BaseException:
            self._originate_vars.pop(action_id, None)
            raise
        outcome = originate_outcome(event.get(n.H_RESPONSE), event.get(n.H_REASON))
        reason = event.get(n.H_REASON, "")
        result = OriginateResult(
            outcome=outcome,
            reason=int(reason) if reason.lstrip("-").isdigit() else None,
            action_id=action_id,
            channel=event.get(n.H_CHANNEL, channel),
            uniqueid=event.get(n.H_UNIQUEID, ""),
            response=event.get(n.H_RESPONSE, ""),
        )
        if not result.answered:
            self._originate_vars.pop(action_id, None)
        return result

    def _note_originated(self, action_id: str, frame: Frame) -> None:
        uid = frame.get(n.H_UNIQUEID)
        if frame.get(n.H_RESPONSE) == n.RESPONSE_SUCCESS and uid:
            self._originated[uid] = action_id
            channel = self._agi_by_uniqueid(uid)
            if channel is not None and action_id in self._originate_vars:
                channel.set_variables(self._originate_vars[action_id])

    def _agi_by_uniqueid(self, uid: str) -> AgiChannel | None:
        for channel in self._agi_channels.values():
            if channel.uniqueid == uid:
                return channel
        return None


@dataclass
class _PoolState:
    sessions: dict[str, AmiSession] = field(default_factory=dict)


class PbxPool:
    """One :class:`AmiSession` per configured PBX, started and stopped together."""

    def __init__(
        self,
        sections: Iterable[PbxSection],
        *,
        clock: Clock | None = None,
        agi_handler: AgiHandler | None = None,
    ) -> None:
        sections = tuple(sections)
        seen: set[str] = set()
        for section in sections:
            if section.name in seen:
                raise ValueError(f"two PBXs are named {section.name!r}")
            seen.add(section.name)
        self._state = _PoolState(
            {s.name: AmiSession(s, clock=clock, agi_handler=agi_handler) for s in sections}
        )

    @property
    def sessions(self) -> Mapping[str, AmiSession]:
        return dict(self._state.sessions)

    def __getitem__(self, name: str) -> AmiSession:
        try:
            return self._state.sessions[name]
        except KeyError:
            known = sorted(self._state.sessions)
            raise KeyError(f"no PBX named {name!r}; configured: {known}") from None

    def __iter__(self) -> Any:
        return iter(self._state.sessions.values())

    def add_listener(
        self, fn: Callable[[str, Frame], None], events: Iterable[str] | None = None
    ) -> None:
        """Call ``fn(pbx_name, frame)`` for the events of every PBX."""
        wanted = None if events is None else tuple(events)
        for session in self._state.sessions.values():
            session.add_listener(functools.partial(fn, session.name), wanted)

    def add_resync_listener(self, fn: ResyncListener) -> None:
        for session in self._state.sessions.values():
            session.add_resync_listener(fn)

    def set_agi_handler(self, handler: AgiHandler) -> None:
        for session in self._state.sessions.values():
            session.set_agi_handler(handler)

    async def __aenter__(self) -> Self:
        started: list[AmiSession] = []
        try:
            for session in self._state.sessions.values():
                await session.__aenter__()
                started.append(session)
        except BaseException:
            for session in reversed(started):
                await session.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for session in reversed(list(self._state.sessions.values())):
            try:
                await session.close()
            except Exception:
                log.exception("PBX %s: error while closing", session.name)
