"""Action dispatch: frames in, answers to the actions waiting for them, events to listeners.

The :class:`Dispatcher` is what the wire protocol (:mod:`gateway.pbx.transport`)
feeds. A response or an event carrying a pending ``ActionID`` answers that
action (a single response, an event list ended by ``…Complete``, or an
``OriginateResponse``); every other event goes to the *internal* handler the
session's parts registered for it (channel tracking, AsyncAGI) and, when a
listener wants it, into the in-order :class:`Inbox` that one consumer task
reads. Listeners are synchronous: no fire-and-forget tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from gateway.ami import names as n
from gateway.ami.frames import Frame, FrameError
from gateway.pbx.exceptions import (
    AmiActionFailed,
    AmiActionTimeout,
    AmiConnectionLost,
    AmiNotConnected,
)
from gateway.pbx.values import ResyncListener, ResyncReport

log = logging.getLogger(__name__)

Listener = Callable[[Frame], None]
ActionHeaders = Mapping[str, str | list[str] | tuple[str, ...]]


class Sender(Protocol):
    """Where actions go out: the live wire protocol."""

    def send(self, data: ActionHeaders, as_list: bool = False) -> None: ...


class Pending:
    """An action waiting for its response (and, for lists and Originate, events)."""

    __slots__ = ("action", "action_id", "future", "items", "kind", "on_event", "response")

    def __init__(
        self,
        action: str,
        action_id: str,
        kind: str,
        future: asyncio.Future[Any],
        on_event: Callable[[Frame], None] | None = None,
    ) -> None:
        self.action = action
        self.action_id = action_id
        self.kind = kind  # "single", "list" or "originate"
        self.future = future
        self.items: list[Frame] = []
        self.response: Frame | None = None
        self.on_event = on_event  # told of the OriginateResponse before anyone else


class Inbox:
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


class Dispatcher:
    """Pending actions, internal event handlers and listeners of one PBX link."""

    def __init__(self, pbx: str, uid: str) -> None:
        self.pbx = pbx
        self.uid = uid  # this session's part of every ActionID
        self._action_seq = 0
        self.pending: dict[str, Pending] = {}
        self.internal: dict[str, Callable[[Frame], None]] = {}
        self.inbox = Inbox()
        self.wanted: frozenset[str] | None = frozenset()  # None: every event
        self.keep_set: frozenset[str] | None = self._keep()
        self.frame_errors = 0
        self.undecodable_warned = False
        self._listeners: list[tuple[Listener, frozenset[str] | None]] = []
        self._resync_listeners: list[ResyncListener] = []

    # -- who wants what --------------------------------------------------------

    def handle(self, event: str, fn: Callable[[Frame], None]) -> None:
        """Run ``fn(frame)`` for ``event`` as soon as it is read (one per event)."""
        if event in self.internal:
            raise ValueError(f"{event} already has an internal handler")
        self.internal[event] = fn
        self.keep_set = self._keep()

    def add_listener(self, fn: Listener, events: Iterable[str] | None = None) -> None:
        wanted = None if events is None else frozenset(events)
        self._listeners.append((fn, wanted))
        if wanted is None or self.wanted is None:
            self.wanted = None
        else:
            self.wanted = self.wanted | wanted
        self.keep_set = self._keep()

    def add_resync_listener(self, fn: ResyncListener) -> None:
        self._resync_listeners.append(fn)

    def _keep(self) -> frozenset[str] | None:
        """The events worth parsing: what listeners want and what the session reads."""
        if self.wanted is None:
            return None
        return self.wanted | frozenset(self.internal) | {n.EV_ORIGINATE_RESPONSE}

    # -- the consumer ----------------------------------------------------------

    async def consume(self) -> None:
        """Deliver queued events and resync reports to listeners, in order, forever."""
        inbox = self.inbox
        while True:
            for item in await inbox.take_all():
                if type(item) is list:
                    self._deliver(item)
                else:
                    for resync in self._resync_listeners:
                        try:
                            resync(item)  # type: ignore[arg-type]
                        except Exception:
                            log.exception("PBX %s: resync listener %r failed", self.pbx, resync)

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
                        log.exception("PBX %s: listener %r failed on %s", self.pbx, fn, event)

    # -- actions out -------------------------------------------------------------

    def next_action_id(self) -> str:
        self._action_seq += 1
        return f"action/{self.uid}/1/{self._action_seq}"

    def register(
        self,
        headers: ActionHeaders,
        kind: str,
        on_event: Callable[[Frame], None] | None = None,
    ) -> tuple[dict[str, Any], Pending]:
        frame: dict[str, Any] = dict(headers)
        action = str(frame.get(n.H_ACTION, ""))
        if not action:
            raise ValueError("an AMI action needs an 'Action' header")
        action_id = str(frame.get(n.H_ACTION_ID) or self.next_action_id())
        frame[n.H_ACTION_ID] = action_id
        if action_id in self.pending:
            raise ValueError(f"ActionID {action_id!r} is already waiting for an answer")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        return frame, Pending(action, action_id, kind, future, on_event)

    async def send(
        self,
        sender: Sender,
        headers: ActionHeaders,
        kind: str,
        reply_timeout: float | None,
        on_event: Callable[[Frame], None] | None = None,
    ) -> Any:
        """Send one action and wait for its answer (a frame, or a list of items)."""
        frame, pending = self.register(headers, kind, on_event)
        self.pending[pending.action_id] = pending
        try:
            sender.send(frame)
        except ConnectionError as exc:
            # Nothing went out: the PBX never saw this action.
            self.pending.pop(pending.action_id, None)
            raise AmiNotConnected(self.pbx, pending.action, "link closed before sending") from exc
        try:
            async with asyncio.timeout(reply_timeout):
                return await pending.future
        except TimeoutError:
            raise AmiActionTimeout(
                self.pbx, pending.action, pending.action_id, reply_timeout or 0.0
            ) from None
        finally:
            if self.pending.get(pending.action_id) is pending:
                del self.pending[pending.action_id]

    async def request(
        self, sender: Sender, headers: ActionHeaders, reply_timeout: float | None
    ) -> Frame:
        """Send one action; return its response frame, whatever it says."""
        result: Frame = await self.send(sender, headers, "single", reply_timeout)
        return result

    async def request_list(
        self, sender: Sender, headers: ActionHeaders, reply_timeout: float
    ) -> list[Frame]:
        """Send an action answered by an event list; return its items."""
        result: list[Frame] = await self.send(sender, headers, "list", reply_timeout)
        return result

    def fail_all(self) -> None:
        """The link is gone: every action waiting for an answer fails."""
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(AmiConnectionLost(self.pbx, pending.action))
        self.pending.clear()

    # -- frames in (called by the wire protocol) ----------------------------------

    def on_response(self, frame: Frame) -> None:
        action_id = frame.get("ActionID")
        pending = self.pending.get(action_id) if action_id is not None else None
        if pending is None:
            if "Response" in frame:
                log.info(
                    "PBX %s: response to unknown ActionID %r ignored: %s",
                    self.pbx,
                    action_id,
                    frame.get(n.H_MESSAGE, frame.response),
                )
            else:
                log.warning("PBX %s: frame neither event nor response: %r", self.pbx, frame)
            return
        future = pending.future
        if future.done():
            del self.pending[pending.action_id]
            return
        if pending.kind == "single":
            del self.pending[pending.action_id]
            future.set_result(frame)
            return
        if frame.response != n.RESPONSE_SUCCESS:
            del self.pending[pending.action_id]
            future.set_exception(
                AmiActionFailed(
                    self.pbx, pending.action, pending.action_id, frame.get(n.H_MESSAGE, "")
                )
            )
            return
        pending.response = frame

    def on_action_event(self, frame: Frame, event: str) -> bool:
        """An event carrying an ActionID: part of a pending action's answer?
        True if it was consumed (an event-list item)."""
        pending = self.pending.get(frame["ActionID"])
        if pending is None:
            return False
        if pending.kind == "list":
            if frame.get(n.H_EVENT_LIST) == "Complete" or (
                event.endswith("Complete") and n.H_LIST_ITEMS in frame
            ):
                del self.pending[pending.action_id]
                if not pending.future.done():
                    pending.future.set_result(pending.items)
            else:
                pending.items.append(frame)
            return True
        if pending.kind == "originate" and event == n.EV_ORIGINATE_RESPONSE:
            del self.pending[pending.action_id]
            if pending.on_event is not None:
                pending.on_event(frame)
            if not pending.future.done():
                pending.future.set_result(frame)
            return False  # listeners (the call log) see it too
        return False

    def on_undecodable(self, charset: str) -> None:
        if self.undecodable_warned:
            return
        self.undecodable_warned = True  # once per PBX: a GBK site sends such frames all day
        log.warning(
            "PBX %s: text that is not valid %s (caller names shown with replacement "
            "characters); if this PBX writes another charset (e.g. gbk), set its charset",
            self.pbx,
            charset,
        )

    def on_frame_error(self, error: FrameError) -> None:
        self.frame_errors += 1
        log.warning("PBX %s: malformed frame skipped: %s: %r", self.pbx, error.reason, error.raw)
