"""The callback service: served items in, survey calls out, ratings, rectification orders.

It owns the state machine of a served item and of a rectification order; the
store keeps the state, the policy (``gateway.callbacks.policy``) decides, and
two ports reach the outside: a :class:`Dialer` (AMI Originate) and a
:class:`Texter` (the SMS outbox). Every step is written to the store before the
outside is touched, so a restart resumes without calling or texting twice.

Item states: pending → calling → (rated | pending for a retry | sms → rated or
unreachable). A dissatisfied rating opens an order at level 1; the chief's
report moves the item to a new round (pending again); the next rating closes
the order (1, 2) or climbs it a level (3), as does a missed deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

import aiosqlite

from gateway.callbacks.catalogue import Catalogue, UnknownCode
from gateway.callbacks.ladder import Ladder
from gateway.callbacks.policy import (
    LEVEL_NAMES,
    CallingWindows,
    CallOutcome,
    after_unanswered,
    next_level,
    parse_hours_per_level,
    parse_rating_reply,
    parse_rectification_reply,
    parse_windows,
)
from gateway.clock import Clock, clock_span, utc_iso
from gateway.config import CallbacksSection
from gateway.errors import GatewayError
from gateway.limits import MAX_NAME, MAX_REFERENCE, BadText, check_name, check_reference
from gateway.phone import InvalidPhoneNumber, Use, mask, to_e164
from gateway.store import Store
from gateway.store.callbacks import Attempt, LostRace, Order, Rating, ServedItem
from gateway.store.units import HEAD_ROLES, Officer

log = logging.getLogger(__name__)

REASONS = {
    "attitude": "服务态度差",
    "slow": "办事拖拉",
    "unfair": "处理结果不公",
    "unsolved": "问题未解决",
    "other": "其他原因",
}


# An answered callback whose survey has not begun this long after is given up
# ("answered, no rating"); a survey lasting longer than the second bound is over.
SURVEY_START_SECONDS = 60.0
MAX_SURVEY_SECONDS = 600.0
# How often a gateway waiting for a survey another gateway runs asks the store about it.
SURVEY_RECHECK_SECONDS = 2.0
# A call attempt's end and its item's next step are two writes a moment apart (a held
# write lock stretches that to the store's lock timeout). An item still ``calling`` this
# long after its last call ended was left there by a stop or a failed write, and is
# moved on by the calls round. Moving it on twice is harmless (each move expects
# ``calling``, a text goes once by its key): the wait only spares duplicate work.
STRANDED_AFTER = timedelta(seconds=30)  # of real time
# How far back the order round looks for ratings never acted on (a stop between the two):
# a gateway down longer than this leaves the older ones to an operator.
RATINGS_LOOKBACK = timedelta(days=7)


class CallbackError(GatewayError):
    """A served item or a report was refused; the message says why."""


class InvalidServedItem(CallbackError):
    def __init__(self, reference: str, field: str, reason: str) -> None:
        super().__init__(f"served item {reference!r}: {field}: {reason}")
        self.reference = reference
        self.field = field
        self.reason = reason


class UnknownOrder(CallbackError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"no rectification order {ref!r}")
        self.ref = ref


class NotAuthorized(CallbackError):
    """Only the chief (or a deputy) of the unit holding an order may report it done."""

    def __init__(self, ref: str, actor: str, why: str) -> None:
        super().__init__(f"{actor} may not report order {ref}: {why}")
        self.ref = ref
        self.actor = actor
        self.why = why


@dataclass(frozen=True)
class DialResult:
    outcome: CallOutcome
    uniqueid: str | None = None
    action_id: str | None = None


class Dialer(Protocol):
    """Places callbacks on the PBXs (``gateway.app.AmiDialer``)."""

    @property
    def lines(self) -> Mapping[str, int]:
        """Each PBX's trunk lines for callbacks, by name, in the configured order."""
        ...

    def connected(self, pbx: str) -> bool:
        """Whether the link to ``pbx`` is up now (it gets no claims while it is not)."""
        ...

    async def call(
        self,
        pbx: str,
        number: str,
        variables: Mapping[str, str],
        timeout_s: float,
        action_id: str,
    ) -> DialResult:
        """Place the call on ``pbx`` as the Originate ``action_id``;
        :class:`~gateway.pbx.exceptions.AmiNotConnected` if it could not even be sent
        (nothing rang)."""
        ...


class Texter(Protocol):
    """The SMS outbox (``gateway.sms.service.SmsService``): stores a text to send."""

    async def enqueue(
        self,
        *,
        to: str,
        template: str,
        variables: Mapping[str, object],
        idempotency_key: str,
        purpose: str | None = None,
        audience: str | None = None,
        conn: aiosqlite.Connection | None = None,
    ) -> object: ...


