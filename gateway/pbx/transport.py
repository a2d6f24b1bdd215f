"""The AMI transport: bytes in, frames out to a :class:`FrameSink`; actions out as bytes.

The protocol class derives from panoramisk 1.4's ``AMIProtocol`` (an
``asyncio.Protocol`` over the event loop's own TCP transport) and replaces the
parts of panoramisk that are wrong for a hotline: bytes go through
:class:`gateway.pbx.wire.FastFrameParser`, which decodes whole frames (a
Chinese ``CallerIDName`` split across reads keeps its characters), and events
nobody listens to are dropped before any allocation. It knows nothing of
sessions: what it reads goes to the sink (:class:`gateway.pbx.dispatch.Dispatcher`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from panoramisk.ami_protocol import AMIProtocol

from gateway.ami.frames import Frame, FrameError, serialize
from gateway.pbx.dispatch import ActionHeaders, Inbox
from gateway.pbx.wire import FastFrameParser


class FrameSink(Protocol):
    """What the wire protocol feeds: the dispatcher of one PBX link."""

    internal: dict[str, Callable[[Frame], None]]
    wanted: frozenset[str] | None
    keep_set: frozenset[str] | None
    inbox: Inbox

    def on_response(self, frame: Frame) -> None: ...

    def on_action_event(self, frame: Frame, event: str) -> bool: ...

    def on_frame_error(self, error: FrameError) -> None: ...

    def on_undecodable(self, charset: str) -> None:
        """Frames not valid in ``charset`` were read (with replacement characters)."""
        ...


class AmiProtocol(AMIProtocol):  # type: ignore[misc]
    """Bytes in, frames out to the sink; frames from the session out as bytes."""

    def __init__(
        self,
        sink: FrameSink,
        on_lost: Callable[[AmiProtocol, Exception | None], None] | None = None,
        *,
        charset: str = "utf-8",
    ) -> None:
        self.sink = sink
        self._on_lost = on_lost
        self.parser = FastFrameParser(keep=sink.keep_set, charset=charset)
        self._lossy = 0
        loop = asyncio.get_running_loop()
        self.banner: asyncio.Future[str | None] = loop.create_future()
        self._await_banner = True  # until the parser has read the banner line
        self.lost: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._now = loop.time
        self.last_read = self._now()  # any byte read proves the PBX alive

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        # The hot path: every event of a busy PBX passes here. Frames for
        # listeners go to the inbox as one batch per read.
        self.last_read = self._now()
        sink = self.sink
        internal = sink.internal
        wanted = sink.wanted
        parser = self.parser
        parser.keep = sink.keep_set  # listeners may have been added since the last read
        batch: list[Frame] = []
        keep = batch.append  # bound once: called for nearly every frame
        for item in parser.feed(data):
            if type(item) is not Frame:
                sink.on_frame_error(item)  # type: ignore[arg-type]
                continue
            event = item.get("Event")
            if event is None:
                sink.on_response(item)
                continue
            if "ActionID" in item and sink.on_action_event(item, event):
                continue
            # A membership test first: most events have no internal handler, and
            # `in` costs less than a method call that returns None.
            if event in internal:
                internal[event](item)
            if wanted is None or event in wanted:
                keep(item)
        if batch:
            sink.inbox.put_nowait(batch)
        if parser.lossy != self._lossy:
            self._lossy = parser.lossy
            sink.on_undecodable(parser.charset)
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
        if self._on_lost is not None:
            self._on_lost(self, exc)

    def send(self, data: ActionHeaders, as_list: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("transport closed")
        self.transport.write(serialize(dict(data)))  # type: ignore[arg-type]

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
