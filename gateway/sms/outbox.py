"""The outbox worker: claims due texts, sends them, records what happened.

    async with OutboxWorker(service, provider):
        ...  # texts go out while the block runs

A text is a row before any network call (:meth:`SmsService.enqueue`). The worker
leases due rows (``queued → sending``, held by this worker's id until the lease
expires) in one transaction, sends each through the provider, and stores the
provider's sid as soon as the create call returns. Its rounds run as a supervised
loop (:mod:`gateway.supervise`): a store error (locked, full) is logged once, the
loop backs off and goes on, and ``/health`` shows ``sms-outbox`` degraded meanwhile.

Exactly once, and how:

* **Retry only what certainly did not land** right away: a 429 (honouring
  ``Retry-After``) or a refused connection. A 5xx, a timeout or a dropped connection
  may have reached Twilio, which has no idempotency key; such a row is marked
  ``needs_lookup`` and retried no sooner than ``sms.lookup_delay``.
* **Look up before re-sending.** A row marked ``needs_lookup``, and every row whose
  lease expired with no sid (its worker died or stalled between the send and the
  commit), is first looked up: the provider's newest messages to that number
  (``GET Messages.json?To=…``, newest first, paged back to the row's *first*
  attempt, minus a minute of clock skew, so any gap is covered) are matched on the
  body, and the oldest one no other row holds becomes this row's sid, chosen and
  written in one transaction (the sid is unique in SQL). Only if none is free is
  the text sent. Listing by ``DateSent`` was not used: a message still queued at
  the provider has no send date and would be missed.
* **Leases, not claims for ever.** Another worker (another gateway on the same
  PostgreSQL database, ``gateway sms send --wait``, an overlapping restart) never takes
  a row this one holds; it waits for the lease to expire, and past it by the clock-skew
  margin when the lease is another gateway's (:mod:`gateway.cluster.skew`). The lease
  is renewed right before each provider call and outlasts the call's timeout. A worker
  that holds the store's lock (:mod:`gateway.store.lock`, SQLite) knows every other
  worker is dead and reclaims their rows at start; a gateway on PostgreSQL leases under
  its name (``[gateway] name``) and, holding that name (:mod:`gateway.cluster.leader`),
  reclaims at start the rows it leased before a restart, and no others.
* **Never on a permanent error** (invalid or unsubscribed number, bad credentials):
  the row fails with the provider's code.

Throughput without weaker guarantees: the worker holds leases on up to
``PREFETCH`` times its concurrency, claimed half of that at a time in one
transaction (a claimed row waits for a send slot, its lease renewed if half of it
is gone; at stop the rows not yet sent are put back); it checks the opt-out list
once per claim, and writes the sids of the sends that returned in one transaction
every ``RESULT_DELAY`` (group commit). A kill between a send and that write leaves
the row leased with its ``first_attempt_at``: once the lease ends (or at a restart
holding the store's lock) it is looked up, as above, not re-sent.

Texts to citizens found due inside quiet hours are put back until the morning
without counting an attempt; officers' orders go at any hour. Sends are paced per
sender by a token bucket (``sms.rate_per_second``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
from datetime import timedelta

from gateway.clock import clock_span, utc_iso
from gateway.cluster.leader import Leadership
from gateway.phone import mask
from gateway.sms.exceptions import (
    LookUpInconclusive,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from gateway.sms.policy import Backoff, TokenBucket, earliest_send
from gateway.sms.provider import ProviderMessage, SmsProvider
from gateway.sms.service import OPTED_OUT_CODE, SmsService
from gateway.store.db import is_store_failure
from gateway.store.lock import held_here
from gateway.store.sms import Accepted, OutboxMessage
from gateway.supervise import Supervisor

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=1)
# A lease outlasts the longest provider call made under it (renewed before each).
MIN_LEASE = timedelta(minutes=1)
# Rows leased per send slot: claims come in batches of half of them.
PREFETCH = 4
# How long the sids of sends that returned gather before one transaction writes them.
RESULT_DELAY = 0.02
# How often those sids are written again while the store fails (for half a lease at most).
RESULT_RETRY = 0.5
# Texts to one number a look-up lists back to a row's first attempt (100 a page);
# more, and it cannot tell whether the text is among them.
LOOKUP_LIMIT = 5000


def worker_id() -> str:
    """A name no other outbox worker, here or on another host, will ever have."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class OutboxWorker:
    def __init__(
        self,
        service: SmsService,
        provider: SmsProvider,
        *,
        rng: random.Random | None = None,
        owner: str | None = None,
        exclusive: bool | None = None,
        cluster: Leadership | None = None,
    ) -> None:
        """``exclusive``: this worker is the only live one on the store (default:
        whether this process holds the store's lock). ``cluster``: this gateway among
        those on the database: its name owns the leases (else a name of this worker's
        own), its clock decides whether to claim and how long to leave others' leases."""
        self.service = service
        self.provider = provider
        self.repo = service.repo
        self.clock = service.clock
        config = service.config
        self.cluster = cluster
        self.owner = owner or (cluster.name if cluster is not None else worker_id())
        self.exclusive = exclusive
        self.concurrency = max(1, config.workers)
        self.max_attempts = max(1, config.max_attempts)
        self.lookup_delay = config.lookup_delay
        self.poll_interval = config.poll_interval
        # The lease bounds provider calls, which take real time: on a clock that runs
        # faster (the demo's) it is longer in the clock's time, or it would end mid-batch.
        self.lease_real = max(MIN_LEASE, timedelta(seconds=4 * config.http_timeout))
        self.lease = clock_span(self.clock, self.lease_real)
        self.lookup_limit = LOOKUP_LIMIT
        self.backoff = Backoff(config.backoff_min, config.backoff_max)
        self.rate = config.rate_per_second
        self.status_refresh = config.status_refresh
        self.supervisor = Supervisor(
            "sms",
            backoff_min=config.backoff_min,
            backoff_max=max(config.backoff_min, min(config.backoff_max, 30.0)),
        )
        self._next_refresh = 0.0
        self._rng = rng or random.Random()
        self._buckets: dict[str, TokenBucket] = {}
        self._stopping = False
        self._started = False
        self._pause = 0.0
        self._inflight = 0  # claimed rows this worker is working on (sending or waiting)
        self._slots = asyncio.Semaphore(self.concurrency)  # provider calls at once
        self._held_max = PREFETCH * self.concurrency
        self._results: list[tuple[Accepted, asyncio.Future[bool]]] = []
        self._recorder: asyncio.Task[None] | None = None
        self.result_delay = RESULT_DELAY
        self._idle = asyncio.Event()
        self._idle.set()
        self.sent = 0  # texts accepted by the provider in this worker's life
        self.refreshed = 0  # statuses looked up because their callbacks seemed lost
        self.reconciled = 0  # texts found at the provider instead of re-sent

    async def __aenter__(self) -> OutboxWorker:
        self.supervisor.loop(
            "outbox", self.run_once, every=lambda: self._pause, wake=self.service.wakeup
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop claiming; texts in flight finish (bounded by the HTTP timeout), then
        the loop and any send still running are cancelled and awaited."""
        self._stopping = True
        self.service.wakeup.set()
        try:
            async with asyncio.timeout(self.service.config.http_timeout + 1.0):
                await self._idle.wait()
        except TimeoutError:
            log.warning("outbox: %d text(s) still in flight at stop", self._inflight)
        await self.supervisor.aclose()

    def check(self) -> None:
        """Raise if the outbox loop is failing now (for ``/health``)."""
        self.supervisor.check()

    async def run_once(self) -> None:
        """One round: lease what is due (up to the free slots), refresh stale statuses,
        and work out how long to wait before the next round."""
        if self._stopping:
            self._pause = 3600.0
            return
        if not self._started:
            await self._reclaim_at_start()
            self._started = True
        margin = self.cluster.skew.margin if self.cluster is not None else timedelta(0)
        if self.cluster is not None and not self.cluster.skew.ok:
            # The clock is off the database's (logged, /health shows it): a lease written
            # by it could be taken early, or another's taken early by it. Claim nothing.
            self._pause = self.poll_interval
            return
        # Claimed rows wait for a send slot: claiming a batch at a time (when half of
        # what may be held is free) keeps the slots busy with few claim transactions.
        while (free := self._held_max - self._inflight) >= self._held_max // 2:
            claimed = await self.repo.claim_due(
                free, owner=self.owner, lease=self.lease, others_after=margin
            )
            opted_out = await self.repo.opted_out_among(
                {m.to for m in claimed if m.audience == "citizen"}
            )
            for message in claimed:
                self._inflight += 1
                self._idle.clear()
                self.supervisor.spawn(
                    f"sms-{message.id}", self._process(message, message.to in opted_out)
                )
            if len(claimed) < free:
                break
        await self._refresh_if_due()
        self._pause = self.poll_interval
        if self._held_max - self._inflight >= self._held_max // 2:
            due = await self.repo.next_due(self.owner, margin)
            if due is not None:
                wait = (due - self.clock.now()).total_seconds()
                self._pause = max(0.001, min(self._pause, wait))

    async def _reclaim_at_start(self) -> None:
        if self.exclusive is None and self.cluster is not None and self.cluster.shared:
            if not self.cluster.holds_name:
                return  # another live gateway has this name: its rows are not ours
            mine = await self.repo.reclaim_interrupted(
                self.owner, timedelta(seconds=self.lookup_delay), only_own=True
            )
            if mine:
                log.warning("%d text(s) of this gateway were mid-send at its last stop", mine)
            return
        exclusive = self.exclusive
        if exclusive is None:
            exclusive = held_here(self.repo.store_path)
        if not exclusive:
            return  # other workers may be alive: their rows come back when leases expire
        interrupted = await self.repo.reclaim_interrupted(
            self.owner, timedelta(seconds=self.lookup_delay)
        )
        if interrupted:
            log.warning("%d text(s) were mid-send at the last stop: looking them up", interrupted)

    async def _refresh_if_due(self) -> None:
        """Fetch texts whose callbacks seem lost, at most every ``status_refresh / 4`` s;
        with several gateways on the database, only on the leader (the rows are
        everyone's: one look-up each is enough), and on an outbox-only process (``sms
        run``), which never leads and may be the only one there."""
        now = asyncio.get_running_loop().time()
        if now < self._next_refresh:
            return
        if self.cluster is not None and self.cluster.candidate and not self.cluster.leading:
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
            self.refreshed += 1
            code = str(found.error_code) if found.error_code else None
            update = await self.repo.apply_status(found.sid, found.status, code, "refreshed")
            if not update.applied:
                await self.repo.touch(message.id)

    async def _process(self, message: OutboxMessage, opted_out: bool) -> None:
        try:
            await self._attempt(message, opted_out)
        except Exception as exc:
            # A store failure: the row keeps this worker's lease; once it expires the
            # row is claimed again, and looked up before any re-send.
            log.warning(
                "text #%d: could not record the attempt (%s: %s); looked up when its lease ends",
                message.id,
                type(exc).__name__,
                exc,
            )
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()
            self.service.wakeup.set()  # a slot is free

    async def _still_held(self, message: OutboxMessage) -> bool:
        """Whether this worker may call the provider for ``message``: its lease has more
        than half its length left (a fresh claim: no write needed), or renews."""
        left = message.lease_until - self.clock.now() if message.lease_until else None
        if left is not None and left > self.lease / 2:
            return True
        if await self.repo.renew(message.id, self.owner, self.lease):
            return True
        log.warning("text #%d: lease lost before a provider call; left to its holder", message.id)
        return False

    async def _attempt(self, message: OutboxMessage, opted_out: bool) -> None:
        """``opted_out``: the number was on the opt-out list when the row was claimed."""
        now = self.clock.now()
        if message.audience == "citizen":
            release = self.service.quiet.release_time(now)
            if release > now:
                await self.repo.hold(message.id, release, "quiet hours: held until morning")
                return
            if opted_out:
                await self.repo.record_failed(
                    message.id, code=OPTED_OUT_CODE, reason="recipient opted out before sending"
                )
                return
        async with self._slots:
            if self._stopping:
                await self.repo.hold(message.id, now, "worker stopped before sending it")
                return
            result = await self._send(message)
        if result is None:
            return
        self.sent += 1
        if not await self._record(Accepted(message.id, result.sid, result.status)):
            # An identical text's look-up took this message as its own first: this
            # row's text still has to go. Send again (after a look-up for a free one).
            reason = f"provider message {result.sid} was taken by an identical text in doubt"
            log.info("text #%d: %s; sending again", message.id, reason)
            await self.repo.record_retry(
                message.id, self.clock.now(), code=None, reason=reason, needs_lookup=True
            )
            self.service.wakeup.set()

    async def _send(self, message: OutboxMessage) -> ProviderMessage | None:
        """Look up (if in doubt) and send ``message``; the provider's answer, or None
        when the text is settled otherwise (found, refused, retried, lease lost)."""
        try:
            if message.needs_lookup:
                if not await self._still_held(message):
                    return None
                if await self._look_up(message):
                    return None
            await self._pace(message.sender)
            if not await self._still_held(message):
                return None
            return await self.provider.send(
                message.to, message.body, self.service.status_callback_url
            )
        except PermanentProviderError as exc:
            log.warning("text #%d to %s refused: %s", message.id, mask(message.to), exc)
            code = str(exc.code) if exc.code is not None else None
            await self.repo.record_failed(message.id, code=code, reason=str(exc))
        except TransientProviderError as exc:
            await self._retry(message, exc, exc.retry_after, exc.ambiguous)
        except ProviderError as exc:
            await self._retry(message, exc, None, True)
        return None

    async def _record(self, accepted: Accepted) -> bool:
        """Write the provider's sid with those of other sends that returned meanwhile
        (one transaction); whether the row took it. Until then the row keeps this
        worker's lease, so a kill before the write leaves it to a look-up."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._results.append((accepted, future))
        if self._recorder is None or self._recorder.done():
            self._recorder = self.supervisor.spawn("sms-results", self._record_results())
        return await future

    async def _record_results(self) -> None:
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        while self._results:
            await asyncio.sleep(self.result_delay if failing_since is None else RESULT_RETRY)
            batch, self._results = self._results, []
            try:
                taken = await self.repo.record_accepted_many([a for a, _ in batch])
            except Exception as exc:
                failing_since = failing_since or loop.time()
                patience = self.lease_real.total_seconds() / 2
                if is_store_failure(exc) and loop.time() - failing_since < patience:
                    # The store is away a moment (PostgreSQL restarting, a busy file): keep
                    # the provider's sids and write them when it is back, not look them up.
                    self._results[:0] = batch
                    continue
                failing_since = None
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            failing_since = None
            for accepted, future in batch:
                if not future.done():  # its task may have been cancelled at stop
                    future.set_result(accepted.message_id in taken)

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

    async def _look_up(self, message: OutboxMessage) -> bool:
        """Whether the provider already holds this text (now recorded as this row's)."""
        first = message.first_attempt_at or message.claimed_at or message.created_at
        listed = await self.provider.recent_to(message.to, first - CLOCK_SKEW, self.lookup_limit)
        if len(listed) >= self.lookup_limit:
            raise LookUpInconclusive(
                f"look-up inconclusive: {len(listed)}+ texts to this number since the first"
                f" attempt at {utc_iso(first)}; not sent again (it may be missing: check at"
                f" the provider)"
            )
        found: list[ProviderMessage] = [m for m in listed if m.body == message.body]
        found.reverse()  # oldest first: the first attempt that landed
        sid = await self.repo.adopt(message.id, [(m.sid, m.status) for m in found])
        if sid is None:
            return False
        self.reconciled += 1
        log.info("text #%d found at the provider as %s: not re-sent", message.id, sid)
        return True

    async def _pace(self, sender: str) -> None:
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = self._buckets[sender] = TokenBucket(self.rate)
        delay = bucket.reserve(asyncio.get_running_loop().time())
        if delay > 0:
            await asyncio.sleep(delay)