@dataclass(frozen=True)
class ServedItemInput:
    """One served item as a police system reports it (all strings, as received)."""

    reference: str
    kind: str
    unit: str
    citizen_number: str
    served_at: str  # ISO 8601; local time if it has no offset
    citizen_name: str = ""
    officer: str = ""


@dataclass(frozen=True)
class CheckedItem:
    """A served item that passed :meth:`CallbackService.check`, ready to store."""

    reference: str
    kind_code: str
    unit_id: int
    officer_code: str | None
    citizen_number: str  # E.164
    citizen_name: str | None
    served_at: datetime
    due_at: datetime | None


# How far ahead of our clock a reporting system's clock may run.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class SurveyContext:
    """What the survey flow says to the citizen and where it records the answer."""

    item_id: int
    attempt_id: int
    unit_code: str
    unit_name: str
    kind_code: str
    kind_name: str
    served_on: date  # local date
    round: int


def _weekday(iso: int) -> int:
    """An ISO weekday (1 = Monday, as in the configuration) as ``date.weekday()`` counts."""
    if not 1 <= iso <= 7:
        raise CallbackError(f"callbacks.excluded_weekdays: {iso} is not 1 (Monday) … 7 (Sunday)")
    return iso - 1


class CallbackService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        catalogue: Catalogue,
        settings: CallbacksSection,
        texter: Texter,
        *,
        owner: str | None = None,
        others_after: timedelta = timedelta(0),
    ) -> None:
        """``owner``: this gateway's name, on the attempts it places (None: the only
        gateway on the store); ``others_after``: how long past their ``up_until`` other
        gateways' calls are left to them (:mod:`gateway.cluster.skew`)."""
        self.owner = owner
        self.others_after = others_after
        self.store = store
        self.clock = clock
        self.catalogue = catalogue
        self.settings = settings
        self.texter = texter
        self.windows = CallingWindows(
            parse_windows(settings.windows),
            excluded_weekdays=frozenset(_weekday(d) for d in settings.excluded_weekdays),
            excluded_dates=frozenset(date.fromisoformat(d) for d in settings.excluded_dates),
        )
        self.deadline_hours = parse_hours_per_level(settings.order_deadline_hours)
        self.ladder = Ladder(store.units, settings)
        # Survey calls in progress, by attempt id: set when the survey flow ends.
        self._surveys: dict[int, asyncio.Event] = {}
        # (order, level) the sweeper could not text yet: its retries log quietly.
        self._unsent: set[tuple[int, int]] = set()

    # -- served items in ----------------------------------------------------

    async def serve(self, data: ServedItemInput, *, source: str = "api") -> ServedItem:
        """Validate and store one served item; its first callback is scheduled."""
        return await self.add(await self.check(data), source=source)

    async def check(self, data: ServedItemInput) -> CheckedItem:
        """Validate one served item without writing anything (:class:`InvalidServedItem`).

        A batch or an import checks every item first, so a bad one never leaves the
        batch half-written. Limits: :mod:`gateway.limits`; ``served_at`` within the
        last ``callbacks.served_max_age_days`` and at most :data:`CLOCK_SKEW` ahead."""
        try:
            ref = check_reference(data.reference)
            citizen_name = check_name(data.citizen_name, "citizen_name")
            officer = check_name(data.officer, "officer")
        except BadText as exc:
            raise InvalidServedItem(data.reference[:MAX_REFERENCE], exc.field, exc.reason) from None
        try:
            kind = self.catalogue.kind(data.kind.strip())
        except UnknownCode as exc:
            raise InvalidServedItem(ref, "kind", str(exc)) from None
        unit = await self.store.units.unit_by_code(data.unit.strip()[:MAX_NAME])
        if unit is None:
            raise InvalidServedItem(ref, "unit", f"no unit with code {data.unit[:MAX_NAME]!r}")
        try:
            number = to_e164(data.citizen_number, use=Use.CALL)
        except InvalidPhoneNumber as exc:
            raise InvalidServedItem(ref, "citizen_number", exc.reason) from None
        served_at = self._served_at(ref, data.served_at)
        due = None
        if kind.callback:
            due = self._in_window(max(served_at + kind.callback_delay, self.clock.now()))
        return CheckedItem(
            reference=ref,
            kind_code=kind.code,
            unit_id=unit.id,
            officer_code=officer or None,
            citizen_number=number,
            citizen_name=citizen_name or None,
            served_at=served_at,
            due_at=due,
        )

    def _served_at(self, ref: str, text: str) -> datetime:
        """The time of service, within the plausible range."""
        shown = text.strip()[:40]
        try:
            served_at = datetime.fromisoformat(text.strip())
            if served_at.tzinfo is None:
                served_at = served_at.replace(tzinfo=self.clock.tz)
            now = self.clock.now()
            oldest = now - timedelta(days=self.settings.served_max_age_days)
            too_old = served_at < oldest
            too_new = served_at > now + CLOCK_SKEW
        except (ValueError, OverflowError):
            raise InvalidServedItem(
                ref, "served_at", f"{shown!r} is not an ISO 8601 time"
            ) from None
        if too_new:
            raise InvalidServedItem(ref, "served_at", f"{shown!r} is in the future")
        if too_old:
            days = self.settings.served_max_age_days
            raise InvalidServedItem(
                ref,
                "served_at",
                f"{shown!r} is more than {days} days ago (callbacks.served_max_age_days)",
            )
        return served_at

    async def add(self, item: CheckedItem, *, source: str = "api") -> ServedItem:
        """Store a checked served item (:class:`DuplicateReference` if already reported)."""
        return await self.store.callbacks.add_item(
            reference=item.reference,
            kind_code=item.kind_code,
            unit_id=item.unit_id,
            officer_code=item.officer_code,
            citizen_number=item.citizen_number,
            citizen_name=item.citizen_name,
            served_at=item.served_at,
            due_at=item.due_at,
            source=source,
        )

    async def add_many(
        self, items: Sequence[CheckedItem], *, source: str = "api"
    ) -> list[ServedItem | None]:
        """Store checked items in one transaction; None answers a reference already reported."""
        return await self.store.callbacks.add_items(items, source=source)

    def _in_window(self, when: datetime) -> datetime:
        return self.windows.next_open(self.clock.local(when))

    # -- calls ----------------------------------------------------------------

    def _call_bound(self) -> timedelta:
        """How long after it was placed a callback may still be up at most."""
        return timedelta(
            seconds=self.settings.ring_timeout_seconds + SURVEY_START_SECONDS + MAX_SURVEY_SECONDS
        )

    def unanswered_until(self) -> datetime:
        """The latest a call sent by now can still be up if nobody saw it answered: it
        rings at most the ring timeout, and an answered call starts its survey (which
        marks it answered) within ``SURVEY_START_SECONDS``."""
        return self.clock.now() + timedelta(
            seconds=self.settings.ring_timeout_seconds + SURVEY_START_SECONDS
        )

    async def claim_calls(self, lines: int, pbx: str) -> list[tuple[ServedItem, int]]:
        """Due items to call now on the one PBX ``pbx`` of ``lines`` trunk lines, each with
        its attempt row's id (see :meth:`claim_spread`)."""
        return [(item, attempt.id) for item, attempt in await self.claim_spread({pbx: lines})]

    async def claim_spread(self, lines: Mapping[str, int]) -> list[tuple[ServedItem, Attempt]]:
        """Due items to call now (inside a window), spread over the PBXs of ``lines``
        (those whose link is up, with their trunk lines): each attempt names the PBX with
        the most free lines, counted in the store over every gateway."""
        now = self.clock.now()
        if not lines or not self.windows.is_open(self.clock.local(now)):
            return []
        return await self.store.callbacks.claim_due(
            now,
            lines,
            now + self._call_bound(),
            owner=self.owner,
            others_after=self.others_after,
        )

    async def release_claim(self, item: ServedItem, attempt_id: int) -> None:
        """The call could not be sent (no PBX link): the claim is undone, not counted."""
        await self.store.callbacks.release_claim(item.id, attempt_id, self.clock.now())

    def call_variables(self, item: ServedItem, attempt_id: int) -> dict[str, str]:
        """Channel variables that bring the answered call back to its item."""
        return {"GW_ITEM": str(item.id), "GW_ATTEMPT": str(attempt_id)}

    async def call_finished(self, item: ServedItem, attempt_id: int, result: DialResult) -> bool:
        """Record an Originate outcome; an unanswered call is retried or falls back to SMS.

        Returns True when the call is answered and its survey is still to come or under
        way. A lost outcome (``unknown``) leaves the item ``calling`` until the call is
        settled; an outcome that arrives after the survey has begun or ended changes
        nothing (the survey knows better)."""
        callbacks = self.store.callbacks
        if result.outcome is CallOutcome.ANSWERED:
            up_until = self.clock.now() + timedelta(
                seconds=SURVEY_START_SECONDS + MAX_SURVEY_SECONDS
            )
            answered = await callbacks.attempt_answered(
                attempt_id, action_id=result.action_id, uniqueid=result.uniqueid, up_until=up_until
            )
            if answered:
                self._surveys.setdefault(attempt_id, asyncio.Event())
            return answered  # the survey flow reports the rest through survey_ended()
        if result.outcome is CallOutcome.UNKNOWN:
            await callbacks.attempt_unknown(
                attempt_id, self.unanswered_until(), action_id=result.action_id
            )
            log.warning(
                "item %s: the outcome of call attempt %d was lost; %s is not called again"
                " until that call is over",
                item.reference,
                attempt_id,
                mask(item.citizen_number),
            )
            return False
        if await callbacks.attempt_not_reached(
            attempt_id, result.outcome.value, action_id=result.action_id, uniqueid=result.uniqueid
        ):
            await self._not_reached(item, result.outcome)
        else:
            log.info(
                "item %s: call attempt %d already moved on; outcome %s not applied",
                item.reference,
                attempt_id,
                result.outcome.value,
            )
        return False

    async def settle_calls(self) -> int:
        """Answered calls whose survey never began within its bound (or never ended)
        end as ``no_rating``; lost outcomes end ``unknown`` once the call log shows
        the call over or it can no longer be up. Each item moves on as after a call
        that did not reach the citizen."""
        now = self.clock.now()
        callbacks = self.store.callbacks
        unstarted = await callbacks.expire_unstarted_surveys(
            now - timedelta(seconds=SURVEY_START_SECONDS),
            owner=self.owner,
            others_after=self.others_after,
        )
        lapsed = await callbacks.settle_lapsed(
            now, owner=self.owner, others_after=self.others_after
        )
        for attempt in unstarted:
            log.warning("callback attempt %d: answered, but no survey began or ended", attempt.id)
        for attempt, outcome in [
            *((a, CallOutcome.NO_ANSWER) for a in unstarted),
            *((a, CallOutcome.UNKNOWN) for a in lapsed),
        ]:
            self._end_wait(attempt.id)
            item = await callbacks.item(attempt.item_id)
            if item is not None and item.status == "calling":
                await self._move_on(item, outcome)
        return len(unstarted) + len(lapsed)

    async def move_stranded(self, after: timedelta = STRANDED_AFTER) -> int:
        """Move on the items left ``calling`` whose calls all ended ``after`` (real time) ago or
        more (:meth:`~gateway.store.callbacks.CallbackRepository.stranded_items`), as their
        last call's end would have: rated if their round was rated, else retried, asked
        by text or unreachable. Returns how many."""
        stranded = await self.store.callbacks.stranded_items(
            self.clock.now() - clock_span(self.clock, after)
        )
        for item, last in stranded:
            log.warning(
                "item %s: still calling after its last call ended (%s); moved on",
                item.reference,
                last or "no call",
            )
            known = last in {o.value for o in CallOutcome}
            await self._move_on(item, CallOutcome(last) if known else CallOutcome.NO_ANSWER)
        return len(stranded)

    async def _move_on(self, item: ServedItem, outcome: CallOutcome) -> None:
        """A call of ``item``'s ended without moving it on: rated if its round was rated
        (a stop between storing the rating and moving the item; :meth:`act_on_ratings`
        then acts on it), else as after a call that did not reach the citizen."""
        if await self.store.callbacks.rating(item.id, item.round) is not None:
            await self.store.callbacks.move_item(
                item.id, "rated", expect=("calling",), attempts=item.attempts
            )
        else:
            await self._not_reached(item, outcome)

    async def act_on_ratings(self) -> int:
        """Act on the ratings whose call or text ended ``STRANDED_AFTER`` ago or more
        without it, over the last ``RATINGS_LOOKBACK``: open the dissatisfied answer's
        order, apply the recall's answer to its order. Returns how many."""
        now = self.clock.now()
        callbacks = self.store.callbacks
        found = await callbacks.unacted_ratings(
            now - RATINGS_LOOKBACK, now - clock_span(self.clock, STRANDED_AFTER)
        )
        for item_id, round_ in found:
            item = await callbacks.item(item_id)
            rating = await callbacks.rating(item_id, round_)
            assert item is not None and rating is not None  # found joined on both
            log.warning(
                "item %s: its round %d rating was never acted on (a stop); acting now",
                item.reference,
                round_,
            )
            await self._after_rating(item, rating)
        return len(found)

    async def _not_reached(self, item: ServedItem, outcome: CallOutcome) -> None:
        now = self.clock.now()
        step = after_unanswered(
            outcome,
            item.attempts,
            self.settings.max_attempts,
            timedelta(minutes=self.settings.retry_spacing_minutes),
            now,
            sms_fallback=self.settings.sms_fallback,
        )
        if step.action == "retry" and step.at is not None:
            await self.store.callbacks.move_item(
                item.id,
                "pending",
                expect=("calling",),
                attempts=item.attempts,
                next_attempt_at=self._in_window(step.at),
            )
        elif step.action == "sms":
            await self._request_rating_by_sms(item)
        elif await self.store.callbacks.move_item(
            item.id, "unreachable", expect=("calling",), attempts=item.attempts
        ):
            log.info(
                "item %s: %s unreachable after %d calls",
                item.reference,
                mask(item.citizen_number),
                item.attempts,
            )

    async def _request_rating_by_sms(self, item: ServedItem) -> None:
        # The text is queued first: its idempotency key makes a repeat after a crash
        # harmless, while an item marked "sms" with no text queued would wait in vain.
        unit = await self.store.units.unit(item.unit_id)
        try:
            await self._text_rating_request(item, unit.text_name if unit else "")
        except InvalidPhoneNumber as exc:
            await self.store.callbacks.move_item(
                item.id, "unreachable", expect=("calling",), attempts=item.attempts
            )
            log.info("item %s: no rating request by text: %s", item.reference, exc.reason)
            return
        expires = self.clock.now() + timedelta(hours=self.settings.sms_valid_hours)
        await self.store.callbacks.add_sms_attempt(item.id, item.round)
        await self.store.callbacks.move_item(
            item.id, "sms", expect=("calling",), attempts=item.attempts, sms_expires_at=expires
        )

    async def _text_rating_request(self, item: ServedItem, unit_name: str) -> None:
        await self.texter.enqueue(
            purpose="rating_request",
            to=item.citizen_number,
            template="rating_request",
            variables={
                "unit": unit_name,
                "business": self.catalogue.kind(item.kind_code).name,
            },
            idempotency_key=f"rating:{item.id}:round:{item.round}",
        )

    # -- the survey flow ------------------------------------------------------

    async def survey_context(self, item_id: int, attempt_id: int) -> SurveyContext:
        """The survey of this attempt's call begins (written to the store, so the
        bounded wait for it to start holds across a restart): what it says."""
        item = await self.store.callbacks.item(item_id)
        attempt = await self.store.callbacks.attempt(attempt_id)
        if item is None or attempt is None or attempt.item_id != item_id:
            raise CallbackError(f"no callback attempt {attempt_id} for item {item_id}")
        up_until = self.clock.now() + timedelta(seconds=MAX_SURVEY_SECONDS)
        if not await self.store.callbacks.survey_started(attempt_id, up_until):
            log.info(
                "item %s: survey of attempt %d begins after it was settled",
                item.reference,
                attempt_id,
            )
        unit = await self.store.units.unit(item.unit_id)
        kind = self.catalogue.kind(item.kind_code)
        return SurveyContext(
            item_id=item.id,
            attempt_id=attempt_id,
            unit_code=unit.code if unit else "",
            unit_name=unit.name if unit else "",
            kind_code=kind.code,
            kind_name=kind.name,
            served_on=self.clock.local(item.served_at).date(),
            round=item.round,
        )

    async def record_phone_rating(self, item_id: int, attempt_id: int, score: int) -> None:
        """The citizen pressed 1, 2 or 3. What follows (an order, a closing) waits for
        the end of the call, when the reason and the voice message are known too."""
        item = await self.store.callbacks.item(item_id)
        if item is None:
            raise CallbackError(f"no served item {item_id}")
        await self._rated(item, score, "phone", attempt_id)

    async def record_reason(self, item_id: int, reason: str | None, recording: str | None) -> None:
        """Why the citizen is dissatisfied, and the path of the voice message if any."""
        if reason is not None and reason not in REASONS:
            raise CallbackError(f"unknown reason {reason!r} (known: {', '.join(REASONS)})")
        item = await self.store.callbacks.item(item_id)
        if item is None:
            raise CallbackError(f"no served item {item_id}")
        await self.store.callbacks.set_rating_reason(item.id, item.round, reason, recording)

    def _end_wait(self, attempt_id: int) -> None:
        """Wake whoever waits for this attempt's survey to end (the scheduler's line)."""
        event = self._surveys.get(attempt_id)
        if event is not None:
            event.set()

    async def wait_survey(self, attempt_id: int, max_seconds: float) -> None:
        """Wait until the survey flow of an answered call has ended (or ``max_seconds``).

        The survey may run here (its end wakes this waiter) or on another gateway, the
        one the dialplan's FastAGI URL names: only the store tells of that one's end, so
        it is asked again every ``SURVEY_RECHECK_SECONDS``."""
        event = self._surveys.setdefault(attempt_id, asyncio.Event())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds
        try:
            while True:
                # The survey may have ended before this waiter existed: the store knows.
                attempt = await self.store.callbacks.attempt(attempt_id)
                if attempt is None or attempt.outcome not in ("placed", "answered"):
                    return
                left = deadline - loop.time()
                if left <= 0:
                    log.warning(
                        "callback attempt %d: no end of survey in %gs", attempt_id, max_seconds
                    )
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(left, SURVEY_RECHECK_SECONDS))
                    return
        finally:
            self._surveys.pop(attempt_id, None)

    async def survey_ended(self, item_id: int, attempt_id: int) -> None:
        """The survey call is over (completed or hung up). With a rating, act on it;
        without one it counts as an attempt that did not reach the citizen."""
        try:
            item = await self.store.callbacks.item(item_id)
            if item is None:
                raise CallbackError(f"no served item {item_id}")
            rating = await self.store.callbacks.rating(item.id, item.round)
            rated = rating is not None and rating.attempt_id == attempt_id
            ended = await self.store.callbacks.attempt_ended(attempt_id, rated)
            if rated and rating is not None:
                await self._after_rating(item, rating)
            elif ended and item.status == "calling":
                await self._not_reached(item, CallOutcome.NO_ANSWER)
        finally:
            self._end_wait(attempt_id)

    async def _rated(
        self, item: ServedItem, score: int, channel: str, attempt_id: int | None
    ) -> Rating | None:
        """Store the round's rating; None if the round was already rated."""
        rating, created = await self.store.callbacks.add_rating(
            item_id=item.id,
            round_=item.round,
            attempt_id=attempt_id,
            channel=channel,
            score=score,
        )
        if not created:
            log.info(
                "item %s round %d already rated; %s rating ignored",
                item.reference,
                item.round,
                channel,
            )
            return None
        await self.store.callbacks.move_item(item.id, "rated", expect=("calling", "pending", "sms"))
        return rating

    async def _after_rating(self, item: ServedItem, rating: Rating) -> None:
        order = await self.store.callbacks.order_for_item(item.id)
        if order is not None:
            await self._recalled(order, rating.score)
        elif rating.score == 3:
            await self._open_order(item, rating.id)

    # -- SMS replies ------------------------------------------------------------

    async def on_text(self, from_number: str, body: str, *, reply_key: str | None = None) -> bool:
        """An inbound text: a citizen's 1/2/3 or a chief's ``整改 <ref> <note>``.

        A report from anyone who may not report that order is refused, logged and
        answered by text (``reply_key``, the inbound text's own id, keeps that answer
        to one however often the reply is offered). Returns True when the text was
        one of ours to handle."""
        report = parse_rectification_reply(body)
        if report is not None:
            ref, note = report
            officer = await self._officer_by_mobile(from_number)
            try:
                if officer is None:
                    raise NotAuthorized(
                        ref, mask(from_number), "no officer on file has this number"
                    )
                await self.report_done(ref, note, actor=officer.code)
            except (NotAuthorized, UnknownOrder) as exc:
                log.warning("rectification report from %s refused: %s", mask(from_number), exc)
                await self._answer_refused_report(from_number, ref, exc, reply_key)
            return True
        score = parse_rating_reply(body)
        item = await self.store.callbacks.sms_item_for(from_number)
        if item is None:
            return False
        if item.sms_expires_at is not None and item.sms_expires_at <= self.clock.now():
            log.info("rating reply for %s arrived after its request expired", item.reference)
            return True
        if score is None:
            log.info("reply %r to rating request %s is not 1, 2 or 3", body[:20], item.reference)
            return True
        rating = await self._rated(item, score, "sms", None)
        if rating is not None:
            await self._after_rating(item, rating)
        return True

    async def _officer_by_mobile(self, number: str) -> Officer | None:
        for officer in await self.store.units.officers():
            if officer.mobile == number:
                return officer
        return None

    async def _answer_refused_report(
        self, number: str, ref: str, exc: CallbackError, reply_key: str | None
    ) -> None:
        if isinstance(exc, UnknownOrder):
            why = "未找到该整改单号，请核对后重发"
        else:
            why = "该整改单不由您负责，请由承办单位主要负责人回复"
        key = reply_key or f"{number}:{ref}:{utc_iso(self.clock.now())}"
        try:
            await self.texter.enqueue(
                purpose="rectification_order",
                to=number,
                template="report_refused",
                variables={"case_ref": ref[:20], "reason": why},
                idempotency_key=f"report-refused:{key}",
            )
        except (InvalidPhoneNumber, GatewayError) as err:
            log.warning("no answer to the refused report from %s: %s", mask(number), err)

    async def expire_sms_requests(self) -> int:
        """Rating requests nobody answered in time: the item is unreachable."""
        expired = await self.store.callbacks.expired_sms_items(self.clock.now())
        for item in expired:
            await self.store.callbacks.move_item(item.id, "unreachable")
        return len(expired)

    # -- rectification orders ------------------------------------------------
    #
    # An order's change and the texts it causes are written in one transaction, and
    # ``notified_level`` records which level was texted: if the texts could not be
    # queued, the sweeper (:meth:`notify_unnotified`) finds the order and tries again.
    # Every change is conditional on the (status, level) it was decided from; a change
    # that lost a race (LostRace) is logged and not applied.

    async def _open_order(self, item: ServedItem, rating_id: int) -> None:
        deadline = self.clock.now() + timedelta(hours=self.deadline_hours[0])
        async with self.store.callbacks.transaction() as conn:
            order, created = await self.store.callbacks.create_order(
                item_id=item.id, rating_id=rating_id, level=1, deadline_at=deadline, conn=conn
            )
            if created:
                await self._notify(conn, order, item)

    async def may_report(self, order: Order, actor: str) -> Officer:
        """The officer ``actor`` if they head a unit holding ``order`` at its level;
        else :class:`NotAuthorized`."""
        officer = next((o for o in await self.store.units.officers() if o.code == actor), None)
        if officer is None:
            raise NotAuthorized(order.ref, actor, "no officer with this code on file")
        item = await self.store.callbacks.item(order.item_id)
        assert item is not None
        holders = await self._holding_units(item, order.level)
        if officer.unit_id not in holders or officer.role not in HEAD_ROLES:
            raise NotAuthorized(
                order.ref,
                actor,
                f"not the chief or a deputy of the unit holding it at level {order.level}",
            )
        return officer

    async def report_done(self, ref: str, note: str, *, actor: str) -> Order:
        """The unit reports the rectification done: the citizen is called again.

        Only the chief or a deputy of the unit that holds the order at its current
        level may; anyone else gets :class:`NotAuthorized` (and it is logged)."""
        for _ in range(2):  # once more if the order moved on between reading and writing
            order = await self.store.callbacks.order_by_ref(ref.strip().upper())
            if order is None:
                raise UnknownOrder(ref)
            try:
                await self.may_report(order, actor)
            except NotAuthorized as exc:
                log.warning("order %s: report refused: %s", order.ref, exc)
                raise
            if order.status != "open":
                log.info("order %s is %s; report from %s recorded only", ref, order.status, actor)
                await self.store.callbacks.add_order_event(
                    order.id, order.level, "reported_again", actor, note
                )
                return order
            due = self._in_window(
                self.clock.now() + timedelta(hours=self.settings.recall_delay_hours)
            )
            try:
                async with self.store.callbacks.transaction() as conn:
                    reported = await self.store.callbacks.update_order(
                        order.id,
                        action="reported",
                        expect=("open", order.level),
                        actor=actor,
                        note=note,
                        status="reported",
                        reported=True,
                        conn=conn,
                    )
                    await self.store.callbacks.move_item(
                        order.item_id, "pending", next_attempt_at=due, new_round=True, conn=conn
                    )
                return reported
            except LostRace as exc:
                log.info("order %s: %s; reading it again", order.ref, exc)
        raise CallbackError(f"order {ref} kept changing while it was reported; try again")

    async def _recalled(self, order: Order, score: int) -> None:
        """A later callback's answer on an item with an order."""
        try:
            if score in (1, 2):
                await self.store.callbacks.update_order(
                    order.id,
                    action="closed",
                    expect=(order.status, order.level),
                    actor="citizen",
                    note=f"回访评价：{'满意' if score == 1 else '基本满意'}",
                    status="closed",
                    closed=True,
                )
                return
            await self.escalate(order, "群众仍不满意")
        except LostRace as exc:
            log.warning("order %s: citizen's answer not applied: %s", order.ref, exc)

    async def escalate_overdue(self) -> int:
        """Open orders past their deadline climb one level (unless reported meanwhile)."""
        overdue = await self.store.callbacks.overdue_orders(self.clock.now())
        done = 0
        for order in overdue:
            try:
                await self.escalate(order, "逾期未整改")
                done += 1
            except LostRace as exc:
                log.info("order %s: escalation not applied: %s", order.ref, exc)
        return done

    async def escalate(self, order: Order, why: str) -> None:
        """Climb ``order`` one level from the (status, level) it was read in; LostRace
        if it changed meanwhile (a report landed first: it stays reported)."""
        level = next_level(order.level)
        if level is None:
            # Already at the top, and each level is texted once per order: the order
            # stays open with a new deadline and the event is on its record.
            deadline = self.clock.now() + timedelta(hours=self.deadline_hours[-1])
            await self.store.callbacks.update_order(
                order.id,
                action="overdue_at_top",
                expect=(order.status, order.level),
                actor="system",
                note=why,
                status="open",
                deadline_at=deadline,
            )
            log.warning("order %s is still unresolved at the top level: %s", order.ref, why)
            return
        deadline = self.clock.now() + timedelta(hours=self.deadline_hours[level - 1])
        item = await self.store.callbacks.item(order.item_id)
        assert item is not None
        async with self.store.callbacks.transaction() as conn:
            order = await self.store.callbacks.update_order(
                order.id,
                action="escalated",
                expect=(order.status, order.level),
                actor="system",
                note=why,
                status="open",
                level=level,
                deadline_at=deadline,
                conn=conn,
            )
            # The next level must act; the citizen is called again after its report.
            await self._notify(conn, order, item, why=why)

    async def notify_unnotified(self) -> int:
        """The sweeper: text every order whose current level was never texted (its
        texts could not be queued when it got there). Returns how many were texted."""
        done = 0
        for order in await self.store.callbacks.unnotified_orders():
            item = await self.store.callbacks.item(order.item_id)
            assert item is not None
            async with self.store.callbacks.transaction() as conn:
                current = await self.store.callbacks.order(order.id)
                if current is None or current.notified_level >= current.level:
                    continue  # texted meanwhile
                key = (current.id, current.level)
                # Logged loudly once per order and level; the sweeper retries quietly.
                if await self._notify(conn, current, item, why=None, loud=key not in self._unsent):
                    done += 1
                    self._unsent.discard(key)
                else:
                    self._unsent.add(key)
        return done

    async def _notify(
        self,
        conn: aiosqlite.Connection,
        order: Order,
        item: ServedItem,
        why: str | None = None,
        *,
        loud: bool = True,
    ) -> bool:
        """Text the heads of the order's level, in the caller's transaction; a level with
        nobody reachable passes it up. True if the level is now marked texted."""
        level = order.level
        skipped: list[str] = []
        callbacks = self.store.callbacks
        failure = logging.ERROR if loud else logging.DEBUG
        while True:
            recipients, missing = await self._recipients(item, level)
            if recipients:
                break
            skipped.extend(missing)
            await callbacks.add_order_event(
                order.id,
                level,
                "skipped_no_mobile",
                "system",
                f"{LEVEL_NAMES[level]}无手机号码在册：{'、'.join(missing) or '无负责人'}",
                conn=conn,
            )
            up = next_level(level)
            if up is None:
                log.log(failure, "order %s: nobody at any level can receive it", order.ref)
                return False
            level = up
            deadline = self.clock.now() + timedelta(hours=self.deadline_hours[level - 1])
            order = await callbacks.update_order(
                order.id,
                action="escalated",
                expect=(order.status, order.level),
                actor="system",
                note="负责人无手机号码，直接升级",
                level=level,
                deadline_at=deadline,
                conn=conn,
            )
        unit = await self.store.units.unit(item.unit_id)
        rating = await callbacks.rating(item.id, item.round)
        reason = REASONS.get(rating.reason or "", "未说明原因") if rating else "未说明原因"
        if why:
            reason = f"{why}；{reason}"
        if skipped:
            reason = f"{reason}（{'、'.join(skipped)}无手机号，已越级）"
        if level > 1:
            reason = f"第{level}级督办，{reason}"
        deadline_text = self.clock.local(order.deadline_at).strftime("%m月%d日%H时")
        queued = 0
        for officer in recipients:
            assert officer.mobile is not None
            try:
                await self.texter.enqueue(
                    purpose="rectification_order",
                    to=officer.mobile,
                    template="rectification_order",
                    variables={
                        "unit": unit.text_name if unit else "",
                        "business": self.catalogue.kind(item.kind_code).name,
                        "case_ref": order.ref,
                        "reason": reason,
                        "citizen": item.citizen_number,
                        "deadline": deadline_text,
                    },
                    idempotency_key=f"order:{order.id}:level:{level}:{officer.code}",
                    conn=conn,
                )
            except GatewayError as exc:  # a bad number or a text the template refuses
                log.log(
                    failure, "order %s: no text to %s (%s): %s", order.ref, officer.code, level, exc
                )
                continue
            queued += 1
            await callbacks.add_order_event(
                order.id,
                level,
                "notified",
                "system",
                f"{LEVEL_NAMES[level]} {officer.name}（{officer.code}）",
                conn=conn,
            )
        if queued:
            await callbacks.mark_notified(conn, order.id, level)
        return queued > 0

    async def _holding_units(self, item: ServedItem, level: int) -> list[int]:
        """The units that hold an order on ``item`` at ``level``."""
        return await self.ladder.holding_units(item.unit_id, level)

    async def _recipients(self, item: ServedItem, level: int) -> tuple[list[Officer], list[str]]:
        """Who heads the order at ``level``, split into reachable and without a mobile."""
        return await self.ladder.recipients(item.unit_id, level)
