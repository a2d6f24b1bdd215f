"""The text service: what the rest of the gateway calls.

``enqueue`` turns an order into an outbox row (checked number, rendered text,
counted parts, quiet hours applied, opt-out honoured) and never touches the
network; the :class:`~gateway.sms.outbox.OutboxWorker` sends it. ``handle_status``
and ``handle_inbound`` take what the webhooks parsed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import aiosqlite

from gateway.clock import Clock
from gateway.config import Config, SmsSection
from gateway.phone import InvalidPhoneNumber, Use, mask, to_e164
from gateway.sms.exceptions import DuplicateKeyConflict, NotAnOfficer, ReplyNotHandled, SmsError
from gateway.sms.policy import FAILED, QUEUED, Backoff, QuietHours, earliest_send
from gateway.sms.templates import AUDIENCES, PURPOSES, TemplateSet, load_templates
from gateway.sms.webhooks import STATUS_PATH
from gateway.store.sms import InboundText, NewText, OutboxMessage, SmsRepository, StatusUpdate

log = logging.getLogger(__name__)

# A reply that is only one of these words puts the number on the opt-out list.
OPT_OUT_WORDS = frozenset({"TD", "退订", "STOP", "UNSUBSCRIBE", "T"})
# Twilio's code for an unsubscribed recipient, reused for our own opt-out list.
OPTED_OUT_CODE = "21610"
# A reply not settled this long after it was stored (a crash while its handler ran)
# is offered again; one whose handler keeps failing is given up after MAX_OFFERS.
OFFER_GRACE = timedelta(minutes=1)
MAX_OFFERS = 10

ReplyHandler = Callable[[InboundText], Awaitable[bool]]


@dataclass(frozen=True)
class TextOrder:
    """One text to queue: what :meth:`SmsService.enqueue` takes, for a batch."""

    to: str
    template: str
    variables: Mapping[str, object]
    idempotency_key: str
    purpose: str | None = None
    audience: str | None = None


@dataclass(frozen=True)
class InboundResult:
    reply: InboundText
    duplicate: bool
    opted_out: bool
    handled_by: str | None


def is_opt_out(body: str) -> bool:
    return body.strip().strip("。.!！").upper() in OPT_OUT_WORDS


class SmsService:
    def __init__(
        self,
        repo: SmsRepository,
        templates: TemplateSet,
        clock: Clock,
        config: SmsSection,
        *,
        sender: str,
        status_callback_url: str | None,
    ) -> None:
        self.repo = repo
        self.templates = templates
        self.clock = clock
        self.config = config
        self.sender = sender
        self.status_callback_url = status_callback_url
        self.quiet = QuietHours.parse(config.quiet_start, config.quiet_end, clock.tz)
        self.wakeup = asyncio.Event()  # set when a text is queued; the worker waits on it
        self._reply_handlers: list[tuple[str, ReplyHandler]] = []
        self._offering: set[int] = set()  # replies a handler is working on now
        self._offer_backoff = Backoff(config.backoff_min, config.backoff_max)
        self._rng = random.Random()

    @classmethod
    def from_config(
        cls,
        repo: SmsRepository,
        config: Config,
        clock: Clock,
        *,
        templates: TemplateSet | None = None,
        sender: str | None = None,
    ) -> SmsService:
        """The service as the configuration describes it: the configured sender (or
        the provider's), status callbacks to ``web.public_url``."""
        return cls(
            repo,
            templates or load_templates(),
            clock,
            config.sms,
            sender=sender or config.sms.messaging_service_sid or config.sms.from_number,
            status_callback_url=config.web.public_url.rstrip("/") + STATUS_PATH,
        )

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
    ) -> OutboxMessage:
        """Store one text to send; the same ``idempotency_key`` returns the same row.
        With ``conn`` (a write transaction the caller holds) the row is part of it.

        Raises :class:`~gateway.phone.InvalidPhoneNumber` (invalid or fixed-line
        number) and :class:`~gateway.sms.exceptions.TemplateError` subclasses
        (unknown template, missing/unknown/over-long variable, too many parts), and
        :class:`~gateway.sms.exceptions.NotAnOfficer` when ``audience="officer"`` is
        asked for a number that is no officer's on file. A citizen on the opt-out
        list gets a row marked ``failed`` (code 21610), not an exception, so the
        caller's record shows why nothing was sent.
        """
        order = TextOrder(to, template, variables, idempotency_key, purpose, audience)
        return (await self.enqueue_many([order], conn=conn))[0]

    async def enqueue_many(
        self, orders: Sequence[TextOrder], *, conn: aiosqlite.Connection | None = None
    ) -> list[OutboxMessage]:
        """:meth:`enqueue` for many texts in one transaction (a batch of callbacks'
        orders): every text is checked and rendered first, so one bad order raises
        before anything is written; the rows, in order."""
        now = self.clock.now()
        checked: list[
            tuple[TextOrder, str, str, str, str]
        ] = []  # order, purpose, key, number, wanted
        for order in orders:
            spec = self.templates.get(order.template)
            purpose = order.purpose or spec.purpose
            if purpose not in PURPOSES:
                raise SmsError(f"purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
            if order.audience is not None and order.audience not in AUDIENCES:
                raise SmsError(f"audience {order.audience!r} is not one of {', '.join(AUDIENCES)}")
            key = order.idempotency_key.strip()
            if not key:
                raise SmsError(
                    "an idempotency key is required (the same order must never text twice)"
                )
            number = to_e164(order.to, use=Use.TEXT)
            checked.append((order, purpose, key, number, order.audience or spec.audience))
        officers = await self.repo.officers_among({c[3] for c in checked if c[4] == "officer"})
        opted_out = await self.repo.opted_out_among({c[3] for c in checked})
        texts: list[NewText] = []
        for order, purpose, key, number, wanted in checked:
            audience = self._audience(number, wanted, order.audience == "officer", officers)
            rendered = self.templates.render(order.template, order.variables)
            status, code, reason = QUEUED, None, None
            if audience == "citizen" and number in opted_out:
                status, code, reason = FAILED, OPTED_OUT_CODE, "recipient opted out (TD/退订/STOP)"
            texts.append(
                NewText(
                    purpose=purpose,
                    audience=audience,
                    to=number,
                    sender=self.sender,
                    template=order.template,
                    variables={k: str(v) for k, v in order.variables.items()},
                    body=rendered.body,
                    encoding=rendered.segments.encoding.value,
                    segments=rendered.segments.parts,
                    idempotency_key=key,
                    next_attempt_at=earliest_send(audience, now, self.quiet),
                    status=status,
                    error_code=code,
                    error_message=reason,
                )
            )
        out: list[OutboxMessage] = []
        for text, (message, created) in zip(
            texts, await self.repo.insert_many(texts, conn=conn), strict=True
        ):
            out.append(message)
            if not created:
                if (message.to, message.template, message.body) != (
                    text.to,
                    text.template,
                    text.body,
                ):
                    raise DuplicateKeyConflict(text.idempotency_key, message.id)
                continue
            log.info(
                "text #%d queued: %s to %s, %d part(s)%s",
                message.id,
                message.template,
                mask(message.to),
                message.segments,
                f", held until {self.clock.local(message.next_attempt_at):%H:%M}"
                if message.next_attempt_at > now
                else "",
            )
            if message.status == QUEUED:
                self.wakeup.set()
        return out

    def _audience(self, number: str, wanted: str, insisted: bool, officers: set[str]) -> str:
        """Who a text goes to, by the store's word (``officers``: the numbers among the
        batch that are officers' mobiles on file): ``officer`` (any hour, no opt-out)
        only if the template or the caller says so *and* the number is an officer's;
        otherwise ``citizen``. A caller that insists on ``officer`` for another number
        is refused (:class:`NotAnOfficer`)."""
        if wanted != "officer":
            return "citizen"
        if number in officers:
            return "officer"
        if insisted:
            raise NotAnOfficer(mask(number))
        return "citizen"

    def add_reply_handler(self, handler: ReplyHandler, name: str | None = None) -> None:
        """Offer every new reply to ``handler`` (in order); it returns True if it took it."""
        label = name or str(getattr(handler, "__qualname__", "handler"))
        self._reply_handlers.append((label, handler))

    async def handle_status(
        self, sid: str, provider_status: str, error_code: str | None
    ) -> StatusUpdate:
        update = await self.repo.apply_status(sid, provider_status, error_code)
        if update.message_id is None:
            log.info("status %s for unknown message %s kept for later", provider_status, sid)
        return update

    async def handle_inbound(
        self, sid: str, from_number: str, to_number: str, body: str
    ) -> InboundResult:
        """Store a reply once, honour opt-out words, offer it to the reply handlers.

        A reply already stored is a duplicate only once settled: Twilio's retry of a
        webhook we answered 500 offers it again. Raises :class:`ReplyNotHandled` when a
        handler fails (the webhook answers 500; the reply is re-offered later)."""
        try:
            sender = to_e164(from_number)
        except InvalidPhoneNumber:
            sender = from_number.strip()  # kept as received: a short code or alphanumeric
        reply, created = await self.repo.store_inbound(
            sid, sender, to_number.strip(), body, OFFER_GRACE
        )
        if (not created and reply.settled) or reply.id in self._offering:
            return InboundResult(reply, True, False, reply.handled_by)
        if is_opt_out(body):
            added = await self.repo.opt_out(sender, body.strip())
            await self.repo.mark_handled(reply.id, "opt-out")
            log.info("%s opted out of texts (%s)", mask(sender), "new" if added else "again")
            return InboundResult(reply, False, True, "opt-out")
        return InboundResult(reply, False, False, await self._offer(reply))

    async def reoffer_due(self) -> int:
        """Offer again the replies a handler failed on (or a crash cut short) that are
        due; a supervised loop calls this. Returns how many were settled."""
        settled = 0
        for reply in await self.repo.due_offers(100):
            if reply.id in self._offering:
                continue
            try:
                await self._offer(reply)
            except ReplyNotHandled:
                continue
            settled += 1
        return settled

    async def _offer(self, reply: InboundText) -> str | None:
        """Offer ``reply`` to each handler in order; the name of the one that took it."""
        self._offering.add(reply.id)
        try:
            for name, handler in self._reply_handlers:
                try:
                    taken = await handler(reply)
                except Exception as exc:
                    await self._offer_failed(reply, name, exc)
                    raise ReplyNotHandled(reply.id, name) from exc
                if taken:
                    await self.repo.mark_handled(reply.id, name)
                    return name
            await self.repo.mark_handled(reply.id, None)
        finally:
            self._offering.discard(reply.id)
        known = await self.repo.last_to(reply.from_number)
        log.info(
            "reply #%d from %s %s; no handler took it",
            reply.id,
            mask(reply.from_number),
            "to a text we sent" if known else "(a number we never texted)",
        )
        return None

    async def _offer_failed(self, reply: InboundText, name: str, exc: Exception) -> None:
        offers = reply.offers + 1
        error = f"{name}: {type(exc).__name__}: {exc}"
        if offers >= MAX_OFFERS:
            log.error("reply #%d: handler %s failed %d times; given up", reply.id, name, offers)
            await self.repo.offer_failed(reply.id, error, None)
            return
        delay = self._offer_backoff.delay(offers, None, self._rng)
        log.log(
            logging.ERROR if offers == 1 else logging.WARNING,
            "reply #%d: handler %s failed (%s); offered again in %.0fs",
            reply.id,
            name,
            error,
            delay,
            exc_info=exc if offers == 1 else None,
        )
        await self.repo.offer_failed(reply.id, error, self.clock.now() + timedelta(seconds=delay))
