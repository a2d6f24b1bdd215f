"""Originate bookkeeping: place a call (``Async: true``) and turn its
``OriginateResponse`` (matched by ``ActionID``) into an :class:`OriginateResult`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from gateway.ami import names as n
from gateway.ami.frames import Frame
from gateway.pbx.agi_router import AgiRouter
from gateway.pbx.channel import AgiChannel
from gateway.pbx.dispatch import Dispatcher, Sender
from gateway.pbx.exceptions import AmiActionFailed
from gateway.pbx.values import OriginateOutcome, OriginateResult, originate_outcome

log = logging.getLogger(__name__)

GetLink = Callable[[str], Awaitable[Sender]]


class Originator:
    """Originates calls on one PBX link and ties the answered ones to their variables."""

    def __init__(
        self, pbx: str, dispatcher: Dispatcher, router: AgiRouter, link: GetLink, wait: float
    ) -> None:
        self._pbx = pbx
        self._dispatcher = dispatcher
        self._router = router
        self._link = link
        self._wait = wait  # added to the ring time: how long to wait for the outcome
        self._vars: dict[str, dict[str, str]] = {}  # Originate ActionID → variables
        self._originated: dict[str, str] = {}  # uniqueid → Originate ActionID

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
        sender = await self._link(n.ACTION_ORIGINATE)
        action_id = self._dispatcher.next_action_id()
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
        self._vars[action_id] = variables
        wait = timeout_ms / 1000 + self._wait
        try:
            event: Frame = await self._dispatcher.send(
                sender,
                headers,
                "originate",
                wait,
                on_event=lambda frame: self._note_originated(action_id, frame),
            )
        except AmiActionFailed as exc:
            self._vars.pop(action_id, None)
            log.warning("PBX %s: Originate to %s refused: %s", self._pbx, channel, exc.message)
            return OriginateResult(
                OriginateOutcome.FAILED, None, action_id, channel, "", n.RESPONSE_ERROR
            )
        except BaseException:
            self._vars.pop(action_id, None)
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
            self._vars.pop(action_id, None)
        return result

    def _note_originated(self, action_id: str, frame: Frame) -> None:
        uid = frame.get(n.H_UNIQUEID)
        if frame.get(n.H_RESPONSE) == n.RESPONSE_SUCCESS and uid:
            self._originated[uid] = action_id
            channel = self._router.by_uniqueid(uid)
            if channel is not None and action_id in self._vars:
                channel.set_variables(self._vars[action_id])

    def on_agi_start(self, channel: AgiChannel) -> Callable[[], Awaitable[None]] | None:
        """Attach an answered Originate's variables to its AGI call; when the
        AsyncAGIStart came before the OriginateResponse, return a step that asks
        the channel which Originate it is."""
        # Only an Originate in flight needs the uniqueid (and so the parsed Env) now.
        call_id = self._originated.get(channel.uniqueid) if self._originated else None
        if call_id is not None:
            if call_id in self._vars:
                channel.set_variables(self._vars[call_id])
            return None
        if not self._vars:
            return None

        async def lookup() -> None:
            if not self._vars:
                return
            found = await channel.get_variable(n.VAR_GATEWAY_CALL_ID)
            if found is not None and found in self._vars:
                channel.set_variables(self._vars[found])

        return lookup

    def ev_hangup(self, frame: Frame) -> None:
        uid = frame.get(n.H_UNIQUEID)
        if uid:
            call_id = self._originated.pop(uid, None)
            if call_id is not None:
                self._vars.pop(call_id, None)

    def link_lost(self) -> None:
        self._vars.clear()
