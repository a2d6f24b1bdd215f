"""The campaign scheduler: places due callbacks within the windows and the trunk's lines.

One owned loop; each call runs as a task in the scheduler's TaskGroup, so
shutdown waits for none of them to be lost silently: a call cancelled at stop
leaves its attempt row ``placed``, which the next start marks ``unknown`` and
counts as used (the citizen is not called twice for the same attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from gateway.callbacks.policy import CallOutcome
from gateway.callbacks.service import CallbackService, Dialer, DialResult
from gateway.errors import GatewayError
from gateway.phone import mask
from gateway.store.callbacks import ServedItem

log = logging.getLogger(__name__)


class CallbackScheduler:
    MAX_SURVEY_SECONDS = 600.0

    def __init__(self, service: CallbackService, dialer: Dialer, *, pbx: str) -> None:
        self.service = service
        self.dialer = dialer
        self.pbx = pbx
        self.active = 0  # lines in use: from Originate until the survey call ends
        self.placed = 0
        self._wake = asyncio.Event()
        self._calls: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Look for due work now (a new item, a report, a finished call)."""
        self._wake.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CallbackScheduler]:
        recovered = await self.service.store.callbacks.recover_interrupted(self.service.clock.now())
        if recovered:
            log.warning(
                "callbacks: %d calls were out when the gateway stopped; their attempts are"
                " counted and the items wait for their next try",
                len(recovered),
            )
        async with asyncio.TaskGroup() as group:
            loop = group.create_task(self._loop(group), name="callback-scheduler")
            try:
                yield self
            finally:
                loop.cancel()
                for task in list(self._calls):
                    task.cancel()

    async def _loop(self, group: asyncio.TaskGroup) -> None:
        settings = self.service.settings
        while True:
            try:
                await self.tick(group)
            except GatewayError as exc:
                log.error("callbacks: %s", exc)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=self._poll_seconds(settings.poll_seconds)
                )

    def _poll_seconds(self, seconds: float) -> float:
        # The clock may run faster than real time (the demo); poll in its time.
        scale = getattr(self.service.clock, "speed", 1.0)
        return float(seconds) / float(scale)

    async def tick(self, group: asyncio.TaskGroup) -> int:
        """One round: escalate overdue orders, expire SMS requests, place due calls."""
        await self.service.escalate_overdue()
        await self.service.expire_sms_requests()
        free = self.service.settings.max_concurrent_calls - self.active
        claimed = await self.service.claim_calls(free, self.pbx)
        for item, attempt_id in claimed:
            self.active += 1
            self.placed += 1
            task = group.create_task(self._call(item, attempt_id), name=f"callback-{item.id}")
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
        return len(claimed)

    async def _call(self, item: ServedItem, attempt_id: int) -> None:
        try:
            variables = self.service.call_variables(item, attempt_id)
            try:
                result = await self.dialer.call(
                    item.citizen_number, variables, self.service.settings.ring_timeout_seconds
                )
            except GatewayError as exc:
                log.warning("callback to %s failed: %s", mask(item.citizen_number), exc)
                result = DialResult(CallOutcome.FAILED)
            await self.service.call_finished(item, attempt_id, result)
            if result.outcome is CallOutcome.ANSWERED:
                # The line stays busy while the citizen is in the survey.
                await self.service.wait_survey(attempt_id, self.MAX_SURVEY_SECONDS)
        except Exception:
            log.exception("callback for item %s went wrong", item.reference)
        finally:
            self.active -= 1
            self._wake.set()
