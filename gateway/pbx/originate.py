"""Originate: place a call (``Async: true``) and turn its ``OriginateResponse``
(matched by ``ActionID``) into an :class:`OriginateResult`.

Nothing about the call is kept in memory: what it is about travels on the call
itself as channel variables (``Variable:`` headers, plus ``GATEWAY_CALL_ID`` =
the ActionID), which the flow reads with ``GET VARIABLE`` whenever the call is
answered, also after a reconnect or a restart. An Originate that went out but
whose outcome was lost raises :class:`OriginateOutcomeUnknown`, never a failure:
the call may be ringing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from gateway.ami import names as n
from gateway.ami.frames import Frame
from gateway.pbx.dispatch import Dispatcher, Sender
from gateway.pbx.exceptions import (
    AmiActionFailed,
    AmiActionTimeout,
    AmiConnectionLost,
    OriginateOutcomeUnknown,
)
from gateway.pbx.values import OriginateOutcome, OriginateResult, originate_outcome

log = logging.getLogger(__name__)

GetLink = Callable[[str], Awaitable[Sender]]


def check_variables(variables: Mapping[str, str]) -> None:
    """Refuse a variable Asterisk would misread (``=`` in a name, a line break in a value)."""
    for key, value in variables.items():
        if "=" in key or not key or "\n" in value or "\r" in value:
            raise ValueError(f"bad Originate variable {key!r}")


class Originator:
    """Originates calls on one PBX link."""

    def __init__(self, pbx: str, dispatcher: Dispatcher, link: GetLink, wait: float) -> None:
        self._pbx = pbx
        self._dispatcher = dispatcher
        self._link = link
        self._wait = wait  # added to the ring time: how long to wait for the outcome

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

        ``action_id`` lets the caller name the Originate (a callback attempt writes its
        own before dialling, so a record of the call can be tied to it after a crash).
        Raises AmiNotConnected when nothing was sent (no attempt was made), and
        OriginateOutcomeUnknown when the Originate went out but its outcome was lost.
        """
        if timeout_ms <= 0:
            raise ValueError(f"timeout_ms must be positive, got {timeout_ms}")
        check_variables(variables or {})
        sender = await self._link(n.ACTION_ORIGINATE)
        action_id = action_id or self._dispatcher.next_action_id()
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
        wait = timeout_ms / 1000 + self._wait
        try:
            event: Frame = await self._dispatcher.send(sender, headers, "originate", wait)
        except AmiActionFailed as exc:
            log.warning("PBX %s: Originate to %s refused: %s", self._pbx, channel, exc.message)
            return OriginateResult(
                OriginateOutcome.FAILED, None, action_id, channel, "", n.RESPONSE_ERROR
            )
        except AmiConnectionLost as exc:
            raise OriginateOutcomeUnknown(self._pbx, action_id, channel, "link lost") from exc
        except AmiActionTimeout as exc:
            raise OriginateOutcomeUnknown(
                self._pbx, action_id, channel, f"no OriginateResponse in {wait:g}s"
            ) from exc
        outcome = originate_outcome(event.get(n.H_RESPONSE), event.get(n.H_REASON))
        reason = event.get(n.H_REASON, "")
        return OriginateResult(
            outcome=outcome,
            reason=int(reason) if reason.lstrip("-").isdigit() else None,
            action_id=action_id,
            channel=event.get(n.H_CHANNEL, channel),
            uniqueid=event.get(n.H_UNIQUEID, ""),
            response=event.get(n.H_RESPONSE, ""),
        )
