"""An AsyncAGI call driven over AMI: the :class:`gateway.ivr.channel.Channel` the flow engine sees.

Each command is sent as ``Action: AGI`` with our own ``CommandID``; its result
is the ``AsyncAGIExec`` event carrying the same ``CommandId``, matched by the
session. One command runs at a time per channel, and the next one is sent as
soon as the previous result arrives (Asterisk polls its queue every ~100 ms).

Hang-up is an exception: once the caller is gone (a ``Hangup`` event for the
channel, ``AsyncAGIEnd``, a ``511`` reply, ``(hangup)``, ``result=-1`` confirmed by
``CHANNEL STATUS``, the channel unknown to Asterisk) the pending command and every
later one raise :class:`ChannelHungUp`; when the AMI link drops they raise its
subclass :class:`ChannelLinkLost` (the caller did not hang up). ``hangup()`` on a
channel that is already gone does nothing.

A ``result=-1`` alone is never a hang-up: an application run by ``EXEC`` (``Queue``
after the seat hung up first) or a missing prompt answers -1 with the caller still
there, so the channel's state (``CHANNEL STATUS``) decides.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from gateway.ami import agi
from gateway.ami.agi import AgiEnvironment, AgiResult
from gateway.ivr.channel import RecordResult
from gateway.pbx.exceptions import (
    AgiCommandFailed,
    AmiConnectionLost,
    ChannelHungUp,
    ChannelLinkLost,
)

log = logging.getLogger(__name__)

LINK_LOST = "AMI link lost"
READ_VARIABLE = "GATEWAY_DIGITS"  # where EXEC Read leaves the keys pressed
# The hang-up cause the gateway gives a call it ends itself (Normal Clearing), and the
# hang-up source it names, so the call's records tell who ended it.
HANGUP_CAUSE = 16
HANGUP_SOURCE = "gateway"

# Sample rates of the formats RECORD FILE writes, to turn endpos into milliseconds.
_RATES = {"wav16": 16000, "sln16": 16000, "g722": 16000, "sln48": 48000}


class AgiLink(Protocol):
    """What a channel needs of its AMI session."""

    @property
    def pbx_name(self) -> str: ...

    def next_command_id(self) -> str: ...

    def agi_expect(self, command_id: str, channel: AgiChannel) -> None:
        """Route the ``AsyncAGIExec`` with this ``CommandId`` to ``channel``."""
        ...

    def agi_forget(self, command_id: str) -> None: ...

    async def agi_send(self, channel: str, command: str, command_id: str) -> None:
        """Send ``Action: AGI`` and wait for Asterisk to queue it (raise if it refused)."""
        ...


class AgiChannel:
    """One live AsyncAGI call. Built by the session on ``AsyncAGIStart``."""

    def __init__(
        self,
        link: AgiLink,
        env: AgiEnvironment | Callable[[], AgiEnvironment],
        *,
        channel: str = "",
        linkedid: str = "",
        variables: Mapping[str, str] | None = None,
    ) -> None:
        self._link = link
        # ``env`` may be a function that builds the environment: the session hands
        # over the AsyncAGIStart's Env undecoded and it is parsed on first use, so a
        # burst of calls does not pay for URL-decoding what no flow reads.
        if isinstance(env, AgiEnvironment):
            self._env: AgiEnvironment | None = env
            self._make_env: Callable[[], AgiEnvironment] | None = None
        else:
            self._env = None
            self._make_env = env
        self._name = channel or self.env.channel
        self._linkedid = linkedid  # empty: the call's own uniqueid, read from env
        self._variables: dict[str, str] = dict(variables or {})
        self._lock = asyncio.Lock()
        self._waiting: dict[str, asyncio.Future[AgiResult]] = {}
        self._gone: str | None = None  # why the channel is gone, once it is
        self._gone_error: type[ChannelHungUp] = ChannelHungUp  # what later commands raise

    # -- identity -----------------------------------------------------------

    @property
    def env(self) -> AgiEnvironment:
        """The call's AGI environment (built on first access when given as a function)."""
        env = self._env
        if env is None:
            assert self._make_env is not None
            env = self._env = self._make_env()
            self._make_env = None
        return env

    @property
    def name(self) -> str:
        return self._name

    @property
    def uniqueid(self) -> str:
        return self.env.uniqueid

    @property
    def linkedid(self) -> str:
        return self._linkedid or self.env.uniqueid

    @property
    def caller_number(self) -> str:
        return self.env.callerid

    @property
    def caller_name(self) -> str:
        return self.env.calleridname

    @property
    def dialled_number(self) -> str:
        return self.env.dialled_number

    @property
    def hung_up(self) -> bool:
        return self._gone is not None

    @property
    def gone_reason(self) -> str | None:
        return self._gone

    def variable(self, name: str) -> str | None:
        return self._variables.get(name)

    def set_variables(self, variables: Mapping[str, str]) -> None:
        """Attach the variables an Originate gave this call (used by the session)."""
        self._variables.update(variables)

    @property
    def pbx(self) -> str:
        """The configured name of the PBX this call is on."""
        return self._link.pbx_name

    def __repr__(self) -> str:
        state = f" gone: {self._gone}" if self._gone else ""
        return f"<AgiChannel {self._name} {self.uniqueid}{state}>"

    # -- called by the session ----------------------------------------------

    def deliver(self, command_id: str, result: AgiResult | Exception) -> None:
        """The ``AsyncAGIExec`` for ``command_id`` arrived (or could not be read)."""
        future = self._waiting.get(command_id)
        if future is None or future.done():
            return
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)

    def mark_gone(self, reason: str) -> list[str]:
        """The call is over: fail what is pending; return the command ids it held."""
        if self._gone is None:
            self._gone = reason
        pending = list(self._waiting)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(self._gone_error(self._name, during=reason))
        return pending

    def mark_link_lost(self) -> list[str]:
        """The AMI link dropped: the gateway can no longer drive the call, though the
        caller may still be on it; what is pending and every later command raise
        :class:`ChannelLinkLost`."""
        if self._gone is None:
            self._gone_error = ChannelLinkLost
        return self.mark_gone(LINK_LOST)

    @property
    def link_lost(self) -> bool:
        """The call was cut off from the gateway by the AMI link dropping."""
        return self._gone_error is ChannelLinkLost

    def _gone_exception(self, during: str) -> ChannelHungUp:
        # A command on a channel already gone names why it went (a hang-up, the AsyncAGI
        # ended by a hand-back, the link lost), not itself: it had no part in it.
        return self._gone_error(self._name, during=self._gone or during)

    # -- the command loop ---------------------------------------------------

    async def execute(self, command: str) -> AgiResult:
        """Send one AGI command and return its result.

        Raises ChannelHungUp when the channel is gone before, during or by this
        command; AgiCommandFailed for 510/520 replies.
        """
        result = await self._exchange(command)
        if result.is_hangup:
            self.mark_gone(f"{command}: {result.text}")
            raise ChannelHungUp(self._name, during=command)
        return result

    async def _exchange(self, command: str) -> AgiResult:
        """Send one AGI command and return its result, even one that reports a hang-up
        (``RECORD FILE`` keeps what was recorded); a dead channel (511) raises ChannelHungUp."""
        async with self._lock:
            if self._gone is not None:
                raise self._gone_exception(command)
            command_id = self._link.next_command_id()
            future: asyncio.Future[AgiResult] = asyncio.get_running_loop().create_future()
            self._waiting[command_id] = future
            self._link.agi_expect(command_id, self)
            try:
                try:
                    await self._link.agi_send(self._name, command, command_id)
                except AmiConnectionLost as exc:
                    self.mark_link_lost()
                    raise self._gone_exception(command) from exc
                result = await future
            finally:
                self._waiting.pop(command_id, None)
                self._link.agi_forget(command_id)
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()  # mark it retrieved: the caller got its own error
        if result.code == agi.AGI_DEAD_CHANNEL:
            self.mark_gone(f"{command}: {result.text}")
            raise ChannelHungUp(self._name, during=command)
        if not result.ok:
            raise AgiCommandFailed(self._name, command, result.code, result.text)
        return result

    async def _checked(self, command: str) -> AgiResult:
        """Like :meth:`execute`, but ``result=-1`` is read as a hang-up only when
        ``CHANNEL STATUS`` confirms it; otherwise it is a failed command (a missing
        prompt file also answers -1)."""
        result = await self.execute(command)
        if result.result == "-1":
            await self._still_there(command, result)
            raise AgiCommandFailed(self._name, command, result.code, result.text)
        return result

    async def _still_there(self, command: str, result: AgiResult) -> int:
        """After ``command`` answered ``result=-1``: ask ``CHANNEL STATUS``; raise
        ChannelHungUp if the channel is gone, else return its state (6: Up)."""
        try:
            status = await self.execute(agi.cmd_channel_status())
        except ChannelHungUp as exc:
            raise self._gone_exception(command) from exc
        state = status.value
        if state is None or state < 0:
            self.mark_gone(f"{command}: {result.text}")
            raise ChannelHungUp(self._name, during=command)
        return state

    # -- the Channel protocol -------------------------------------------------

    async def answer(self) -> None:
        await self._checked(agi.cmd_answer())

    async def stream_file(self, prompt: str, escape_digits: str = "") -> str | None:
        result = await self._checked(agi.cmd_stream_file(prompt, escape_digits))
        return result.digit

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
        result = await self._checked(agi.cmd_get_data(prompt, timeout_ms, max_digits))
        return result.result, result.timed_out

    async def read_digits(
        self, prompts: Sequence[str], timeout_ms: int, max_digits: int
    ) -> tuple[str, bool]:
        """Several prompts then digits in two commands, not one per prompt: ``EXEC Read``
        (Asterisk's Read joins files with &, GET DATA does not), then ``GET FULL VARIABLE``
        for what was keyed and READSTATUS."""
        await self.exec("Read", agi.read_options(READ_VARIABLE, prompts, max_digits, timeout_ms))
        expression = f"${{{READ_VARIABLE}}},${{READSTATUS}}"
        result = await self.execute(agi.cmd_get_full_variable(expression))
        digits, _, status = result.data.rpartition(",")
        if status == "HANGUP":
            self.mark_gone(f"EXEC Read: READSTATUS={status}")
            raise ChannelHungUp(self._name, during="EXEC Read")
        if status not in ("OK", "TIMEOUT"):
            raise AgiCommandFailed(self._name, "EXEC Read", result.code, f"READSTATUS={status}")
        return digits, status == "TIMEOUT"

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        result = await self._checked(agi.cmd_wait_for_digit(timeout_ms))
        return result.digit

    async def record_file(
        self,
        path: str,
        fmt: str = "wav",
        escape_digits: str = "#",
        timeout_ms: int = 60000,
        beep: bool = True,
        silence_s: int | None = 5,
    ) -> RecordResult:
        command = agi.cmd_record_file(path, fmt, escape_digits, timeout_ms, beep, silence_s)
        result = await self._exchange(command)
        rate = _RATES.get(fmt, 8000)
        duration_ms = (result.endpos or 0) * 1000 // rate
        if result.data == "hangup":
            # The recording up to the hang-up is kept: a caller who leaves a message
            # and hangs up is the usual end. Later commands raise ChannelHungUp.
            self.mark_gone(f"{command}: {result.text}")
            return RecordResult(path, "hangup", None, duration_ms, fmt)
        if result.result == "-1":
            # (writefile): Asterisk could not open the file, e.g. a folder its user may
            # not write. Any other -1 is judged by the channel's state.
            if not result.write_failed:
                try:
                    await self._still_there(command, result)
                except ChannelHungUp:
                    if self.link_lost:
                        raise
                    return RecordResult(path, "hangup", None, duration_ms, fmt)
            log.error(
                "PBX %s: %s could not record %s.%s: RECORD FILE answered %s",
                self.pbx,
                self._name,
                path,
                fmt,
                result.text,
            )
            return RecordResult(path, "failed", None, 0, fmt)
        if result.data == "dtmf":
            return RecordResult(path, "dtmf", result.digit, duration_ms, fmt)
        if result.data == "silence":
            return RecordResult(path, "silence", None, duration_ms, fmt)
        if result.data == "timeout":
            return RecordResult(path, "timeout", None, duration_ms, fmt)
        if result.result not in ("0", ""):
            raise AgiCommandFailed(self._name, command, result.code, result.text)
        return RecordResult(path, "timeout", None, duration_ms, fmt)

    async def set_variable(self, name: str, value: str) -> None:
        await self._checked(agi.cmd_set_variable(name, value))

    async def get_variable(self, name: str) -> str | None:
        """A channel variable's value (``GET VARIABLE``), None when it is not set."""
        result = await self.execute(agi.cmd_get_variable(name))
        return result.data if result.result == "1" else None

    async def exec(self, application: str, options: str = "") -> int:
        """Run a dialplan application; return what it returned.

        -1 is returned only with the caller still on the line (``CHANNEL STATUS``
        says so): ``Queue`` answers -1 when the seat hung up first. A channel that
        is gone raises ChannelHungUp; an unknown application (-2) AgiCommandFailed."""
        command = agi.cmd_exec(application, options)
        result = await self.execute(command)
        value = result.value
        if value is None or value == -2:
            raise AgiCommandFailed(self._name, command, result.code, result.text)
        if value == -1:
            state = await self._still_there(command, result)
            log.info(
                "%s: %s answered -1 with the channel still %s",
                self._name,
                command,
                "Up" if state == agi.CHANNEL_STATE_UP else f"there (state {state})",
            )
        return value

    async def play(self, prompts: Sequence[str]) -> None:
        """Several prompts as one ``EXEC Playback a&b&c``: no AsyncAGI poll between them."""
        await self.exec("Playback", agi.playback_files(prompts))

    async def release(self) -> None:
        """``ASYNCAGI BREAK``: hand the call back to the dialplan; no command after it."""
        if self._gone is not None:
            return
        try:
            await self.execute(agi.cmd_break())
        except ChannelHungUp:
            return  # AsyncAGIEnd (or the hang-up) overtook the result
        self.mark_gone("released to the dialplan")

    async def hangup(self) -> None:
        """End the call, saying who ended it: the hang-up source ``gateway``
        (``CHANNEL(hangupsource)``, in CEL's HANGUP) and cause 16 Normal Clearing
        (``Hangup(16)``; AGI's own HANGUP leaves cause 0 "Unknown")."""
        if self._gone is not None:
            return
        try:
            await self.execute(agi.cmd_set_variable("CHANNEL(hangupsource)", HANGUP_SOURCE))
            # Hangup() answers -1 once it has hung the channel up: no CHANNEL STATUS.
            await self.execute(agi.cmd_exec("Hangup", str(HANGUP_CAUSE)))
        except ChannelHungUp:
            return
        self.mark_gone("hung up by the gateway")
