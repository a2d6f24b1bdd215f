"""The outbox worker: claims due texts, sends them, records what happened.

    async with OutboxWorker(service, provider):
        ...  # texts go out while the block runs

A text is a row before any network call (:meth:`SmsService.enqueue`). The worker
moves due rows ``queued → sending`` in one transaction, sends each through the
provider, and stores the provider's sid as soon as the create call returns.

Exactly once, and how:

* **Retry only what certainly did not land** right away: a 429 (honouring
  ``Retry-After``) or a refused connection. A 5xx, a timeout or a dropped connection
  may have reached Twilio, which has no idempotency key; such a row is marked
  ``needs_lookup`` and retried no sooner than ``sms.lookup_delay``.
* **Look up before re-sending.** A row marked ``needs_lookup``, and every row found
  ``sending`` without a sid when the worker starts (the process died between the
  send and the commit), is first looked up: the provider's newest messages to that
  number (``GET Messages.json?To=…``, newest first, paged back to the claim) are
  matched on the body, a creation time no earlier than the row's claim (minus a
  minute of clock skew), and a sid no other row holds. A match is recorded as this
  row's sid; only if none matches is the text sent. Listing by ``DateSent`` was not
  used: a message still queued at the provider has no send date and would be missed.
* **Never on a permanent error** (invalid or unsubscribed number, bad credentials):
  the row fails with the provider's code.

Texts to citizens found due inside quiet hours are put back until the morning
without counting an attempt; officers' orders go at any hour. Sends are paced per
sender by a token bucket (``sms.rate_per_second``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import timedelta

from gateway.phone import mask
from gateway.sms.exceptions import (
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from gateway.sms.policy import Backoff, TokenBucket, earliest_send
from gateway.sms.provider import ProviderMessage, SmsProvider
from gateway.sms.service import OPTED_OUT_CODE, SmsService
from gateway.store.sms import OutboxMessage

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=1)


class OutboxWorker:
    def __init__(
        self,
        service: SmsService,
        provider: SmsProvider,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.service = service
        self.provider = provider
        self.repo = service.repo
        self.clock = service.clock
        config = service.config
        self.concurrency = max(1, config.workers)
        self.max_attempts = max(1, config.max_attempts)
        self.lookup_delay = config.lookup_delay
        self.poll_interval = config.poll_interval
        self.backoff = Backoff(config.backoff_min, config.backoff_max)
        self.rate = config.rate_per_second
        self.status_refresh = config.status_refresh
        self._next_refresh = 0.0
        self._rng = rng or random.Random()
        self._buckets: dict[str, TokenBucket] = {}
        self._stack = contextlib.AsyncExitStack()
        self._stopping = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._inflight = 0
        self._main: asyncio.Task[None] | None = None
        self.sent = 0  # texts accepted by the provider in this worker's life
        self.reconciled = 0  # texts found at the provider instead of re-sent

    async def __aenter__(self) -> OutboxWorker:
        interrupted = await self.repo.reclaim_interrupted()
        if interrupted:
            log.warning("%d text(s) were mid-send at the last stop: looking them up", interrupted)
        group = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._group = group
        self._main = group.create_task(self._run(), name="sms-outbox")
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop claiming; texts already in flight finish (bounded by the HTTP timeout)."""
        self._stopping.set()
        self.service.wakeup.set()
        self._slot_free.set()
        await self._stack.aclose()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            free = self.concurrency - self._inflight
            claimed = await self.repo.claim_due(free) if free > 0 else []
            for message in claimed:
                self._inflight += 1
                self._group.create_task(self._process(message), name=f"sms-{message.id}")
            if claimed and self._inflight < self.concurrency:
                continue
            await self._refresh_if_due()
            await self._wait(full=self._inflight >= self.concurrency)

    async def _refresh_if_due(self) -> None:
        """Fetch texts whose callbacks seem lost, at most every ``status_refresh / 4`` s."""
        now = asyncio.get_running_loop().time()
        if now < self._next_refresh:
            return
        self._next_refresh = now + max(self.poll_interval, self.status_refresh / 4)
        stale = await self.repo.stale_in_flight(
            self.clock.now() - timedelta(seconds=self.status_refresh), 100
        )
        for message in stale:
            assert message.provider_sid is not None
            try:
                found = await self.provider.fetch(message.provider_sid)
            except ProviderError as exc:
                log.warning("text #%d: status refresh failed: %s", message.id, exc)
                return
            code = str(found.error_code) if found.error_code else None
            update = await self.repo.apply_status(found.sid, found.status, code, "refreshed")
            if not update.applied:
                await self.repo.touch(message.id)

    async def _wait(self, *, full: bool) -> None:
        """Sleep until a slot frees (when full) or a text is queued / comes due."""
        if full:
            self._slot_free.clear()
            waiter = self._slot_free
        else:
            self.service.wakeup.clear()
            waiter = self.service.wakeup
            timeout = self.poll_interval
            due = await self.repo.next_due()
            if due is not None:
                timeout = min(timeout, max(0.0, (due - self.clock.now()).total_seconds()))
            if timeout <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await waiter.wait()
            return
        await waiter.wait()

    async def _process(self, message: OutboxMessage) -> None:
        try:
            await self._attempt(message)
        except Exception:
            # A store failure: the row stays "sending" and is looked up at the next start.
            log.exception("text #%d: could not record the attempt", message.id)
        finally:
            self._inflight -= 1
            self._slot_free.set()

    async def _attempt(self, message: OutboxMessage) -> None:
        now = self.clock.now()
        if message.audience == "citizen":
            release = self.service.quiet.release_time(now)
            if release > now:
                await self.repo.hold(message.id, release, "quiet hours: held until morning")
                return
            if await self.repo.is_opted_out(message.to):
                await self.repo.record_failed(
                    message.id, code=OPTED_OUT_CODE, reason="recipient opted out before sending"
                )
                return
        try:
            if message.needs_lookup:
                found = await self._look_up(message)
                if found is not None:
                    await self.repo.record_accepted(
                        message.id,
                        found.sid,
                        found.status,
                        f"found at the provider as {found.sid} ({found.status}): not re-sent",
                    )
                    self.reconciled += 1
                    log.info("text #%d found at the provider: not re-sent", message.id)
                    return
            await self._pace(message.sender)
            result = await self.provider.send(
                message.to, message.body, self.service.status_callback_url
            )
        except PermanentProviderError as exc:
            log.warning("text #%d to %s refused: %s", message.id, mask(message.to), exc)
            code = str(exc.code) if exc.code is not None else None
            await self.repo.record_failed(message.id, code=code, reason=str(exc))
            return
        except TransientProviderError as exc:
            await self._retry(message, exc, exc.retry_after, exc.ambiguous)
            return
        except ProviderError as exc:
            await self._retry(message, exc, None, True)
            return
        await self.repo.record_accepted(message.id, result.sid, result.status)
        self.sent += 1

    async def _retry(
        self,
        message: OutboxMessage,
        exc: ProviderError,
        retry_after: float | None,
        ambiguous: bool,
    ) -> None:
        code = str(exc.code) if exc.code is not None else (str(exc.status) if exc.status else None)
        if message.attempts >= self.max_attempts:
            reason = f"gave up after {message.attempts} attempts: {exc}"
            log.error("text #%d to %s: %s", message.id, mask(message.to), reason)
            await self.repo.record_failed(message.id, code=code, reason=reason)
            return
        delay = self.backoff.delay(message.attempts, retry_after, self._rng)
        if ambiguous:
            delay = max(delay, self.lookup_delay)
        now = self.clock.now()
        when = earliest_send(message.audience, now + timedelta(seconds=delay), self.service.quiet)
        log.info(
            "text #%d attempt %d failed (%s); retry in %.1fs",
            message.id,
            message.attempts,
            exc,
            (when - now).total_seconds(),
        )
        await self.repo.record_retry(
            message.id, when, code=code, reason=str(exc), needs_lookup=ambiguous
        )
        self.service.wakeup.set()

    async def _look_up(self, message: OutboxMessage) -> ProviderMessage | None:
        since = (message.claimed_at or message.created_at) - CLOCK_SKEW
        candidates = [
            m for m in await self.provider.recent_to(message.to, since) if m.body == message.body
        ]
        if not candidates:
            return None
        taken = await self.repo.known_sids([m.sid for m in candidates])
        free = [m for m in candidates if m.sid not in taken]
        return free[-1] if free else None  # the oldest: the first attempt that landed

    async def _pace(self, sender: str) -> None:
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = self._buckets[sender] = TokenBucket(self.rate)
        delay = bucket.reserve(asyncio.get_running_loop().time())
        if delay > 0:
            await asyncio.sleep(delay)
