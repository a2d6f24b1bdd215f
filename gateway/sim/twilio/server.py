"""Twilio's Messages API as the real one answers it, on a local port.

What it serves (``/2010-04-01``, HTTP Basic auth with the account SID and token):

* ``POST /Accounts/{Sid}/Messages.json`` with ``To``, ``From`` or
  ``MessagingServiceSid``, ``Body``, ``StatusCallback``: 201 and the message
  (``SM…`` sid, ``status: queued``, ``num_segments``, ``price``, RFC 2822 dates);
  Twilio's error bodies ``{"code", "message", "more_info", "status"}`` for 21211
  (invalid ``To``), 21610 (unsubscribed recipient), 21602 (no body), 21604 (no
  sender), 21617 (body too long), 20003 (authentication, HTTP 401), 20429 (HTTP 429).
* ``GET /Accounts/{Sid}/Messages/{MessageSid}.json`` and ``GET …/Messages.json``
  filtered by ``To``, ``From``, ``DateSent``, ``DateSent<``, ``DateSent>``, newest
  first, paged with ``PageSize``/``Page``.
* ``GET /Accounts/{Sid}.json``: the account (what a health check fetches).

Each accepted message then walks ``queued → sent → delivered`` (or the outcome set
for its number: ``undelivered``/``failed`` with an ``ErrorCode``), and each step is
POSTed to its ``StatusCallback`` signed with ``X-Twilio-Signature``, computed with
twilio's own ``RequestValidator``. :meth:`SimulatedTwilio.send_reply` posts a
citizen's reply to an inbound webhook, signed the same way; a reply of STOP (or
TD/退订) unsubscribes the number, as Twilio's opt-out handling does.

Faults on demand through :attr:`SimulatedTwilio.faults`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
import phonenumbers
from aiohttp import web
from twilio.request_validator import RequestValidator

from gateway.phone import mask
from gateway.sms.segments import count_segments

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
MAX_BODY = 1600
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "TD", "退订"})


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _rfc2822(when: datetime | None) -> str | None:
    return format_datetime(when.astimezone(UTC), usegmt=True) if when else None


@dataclass
class SimMessage:
    """One message the simulator accepted."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status_callback: str | None
    num_segments: int
    date_created: datetime
    status: str = "queued"
    date_sent: datetime | None = None
    date_updated: datetime | None = None
    error_code: int | None = None
    error_message: str | None = None
    price: str | None = None
    direction: str = "outbound-api"

    def to_json(self) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": _rfc2822(self.date_created),
            "date_sent": _rfc2822(self.date_sent),
            "date_updated": _rfc2822(self.date_updated or self.date_created),
            "direction": self.direction,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(self.num_segments),
            "price": self.price,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": self.to,
            "uri": uri,
        }


@dataclass
class Faults:
    """Faults on demand. Counters are decremented as requests consume them."""

    _429: int = 0
    retry_after: float | None = 1.0
    _5xx: int = 0
    status_5xx: int = 500
    _drop: int = 0
    drop_after_accept: bool = True
    slow_seconds: float = 0.0
    _slow_count: int | None = None
    duplicate_callbacks: bool = False
    reorder_callbacks: bool = False
    lose_callbacks: bool = False  # status callbacks are never posted (lost on the way)

    def burst_429(self, n: int, retry_after: float | None = 1.0) -> None:
        """The next ``n`` creates get HTTP 429 / 20429 with ``Retry-After``."""
        self._429 += n
        self.retry_after = retry_after

    def fail_5xx(self, n: int, status: int = 500) -> None:
        """The next ``n`` creates get HTTP ``status`` (500, 502, 503) and create nothing."""
        self._5xx += n
        self.status_5xx = status

    def drop(self, n: int, *, after_accept: bool = True) -> None:
        """The next ``n`` creates lose their connection with no answer; with
        ``after_accept`` the message was created first (the client cannot know)."""
        self._drop += n
        self.drop_after_accept = after_accept

    def slow(self, seconds: float, n: int | None = None) -> None:
        """Answer every request (or the next ``n``) ``seconds`` late; the work is still done."""
        self.slow_seconds = seconds
        self._slow_count = n

    def clear(self) -> None:
        self._429 = self._5xx = self._drop = 0
        self.slow_seconds = 0.0
        self._slow_count = None
        self.duplicate_callbacks = self.reorder_callbacks = self.lose_callbacks = False

    def _take(self, name: str) -> bool:
        value = getattr(self, name)
        if value > 0:
            setattr(self, name, value - 1)
            return True
        return False

    def _take_slow(self) -> float:
        if self.slow_seconds <= 0:
            return 0.0
        if self._slow_count is None:
            return self.slow_seconds
        if self._slow_count > 0:
            self._slow_count -= 1
            return self.slow_seconds
        return 0.0


