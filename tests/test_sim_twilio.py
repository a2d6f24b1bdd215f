"""The simulated Twilio, driven by the real twilio client over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from sms_support import ACCOUNT, CHIEF, FROM, TOKEN, free_socket
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from gateway.sim.twilio import SimulatedTwilio
from gateway.sms.provider import GatewayHttpClient


@pytest.fixture
async def tw() -> AsyncIterator[SimulatedTwilio]:
    """A simulator with a fast sent/delivered walk."""
    async with SimulatedTwilio(ACCOUNT, TOKEN, time_scale=0.1) as sim:
        yield sim


@pytest.fixture
async def client(tw: SimulatedTwilio) -> AsyncIterator[Client]:
    """The real twilio client pointed at the simulator."""
    http = GatewayHttpClient(timeout=2.0)
    c = Client(ACCOUNT, TOKEN, http_client=http, environment={})
    c.api.base_url = tw.base_url
    yield c
    await http.close()


class Receiver:
    """A webhook receiver that checks each signature as the gateway would."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self.valid: list[bool] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.valid.append(
            RequestValidator(TOKEN).validate(
                self.url, form, request.headers.get("X-Twilio-Signature", "")
            )
        )
        self.received.append(form)
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A local webhook endpoint."""
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = free_socket()
    await web.SockSite(runner, sock).start()
    rec.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    yield rec
    await runner.cleanup()
    sock.close()


async def test_create_answers_like_twilio(tw: SimulatedTwilio, client: Client) -> None:
    """A create returns 201 with an SM sid, status queued, segments and dates."""
    m = await client.messages.create_async(to=CHIEF, from_=FROM, body="【鲁州公安】测试" * 10)
    assert m.sid.startswith("SM") and len(m.sid) == 34
    assert m.status == "queued"
    assert m.num_segments == "2"
    assert m.date_created is not None
    assert m.price is None
    assert [x.sid for x in tw.messages] == [m.sid]


async def test_message_walks_to_delivered_with_signed_callbacks(
    tw: SimulatedTwilio, client: Client, receiver: Receiver
) -> None:
    """sent then delivered are POSTed to the StatusCallback with a valid signature."""
    m = await client.messages.create_async(
        to=CHIEF, from_=FROM, body="hi", status_callback=receiver.url
    )
    async with asyncio.timeout(5):
        await tw.callbacks_idle()
    assert [r["MessageStatus"] for r in receiver.received] == ["sent", "delivered"]
    assert all(receiver.valid)
    fetched = await client.messages(m.sid).fetch_async()
    assert fetched.status == "delivered" and fetched.date_sent is not None


async def test_undelivered_outcome_carries_an_error_code(
    tw: SimulatedTwilio, client: Client, receiver: Receiver
) -> None:
    """A number set to undelivered ends undelivered with ErrorCode 30003."""
    tw.set_outcome(CHIEF, "undelivered")
    await client.messages.create_async(
        to=CHIEF, from_=FROM, body="hi", status_callback=receiver.url
    )
    async with asyncio.timeout(5):
        await tw.callbacks_idle()
    assert receiver.received[-1]["MessageStatus"] == "undelivered"
    assert receiver.received[-1]["ErrorCode"] == "30003"


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"to": "+86123", "from_": FROM, "body": "x"}, 400, 21211),
        ({"to": CHIEF, "from_": FROM, "body": "  "}, 400, 21602),
        ({"to": CHIEF, "body": "x"}, 400, 21604),
        ({"to": CHIEF, "from_": FROM, "body": "x" * 1601}, 400, 21617),
    ],
)
async def test_errors_use_twilio_codes(
    client: Client, kwargs: dict[str, str], status: int, code: int
) -> None:
    """Invalid To, empty body, no sender and an over-long body get Twilio's codes."""
    with pytest.raises(TwilioRestException) as info:
        await client.messages.create_async(**kwargs)
    assert (info.value.status, info.value.code) == (status, code)


async def test_wrong_credentials_get_20003(tw: SimulatedTwilio) -> None:
    """A wrong token is answered 401 with code 20003."""
    http = GatewayHttpClient(timeout=2.0)
    c = Client(ACCOUNT, "wrong", http_client=http, environment={})
    c.api.base_url = tw.base_url
    try:
        with pytest.raises(TwilioRestException) as info:
            await c.messages.create_async(to=CHIEF, from_=FROM, body="x")
    finally:
        await http.close()
    assert (info.value.status, info.value.code) == (401, 20003)
    assert tw.messages == []


async def test_burst_429_then_accepts(tw: SimulatedTwilio, client: Client) -> None:
    """burst_429(2) refuses two creates with 20429, then accepts."""
    tw.faults.burst_429(2, retry_after=3)
    for _ in range(2):
        with pytest.raises(TwilioRestException) as info:
            await client.messages.create_async(to=CHIEF, from_=FROM, body="x")
        assert (info.value.status, info.value.code) == (429, 20429)
    await client.messages.create_async(to=CHIEF, from_=FROM, body="x")
    assert len(tw.messages) == 1 and tw.stats.rejected_429 == 2


async def test_stop_reply_unsubscribes(
    tw: SimulatedTwilio, client: Client, receiver: Receiver
) -> None:
    """After a STOP reply, a text to that number gets 21610; the reply was signed."""
    assert await tw.send_reply(CHIEF, FROM, "STOP", receiver.url) == 204
    assert receiver.valid == [True] and receiver.received[0]["Body"] == "STOP"
    with pytest.raises(TwilioRestException) as info:
        await client.messages.create_async(to=CHIEF, from_=FROM, body="x")
    assert info.value.code == 21610


async def test_list_filters_by_to_newest_first(tw: SimulatedTwilio, client: Client) -> None:
    """Listing by To returns only that number's messages, newest first, paged."""
    other = "+8613800138000"
    for i in range(3):
        await client.messages.create_async(to=CHIEF, from_=FROM, body=f"m{i}")
    await client.messages.create_async(to=other, from_=FROM, body="other")
    page = await client.messages.page_async(to=CHIEF, page_size=2)
    assert [m.body for m in page] == ["m2", "m1"]
    everything = await client.messages.list_async(to=CHIEF, page_size=2)
    assert [m.body for m in everything] == ["m2", "m1", "m0"]


async def test_fetch_unknown_message_is_20404(client: Client) -> None:
    """Fetching a sid the simulator never issued is a 404 with code 20404."""
    with pytest.raises(TwilioRestException) as info:
        await client.messages("SM" + "0" * 32).fetch_async()
    assert (info.value.status, info.value.code) == (404, 20404)


async def test_duplicate_and_reordered_callbacks(
    tw: SimulatedTwilio, client: Client, receiver: Receiver
) -> None:
    """With both faults on, delivered comes before sent and each comes twice."""
    tw.faults.duplicate_callbacks = True
    tw.faults.reorder_callbacks = True
    await client.messages.create_async(to=CHIEF, from_=FROM, body="x", status_callback=receiver.url)
    async with asyncio.timeout(5):
        await tw.callbacks_idle()
    assert [r["MessageStatus"] for r in receiver.received] == [
        "delivered",
        "delivered",
        "sent",
        "sent",
    ]
