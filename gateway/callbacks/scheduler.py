"""The campaign scheduler: places due callbacks within the windows and the PBXs' lines.

Two supervised loops (``gateway.supervise``): *calls* settles calls whose outcome
is overdue, then claims and places due calls; *orders* escalates overdue
rectification orders, texts any order whose level was never texted, and expires
rating requests nobody answered. An error in a round (a locked store) is logged
once, the loop backs off and goes on, and :meth:`CallbackScheduler.check` reports
it degraded for ``/health``. Each call runs as a task the supervisor owns; one
cancelled at stop leaves its attempt row ``placed``, which the next start marks
``unknown``: the citizen is not called again until that call can no longer be up.

Each round's claim spreads the due calls over the PBXs whose link is up, by their
free lines counted in the store (``pbx.lines`` minus the callback calls that may
still be up on that PBX, whichever gateway placed them), and each call is placed on
its attempt's PBX. A PBX whose link is down gets no claims; a call that could not be
sent (not connected) puts its claim back without counting an attempt.

Several gateways on one database (:mod:`gateway.cluster`): every gateway places calls
(the claims take turns on the store's write lock), but only the leader runs the order
round, and a gateway whose clock is off the database's runs no call round. At start a
gateway settles only the calls it placed itself before it stopped.

An item whose call ended but which was never moved on (a stop or a failed write
between the two) is moved on by the next round, whichever gateway placed its call.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from gateway.callbacks.policy import CallOutcome
from gateway.callbacks.service import (
    MAX_SURVEY_SECONDS,
    SURVEY_START_SECONDS,
    CallbackService,
    Dialer,
    DialResult,
)
from gateway.clock import real_seconds
from gateway.cluster.leader import Leadership
from gateway.errors import GatewayError
from gateway.pbx.exceptions import (
    AmiActionTimeout,
    AmiConnectionLost,
    AmiNotConnected,
    OriginateOutcomeUnknown,
)
from gateway.phone import mask
from gateway.store.callbacks import Attempt, ServedItem, originate_id
from gateway.supervise import Supervisor

log = logging.getLogger(__name__)


class CallbackScheduler:
    def __init__(
        self,
        service: CallbackService,
        dialer: Dialer,
        *,
        supervisor: Supervisor | None = None,
        cluster: Leadership | None = None,
    ) -> None:
        self.service = service
        self.cluster = cluster
        self.dialer = dialer
        self.supervisor = supervisor or Supervisor("callbacks")
        # Calls this gateway has out, from Originate until the survey ends (a figure:
        # the lines are counted in the store, over every gateway).
        self.active = 0
        self.placed = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due work now (a new item, a report, a finished call)."""
        self._wake.set()

    @property
    def idle(self) -> bool:
        """No call of this gateway's is out, and the round its last wake asked for is
        over: until the next wake or poll, it claims nothing."""
        calls = self.supervisor.loops.get("calls")
        busy = calls is not None and calls.in_round
        return self.active == 0 and not self._wake.is_set() and not busy

    async def start(self) -> None:
        """Settle what a previous run left out, then start the loops."""
        hold = self.service.clock.now() + timedelta(
            minutes=self.service.settings.retry_spacing_minutes
        )
        shared = self.cluster is not None and self.cluster.shared
        recovered = await self.service.store.callbacks.recover_interrupted(
            hold,
            self.service.unanswered_until(),
            owner=self.service.owner if shared else None,
        )
        if recovered:
            log.warning(
                "callbacks: %d calls were out when the gateway stopped; their attempts are"
                " counted and nobody is called again until those calls are over",
                len(recovered),
            )
        # Nothing of this gateway's is between two writes now: what a stop left
        # "calling" moves on at once.
        await self.service.move_stranded(timedelta(0))
        poll = self._poll_seconds
        self.supervisor.loop("calls", self._calls_round, every=poll, wake=self._wake)
        orders = self.order_round if self.cluster is None else self.cluster.led(self.order_round)
        self.supervisor.loop("orders", orders, every=poll)

    async def _calls_round(self) -> int:
        """A round of :meth:`tick`, unless the clock is off the database's: then this
        gateway neither judges other gateways' calls over nor claims (``/health``)."""
        if self.cluster is not None and not self.cluster.skew.ok:
            return 0
        return await self.tick()

    async def aclose(self) -> None:
        """Stop the loops and the calls in progress (their attempts stay ``placed``)."""
        await self.supervisor.aclose()

    def check(self) -> None:
        """Raise (for ``/health``) while a loop is failing."""
        self.supervisor.check()

    def _poll_seconds(self) -> float:
        # The clock may run faster than real time (the demo); poll in its time.
        return real_seconds(self.service.clock, float(self.service.settings.poll_seconds))

    async def order_round(self) -> None:
        """Act on ratings a stop left unacted on, escalate overdue orders, text unnotified
        ones, expire SMS rating requests."""
        await self.service.act_on_ratings()
        await self.service.escalate_overdue()
        await self.service.notify_unnotified()
        await self.service.expire_sms_requests()

    async def tick(self) -> int:
        """One round of calls: settle overdue ones, then place due calls on the PBXs
        whose link is up. Returns how many calls were placed."""
        await self.service.settle_calls()
        await self.service.move_stranded()
        # "Not connected" is never an attempt: a PBX whose link is down gets no claim.
        lines = {
            pbx: n for pbx, n in self.dialer.lines.items() if n > 0 and self.dialer.connected(pbx)
        }
        if not lines:
            return 0
        claimed = await self.service.claim_spread(lines)
        for item, attempt in claimed:
            self.active += 1
            self.placed += 1
            self.supervisor.spawn(f"callback-{item.id}", self._call(item, attempt))
        return len(claimed)

    async def _call(self, item: ServedItem, attempt: Attempt) -> None:
        attempt_id = attempt.id
        try:
            assert attempt.pbx is not None  # a claimed call names its PBX
            variables = self.service.call_variables(item, attempt_id)
            try:
                result = await self.dialer.call(
                    attempt.pbx,
                    item.citizen_number,
                    variables,
                    self.service.settings.ring_timeout_seconds,
                    originate_id(attempt_id),
                )
            except AmiNotConnected as exc:
                # Nothing was sent: the claim goes back, no attempt is counted.
                log.info(
                    "callback to %s on %s not placed: %s",
                    mask(item.citizen_number),
                    attempt.pbx,
                    exc,
                )
                await self.service.release_claim(item, attempt_id)
                return
            except OriginateOutcomeUnknown as exc:
                # Sent, but its answer was lost (the link cut, or no OriginateResponse
                # in time): the call may ring or be up, and carries its ActionID. It is
                # settled later, by the call log or once it can no longer be up.
                log.warning(
                    "callback to %s on %s: outcome lost: %s",
                    mask(item.citizen_number),
                    attempt.pbx,
                    exc,
                )
                result = DialResult(CallOutcome.UNKNOWN, action_id=exc.action_id)
            except (AmiConnectionLost, AmiActionTimeout) as exc:
                log.warning("callback to %s: outcome lost: %s", mask(item.citizen_number), exc)
                result = DialResult(CallOutcome.UNKNOWN)
            except GatewayError as exc:
                log.warning("callback to %s failed: %s", mask(item.citizen_number), exc)
                result = DialResult(CallOutcome.FAILED)
            if await self.service.call_finished(item, attempt_id, result):
                # The line stays busy while the citizen is in the survey; the store
                # holds the bounded wait too (settle_calls), so a restart keeps it.
                await self.service.wait_survey(
                    attempt_id, SURVEY_START_SECONDS + MAX_SURVEY_SECONDS
                )
        finally:
            self.active -= 1
            self._wake.set()
