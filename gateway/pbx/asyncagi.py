"""AsyncAGI over AMI: the transport that brings ``AGI(agi:async)`` calls to the AGI router.

``AsyncAGIStart`` makes an :class:`AgiChannel` whose commands go out as
``Action: AGI`` with our own ``CommandID`` (panoramisk's ``send_agi_command``
waits for an Asterisk 11 ``SubEvent`` that Asterisk 12+ never sends); each
result is the ``AsyncAGIExec`` event carrying the same ``CommandId``.
``Hangup`` and ``AsyncAGIEnd`` end the channel.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from gateway.ami import agi
from gateway.ami import names as n
from gateway.ami.frames import Frame
from gateway.pbx.agi_router import AgiRouter
from gateway.pbx.channel import AgiChannel
from gateway.pbx.dispatch import ActionHeaders
from gateway.pbx.exceptions import (
    AmiActionFailed,
    AmiConnectionLost,
    AmiError,
    AmiNotConnected,
    ChannelHungUp,
)

log = logging.getLogger(__name__)

SendAction = Callable[[ActionHeaders], Awaitable[Frame]]


def agi_break(channel: str, command_id: str) -> dict[str, str]:
    """The AMI action that sends ``ASYNCAGI BREAK`` to a channel."""
    return {
        n.H_ACTION: n.ACTION_AGI,
        n.H_CHANNEL: channel,
        n.H_COMMAND: agi.cmd_break(),
        n.H_COMMAND_ID_ACTION: command_id,
    }


class AsyncAgiTransport:
    """The :class:`gateway.pbx.channel.AgiLink` of AsyncAGI calls on one PBX link."""

    def __init__(self, pbx: str, uid: str, router: AgiRouter, send_action: SendAction) -> None:
        self._pbx = pbx
        self._uid = uid
        self._router = router
        self._send_action = send_action
        self._command_seq = 0
        self._waiting: dict[str, AgiChannel] = {}  # CommandID → channel
        # Whether this gateway runs the flows of the PBX's AsyncAGI calls; with several
        # gateways logged in to the PBX, one at a time does (gateway.cluster).
        self.serves: Callable[[], bool] = lambda: True

    # -- AgiLink ----------------------------------------------------------------

    @property
    def pbx_name(self) -> str:
        return self._pbx

    def next_command_id(self) -> str:
        self._command_seq += 1
        return f"command/{self._uid}/1/{self._command_seq}"

    def agi_expect(self, command_id: str, channel: AgiChannel) -> None:
        self._waiting[command_id] = channel

    def agi_forget(self, command_id: str) -> None:
        self._waiting.pop(command_id, None)

    async def agi_send(self, channel: str, command: str, command_id: str) -> None:
        try:
            await self._send_action(
                {
                    n.H_ACTION: n.ACTION_AGI,
                    n.H_CHANNEL: channel,
                    n.H_COMMAND: command,
                    n.H_COMMAND_ID_ACTION: command_id,
                }
            )
        except AmiActionFailed as exc:
            # "Channel X does not exist.": the caller is gone
            self.gone(channel, exc.message)
            raise ChannelHungUp(channel, during=command) from exc
        except AmiNotConnected as exc:
            raise AmiConnectionLost(self._pbx, command) from exc

    # -- events in ---------------------------------------------------------------

    def gone(self, name: str, reason: str) -> None:
        for command_id in self._router.gone(name, reason):
            self._waiting.pop(command_id, None)

    def link_lost(self) -> None:
        self._router.link_lost(self)
        self._waiting.clear()

    async def hand_back(self, channel: AgiChannel) -> None:
        """Queue ``ASYNCAGI BREAK`` outside the channel's command order: Asterisk runs it
        after the command in hand, even once we are gone."""
        try:
            await self._send_action(agi_break(channel.name, self.next_command_id()))
        except AmiError as exc:
            log.warning("PBX %s: could not hand %s back: %s", self._pbx, channel.name, exc)

    def ev_hangup(self, frame: Frame) -> None:
        name = frame.get(n.H_CHANNEL)
        if name:
            self.gone(name, f"hang-up ({frame.get(n.H_CAUSE_TXT, '')})")

    def ev_agi_end(self, frame: Frame) -> None:
        name = frame.get(n.H_CHANNEL)
        if name:
            self.gone(name, "AsyncAGI ended")

    def ev_agi_exec(self, frame: Frame) -> None:
        command_id = frame.get(n.H_COMMAND_ID_EVENT) or frame.get(n.H_COMMAND_ID_ACTION)
        if command_id is None:
            return
        channel = self._waiting.pop(command_id, None)
        if channel is None:
            return
        try:
            result: agi.AgiResult | Exception = agi.parse_result(frame.get(n.H_RESULT, ""))
        except agi.AgiParseError as exc:
            log.warning("PBX %s: %s", self._pbx, exc)
            result = exc
        channel.deliver(command_id, result)

    def ev_agi_start(self, frame: Frame) -> None:
        name = frame.get(n.H_CHANNEL, "")
        if not self.serves():
            log.debug("PBX %s: AsyncAGI call %s: another gateway serves it", self._pbx, name)
            return
        # The Env is decoded when the flow first reads the channel's environment
        # (URL-decoding it was a fifth of the ingest cost of an AGI burst).
        channel = AgiChannel(
            self,
            functools.partial(self.agi_env, frame, name),
            channel=name,
            linkedid=frame.get(n.H_LINKEDID, ""),
        )
        if self._router.serving(name):
            self.gone(name, "AsyncAGI restarted on the channel")
        self._router.start(channel, self)

    def agi_env(self, frame: Frame, name: str) -> agi.AgiEnvironment:
        """The AGI environment of an AsyncAGIStart; a bad Env is logged and the
        event's own headers stand in for it."""
        try:
            return agi.parse_env(frame.get(n.H_ENV, ""))
        except agi.AgiParseError as exc:
            log.error("PBX %s: AsyncAGIStart on %s with a bad Env: %s", self._pbx, name, exc)
            return agi.AgiEnvironment(
                channel=name,
                uniqueid=frame.get(n.H_UNIQUEID, ""),
                callerid=frame.get(n.H_CALLER_ID_NUM, ""),
                calleridname=frame.get(n.H_CALLER_ID_NAME, ""),
                context=frame.get(n.H_CONTEXT, ""),
                extension=frame.get(n.H_EXTEN, ""),
            )