@dataclass
class Stats:
    creates: int = 0  # POSTs that reached the handler
    accepted: int = 0
    rejected_429: int = 0
    failed_5xx: int = 0
    dropped: int = 0
    callbacks_posted: int = 0
    callback_failures: int = 0


@dataclass(order=True)
class _Scheduled:
    due: float
    seq: int
    url: str = field(compare=False)
    params: dict[str, str] = field(compare=False)


def _twilio_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )


class SimulatedTwilio:
    """The simulator as an async context manager; ``port=0`` picks a free port."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        time_scale: float = 1.0,
        sent_after: float = 0.05,
        delivered_after: float = 0.2,
        now: Callable[[], datetime] | None = None,
        callback_workers: int = 4,
    ) -> None:
        if not account_sid.startswith("AC"):
            raise ValueError(f"an account SID starts with AC, got {account_sid!r}")
        self.account_sid = account_sid
        self._token = auth_token
        self._validator = RequestValidator(auth_token)
        self.host = host
        self.port = port
        self.time_scale = time_scale
        self.sent_after = sent_after
        self.delivered_after = delivered_after
        self._now = now or (lambda: datetime.now(UTC))
        self._callback_workers = callback_workers
        self.messages: list[SimMessage] = []
        self._by_sid: dict[str, SimMessage] = {}
        self.inbound: list[dict[str, str]] = []
        self.outcomes: dict[str, tuple[str, int | None]] = {}
        self.unsubscribed: set[str] = set()
        self.faults = Faults()
        self.stats = Stats()
        self.callbacks: list[tuple[str, dict[str, str]]] = []
        self._heap: list[_Scheduled] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._queue: asyncio.Queue[_Scheduled] = asyncio.Queue()
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stack = contextlib.AsyncExitStack()

    # -- life --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What a client's API base URL should be, e.g. ``http://127.0.0.1:43210``."""
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> SimulatedTwilio:
        try:
            self._session = await self._stack.enter_async_context(
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
            )
            app = web.Application(middlewares=[self._auth_middleware])
            api = f"/{API_VERSION}/Accounts/{{account}}"
            app.router.add_post(f"{api}/Messages.json", self._create)
            app.router.add_get(f"{api}/Messages.json", self._list)
            app.router.add_get(f"{api}/Messages/{{sid}}.json", self._fetch)
            app.router.add_get(f"{api}.json", self._account)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            self._stack.push_async_callback(self._runner.cleanup)
            site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
            self.port = int(self._runner.addresses[0][1])
            group = await self._stack.enter_async_context(asyncio.TaskGroup())
            tasks = [group.create_task(self._scheduler(), name="sim-twilio-scheduler")]
            for i in range(self._callback_workers):
                tasks.append(group.create_task(self._poster(), name=f"sim-twilio-callbacks-{i}"))

            def cancel_tasks() -> None:
                for task in tasks:
                    task.cancel()

            self._stack.callback(cancel_tasks)
        except BaseException:
            await self._stack.aclose()
            raise
        log.info("simulated Twilio on %s (account %s)", self.base_url, self.account_sid)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    # -- configuration and inspection -----------------------------------------------

    def set_outcome(self, number: str, status: str, error_code: int | None = None) -> None:
        """Texts to ``number`` end ``delivered``, ``undelivered`` or ``failed`` (with a code)."""
        if status not in ("delivered", "undelivered", "failed"):
            raise ValueError(f"outcome must be delivered, undelivered or failed, got {status!r}")
        if status != "delivered" and error_code is None:
            error_code = 30003 if status == "undelivered" else 30008
        self.outcomes[number] = (status, error_code)

    def message(self, sid: str) -> SimMessage | None:
        return self._by_sid.get(sid)

    async def callbacks_idle(self) -> None:
        """Wait until every scheduled status callback has been posted (bound it with
        ``asyncio.timeout``)."""
        await self._idle.wait()

    # -- HTTP --------------------------------------------------------------------

    @web.middleware
    async def _auth_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        try:
            basic = aiohttp.BasicAuth.decode(auth) if auth else None
        except ValueError:
            basic = None
        account = request.match_info.get("account")
        if (
            basic is None
            or basic.login != self.account_sid
            or not secrets.compare_digest(basic.password, self._token)
            or account != self.account_sid
        ):
            return _twilio_error(401, 20003, "Authenticate")
        response: web.StreamResponse = await handler(request)
        return response

    async def _create(self, request: web.Request) -> web.StreamResponse:
        self.stats.creates += 1
        form = await request.post()  # read first: a slow Twilio has the request already
        delay = self.faults._take_slow()
        if delay:
            await asyncio.sleep(delay)
        if self.faults._take("_429"):
            self.stats.rejected_429 += 1
            response = _twilio_error(429, 20429, "Too Many Requests")
            if self.faults.retry_after is not None:
                response.headers["Retry-After"] = f"{self.faults.retry_after:g}"
            return response
        if self.faults._take("_5xx"):
            self.stats.failed_5xx += 1
            return _twilio_error(self.faults.status_5xx, 20500, "Internal Server Error")
        dropping = self.faults._take("_drop")
        if dropping and not self.faults.drop_after_accept:
            return self._drop(request)
        to = str(form.get("To", "")).strip()
        sender = str(form.get("From", "")).strip() or None
        service = str(form.get("MessagingServiceSid", "")).strip() or None
        body = str(form.get("Body", ""))
        callback = str(form.get("StatusCallback", "")).strip() or None
        if not to:
            return _twilio_error(400, 21604, "A 'To' phone number is required.")
        if not _valid_number(to):
            return _twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if sender is None and service is None:
            return _twilio_error(400, 21604, "A 'From' phone number is required.")
        if not body.strip():
            return _twilio_error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY:
            return _twilio_error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if to in self.unsubscribed:
            return _twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        now = self._now()
        segments = count_segments(body).parts
        message = SimMessage(
            sid=_sid("SM"),
            account_sid=self.account_sid,
            to=to,
            from_=sender,
            messaging_service_sid=service,
            body=body,
            status_callback=callback,
            num_segments=segments,
            date_created=now,
            date_updated=now,
        )
        self.messages.append(message)
        self._by_sid[message.sid] = message
        self.stats.accepted += 1
        self._plan_walk(message)
        log.debug("accepted %s to %s", message.sid, mask(to))
        if dropping:
            return self._drop(request)
        return web.json_response(message.to_json(), status=201)

    def _drop(self, request: web.Request) -> web.StreamResponse:
        self.stats.dropped += 1
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never reaches the client: the socket is gone

    async def _fetch(self, request: web.Request) -> web.StreamResponse:
        message = self._by_sid.get(request.match_info["sid"])
        if message is None:
            return _twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return web.json_response(message.to_json())

    async def _account(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "sid": self.account_sid,
                "friendly_name": "Simulated account",
                "status": "active",
                "type": "Full",
                "auth_token": "",
                "date_created": _rfc2822(self._now()),
                "date_updated": _rfc2822(self._now()),
                "uri": f"/{API_VERSION}/Accounts/{self.account_sid}.json",
            }
        )

    async def _list(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        try:
            page_size = max(1, min(1000, int(q.get("PageSize", "50"))))
            page = max(0, int(q.get("Page", "0")))
            on = _date_filter(q.get("DateSent"))
            before = _date_filter(q.get("DateSent<"))
            after = _date_filter(q.get("DateSent>"))
        except ValueError as exc:
            return _twilio_error(400, 20001, f"Invalid parameter: {exc}")
        found = []
        for m in reversed(self.messages):  # newest first, as Twilio lists
            if "To" in q and m.to != q["To"]:
                continue
            if "From" in q and m.from_ != q["From"]:
                continue
            if on or before or after:
                if m.date_sent is None:
                    continue
                if on and m.date_sent.date() != on.date():
                    continue
                if before and not _before(m.date_sent, before):
                    continue
                if after and not _after(m.date_sent, after):
                    continue
            found.append(m)
        start = page * page_size
        chunk = found[start : start + page_size]
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"
        next_uri = None
        if start + page_size < len(found):
            params = {k: v for k, v in q.items() if k not in ("Page", "PageToken")}
            params.update({"Page": str(page + 1), "PageToken": f"PA{page + 1}"})
            next_uri = str(request.url.with_path(base).with_query(params).relative())
        return web.json_response(
            {
                "messages": [m.to_json() for m in chunk],
                "end": start + len(chunk) - 1 if chunk else 0,
                "first_page_uri": f"{base}?PageSize={page_size}&Page=0",
                "next_page_uri": next_uri,
                "page": page,
                "page_size": page_size,
                "previous_page_uri": None,
                "start": start,
                "uri": str(request.rel_url),
            }
        )

    # -- the message walk and callbacks ---------------------------------------------------

    def _plan_walk(self, message: SimMessage) -> None:
        outcome, code = self.outcomes.get(message.to, ("delivered", None))
        loop = asyncio.get_running_loop()
        t_sent = loop.time() + self.sent_after * self.time_scale
        t_final = loop.time() + self.delivered_after * self.time_scale
        if self.faults.reorder_callbacks:
            t_sent, t_final = t_final, t_sent
        steps: list[tuple[float, str, int | None]] = []
        if outcome == "failed":
            steps.append((t_sent, "failed", code))
        else:
            steps.append((t_sent, "sent", None))
            steps.append((t_final, outcome, code))
        for due, status, error in steps:
            self._schedule(due, message, status, error)

    def _schedule(self, due: float, message: SimMessage, status: str, code: int | None) -> None:
        # The message's own state moves at the step's time even without a callback URL.
        params = {"__sid": message.sid, "__status": status, "__code": str(code or "")}
        url = message.status_callback or ""
        heapq.heappush(self._heap, _Scheduled(due, next(self._seq), url, params))
        self._pending += 1
        self._idle.clear()
        self._wake.set()

    async def _scheduler(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._heap[0].due - loop.time()
            if wait > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            item = heapq.heappop(self._heap)
            self._apply_step(item)
            self._queue.put_nowait(item)

    def _apply_step(self, item: _Scheduled) -> None:
        message = self._by_sid[item.params["__sid"]]
        status = item.params["__status"]
        now = self._now()
        rank = {"queued": 0, "sent": 1, "delivered": 2, "undelivered": 2, "failed": 2}
        if rank[status] > rank.get(message.status, 0):
            message.status = status
            message.date_updated = now
            if status == "sent":
                message.date_sent = now
                message.price = f"-{0.0075 * message.num_segments:.4f}"
            if item.params["__code"]:
                message.error_code = int(item.params["__code"])
                message.error_message = (
                    "Unreachable destination handset"
                    if status == "undelivered"
                    else "Message delivery failed"
                )

    async def _poster(self) -> None:
        assert self._session is not None
        while True:
            item = await self._queue.get()
            try:
                if item.url and not self.faults.lose_callbacks:
                    message = self._by_sid[item.params["__sid"]]
                    params = self._callback_params(
                        message, item.params["__status"], item.params["__code"]
                    )
                    times = 2 if self.faults.duplicate_callbacks else 1
                    for _ in range(times):
                        await self._post_signed(item.url, params)
            finally:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()

    def _callback_params(self, message: SimMessage, status: str, code: str) -> dict[str, str]:
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "From": message.from_ or "",
            "MessageSid": message.sid,
            "MessageStatus": status,
            "MessagingServiceSid": message.messaging_service_sid or "",
            "SmsSid": message.sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if code:
            params["ErrorCode"] = code
        return {k: v for k, v in params.items() if v}

    async def _post_signed(self, url: str, params: dict[str, str]) -> int:
        assert self._session is not None
        signature = self._validator.compute_signature(url, params)
        try:
            async with self._session.post(
                url, data=params, headers={"X-Twilio-Signature": signature}
            ) as response:
                await response.read()
                self.stats.callbacks_posted += 1
                self.callbacks.append((url, params))
                if response.status >= 400:
                    log.warning("webhook %s answered %s", url, response.status)
                return response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.callback_failures += 1
            log.warning("webhook %s unreachable: %s", url, exc)
            return 0

    async def send_reply(
        self, from_number: str, to_number: str, body: str, webhook_url: str, *, sid: str = ""
    ) -> int:
        """A citizen's reply, POSTed signed to ``webhook_url``; returns the HTTP status.

        ``sid`` posts an earlier reply again, as Twilio retries a webhook that failed
        when the URL asks for it (connection overrides such as ``#rc=3&rp=all``)."""
        sid = sid or _sid("SM")
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "Body": body,
            "From": from_number,
            "MessageSid": sid,
            "NumMedia": "0",
            "NumSegments": str(max(1, count_segments(body).parts)),
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": to_number,
        }
        if body.strip().upper() in STOP_WORDS or body.strip() in STOP_WORDS:
            self.unsubscribed.add(from_number)
        self.inbound.append(params)
        return await self._post_signed(webhook_url, params)


def _valid_number(number: str) -> bool:
    if not number.startswith("+"):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False


def _date_filter(text: str | None) -> datetime | None:
    if not text:
        return None
    text = text.strip()
    if len(text) == 10:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _before(when: datetime, limit: datetime) -> bool:
    return when.date() <= limit.date() if limit.time() == datetime.min.time() else when <= limit


def _after(when: datetime, limit: datetime) -> bool:
    return when.date() >= limit.date() if limit.time() == datetime.min.time() else when >= limit
