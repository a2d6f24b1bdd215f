"""The campaign scheduler: places due callbacks within the windows and the trunk's lines.

Two supervised loops (``gateway.supervise``): *calls* settles calls whose outcome
is overdue, then claims and places due calls; *orders* escalates overdue
rectification orders, texts any order whose level was never texted, and expires
rating requests nobody answered. An error in a round (a locked store) is logged
once, the loop backs off and goes on, and :meth:`CallbackScheduler.check` reports
it degraded for ``/health``. Each call runs as a task the supervisor owns; one
cancelled at stop leaves its attempt row ``placed``, which the next start marks
``unknown``: the citizen is not called again until that call can no longer be up.

No claims are made while the PBX link is down, and a call that could not be sent
(not connected) puts its claim back without counting an attempt.

Several gateways on one database (:mod:`gateway.cluster`): every gateway places calls
(the claims take turns on the store's write lock), but only the leader runs the order
round, and a gateway whose clock is off the database's runs no call round. At start a
gateway settles only the calls it placed itself before it stopped.
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
from gateway.cluster.leader import Leadership
from gateway.errors import GatewayError
from gateway.pbx.exceptions import (
    AmiActionTimeout,
    AmiConnectionLost,
    AmiNotConnected,
    OriginateOutcomeUnknown,
)
from gateway.phone import mask
from gateway.store.callbacks import ServedItem, originate_id
from gateway.supervise import Supervisor

log = logging.getLogger(__name__)


class CallbackScheduler:
    def __init__(
        self,
        service: CallbackService,
        dialer: Dialer,
        *,
        pbx: str,
        supervisor: Supervisor | None = None,
        cluster: Leadership | None = None,
    ) -> None:
        self.service = service
        self.cluster = cluster
        self.dialer = dialer
        self.pbx = pbx
        self.supervisor = supervisor or Supervisor("callbacks")
        self.active = 0  # lines in use: from Originate until the survey call ends
        self.placed = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due work now (a new item, a report, a finished call)."""
        self._wake.set()

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
            others_after=self.service.others_after,
        )
        if recovered:
            log.warning(
                "callbacks: %d calls were out when the gateway stopped; their attempts are"
                " counted and nobody is called again until those calls are over",
                len(recovered),
            )
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
        scale = getattr(self.service.clock, "speed", 1.0)
        return float(self.service.settings.poll_seconds) / float(scale)

    async def order_round(self) -> None:
        """Escalate overdue orders, text unnotified ones, expire SMS rating requests."""
        await self.service.escalate_overdue()
        await self.service.notify_unnotified()
        await self.service.expire_sms_requests()

    async def tick(self) -> int:
        """One round of calls: settle overdue ones, then place due calls if the PBX
        link is up. Returns how many calls were placed."""
        await self.service.settle_calls()
        if not self.dialer.connected:
            return 0  # "not connected" is never an attempt: nothing is claimed
        free = self.service.settings.max_concurrent_calls - self.active
        claimed = await self.service.claim_calls(free, self.pbx)
        for item, attempt_id in claimed:
            self.active += 1
            self.placed += 1
            self.supervisor.spawn(f"callback-{item.id}", self._call(item, attempt_id))
        return len(claimed)

    async def _call(self, item: ServedItem, attempt_id: int) -> None:
        try:
            variables = self.service.call_variables(item, attempt_id)
            try:
                result = await self.dialer.call(
                    item.citizen_number,
                    variables,
                    self.service.settings.ring_timeout_seconds,
                    originate_id(attempt_id),
                )
            except AmiNotConnected as exc:
                # Nothing was sent: the claim goes back, no attempt is counted.
                log.info("callback to %s not placed: %s", mask(item.citizen_number), exc)
                await self.service.release_claim(item, attempt_id)
                return
            except OriginateOutcomeUnknown as exc:
                # Sent, but its answer was lost (the link cut, or no OriginateResponse
                # in time): the call may ring or be up, and carries its ActionID. It is
                # settled later, by the call log or once it can no longer be up.
                log.warning("callback to %s: outcome lost: %s", mask(item.citizen_number), exc)
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
