"""The outbox end to end: the gateway's web app and worker against the simulated
Twilio over loopback, with the real twilio client, through every fault."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sms_support import (
    API_TOKEN,
    CHIEF,
    CITIZEN,
    FROM,
    ORDER_VARS,
    TOKEN,
    Gateway,
    running_gateway,
    until,
)
from twilio.request_validator import RequestValidator

from gateway.clock import ScaledClock, parse_utc
from gateway.config import Secret
from gateway.phone import InvalidPhoneNumber
from gateway.sim.twilio import SimulatedTwilio
from gateway.sms.exceptions import DuplicateKeyConflict
from gateway.sms.service import TextOrder
from gateway.store import Store
from gateway.store.sms import InboundText, OutboxMessage
from gateway.web.sms import OUTBOX, SMS_PROVIDER

RATING_VARS = {"unit": "城关派出所", "business": "户籍办理"}


async def status_of(store: Store, message: OutboxMessage, wanted: str) -> bool:
    row = await store.sms.get(message.id)
    return row is not None and row.status == wanted


async def order(gw: Gateway, key: str = "order-1", to: str = CHIEF) -> OutboxMessage:
    return await gw.sms.enqueue(
        to=to, template="rectification_order", variables=ORDER_VARS, idempotency_key=key
    )


async def delivered_order(gw: Gateway, store: Store) -> OutboxMessage:
    """Queue the default order and wait until status callbacks take it to delivered."""
    message = await order(gw)
    await until(lambda: status_of(store, message, "delivered"))
    return message


async def test_order_goes_out_once_and_ends_delivered(
    live_store: Store, tw: SimulatedTwilio
) -> None:
    """A rectification order is sent once, gets its sid, and callbacks take it to delivered."""
    async with running_gateway(live_store, tw) as gw:
        message = await delivered_order(gw, live_store)
    row = await live_store.sms.get(message.id)
    assert row is not None and row.provider_sid == tw.messages[0].sid
    assert row.sent_at is not None and row.attempts == 1
    assert len(tw.messages) == 1 and tw.messages[0].body == message.body
    assert tw.messages[0].status_callback == gw.url + "/twilio/status"
    kinds = [e.kind for e in await live_store.sms.events(message.id)]
    # Sids are written in batches: a fast callback may be stored (and applied) first.
    assert kinds[:2] == ["enqueued", "claimed"] and kinds.count("accepted") == 1


async def test_a_batch_is_checked_whole_before_any_text_is_stored(
    live_store: Store, tw: SimulatedTwilio
) -> None:
    """enqueue_many stores nothing when one order is invalid; otherwise it returns the rows
    in order, the existing row for a known key, and a failed row for an opted-out citizen,
    and each new text is sent once."""
    async with running_gateway(live_store, tw) as gw:
        first = await order(gw, "known")
        await live_store.sms.opt_out(CITIZEN, "TD")
        rating = TextOrder(CITIZEN, "rating_request", RATING_VARS, "rating-1")
        chief = TextOrder(CHIEF, "rectification_order", ORDER_VARS, "order-2")
        with pytest.raises(InvalidPhoneNumber):
            await gw.sms.enqueue_many(
                [chief, TextOrder("010-12345678", "rating_request", RATING_VARS, "bad")]
            )
        assert await live_store.sms.by_key("order-2") is None
        known = TextOrder(CHIEF, "rectification_order", ORDER_VARS, "known")
        rows = await gw.sms.enqueue_many([chief, known, rating, chief])
        assert [r.idempotency_key for r in rows] == ["order-2", "known", "rating-1", "order-2"]
        assert rows[1].id == first.id and rows[3].id == rows[0].id
        assert rows[2].status == "failed" and rows[2].error_code == "21610"
        assert [e.kind for e in await live_store.sms.events(rows[0].id)][:1] == ["enqueued"]
        await until(lambda: status_of(live_store, rows[0], "delivered"))
        await until(lambda: status_of(live_store, first, "delivered"))
    assert sorted(m.body for m in tw.messages) == sorted([first.body, rows[0].body])


async def test_same_key_never_yields_two_texts(live_store: Store, tw: SimulatedTwilio) -> None:
    """Enqueuing the same order twice stores and sends one text; other content is refused."""
    async with running_gateway(live_store, tw) as gw:
        first = await order(gw)
        again = await order(gw)
        assert again.id == first.id
        with pytest.raises(DuplicateKeyConflict):
            await order(gw, to=CITIZEN)
        await until(lambda: status_of(live_store, first, "delivered"))
    assert len(tw.messages) == 1


async def test_429_storm_is_retried_until_accepted(live_store: Store, tw: SimulatedTwilio) -> None:
    """Five 429s in a row are waited out (Retry-After honoured) and the text goes once."""
    tw.faults.burst_429(5, retry_after=0.02)
    async with running_gateway(live_store, tw) as gw:
        message = await delivered_order(gw, live_store)
    row = await live_store.sms.get(message.id)
    assert row is not None and row.attempts == 6
    assert tw.stats.rejected_429 == 5 and len(tw.messages) == 1


async def test_5xx_is_looked_up_then_resent_once(live_store: Store, tw: SimulatedTwilio) -> None:
    """After 500s (nothing created) the text is looked up, not found, and sent once."""
    tw.faults.fail_5xx(2, status=503)
    async with running_gateway(live_store, tw) as gw:
        await delivered_order(gw, live_store)
        assert gw.worker.reconciled == 0
    assert tw.stats.failed_5xx == 2 and len(tw.messages) == 1


async def test_dropped_connection_after_accept_is_not_resent(
    live_store: Store, tw: SimulatedTwilio
) -> None:
    """Twilio took the text but the answer was lost: the look-up finds it; no second text."""
    tw.faults.drop(1, after_accept=True)
    async with running_gateway(live_store, tw) as gw:
        message = await delivered_order(gw, live_store)
        # The row may show delivered a moment before the worker counts its look-up.
        await until(lambda: gw.worker.reconciled == 1)
    assert tw.stats.dropped == 1 and len(tw.messages) == 1
    row = await live_store.sms.get(message.id)
    assert row is not None and row.provider_sid == tw.messages[0].sid


async def test_timeout_is_looked_up_not_resent(live_store: Store, tw: SimulatedTwilio) -> None:
    """A create slower than the HTTP timeout still lands; the look-up finds it."""
    tw.faults.slow(0.4, n=1)
    async with running_gateway(live_store, tw, http_timeout=0.15, lookup_delay=0.6) as gw:
        await delivered_order(gw, live_store)
        # The row may show delivered a moment before the worker counts its look-up.
        await until(lambda: gw.worker.reconciled == 1)
    assert len(tw.messages) == 1


async def test_unsubscribed_recipient_fails_without_retry(
    live_store: Store, tw: SimulatedTwilio
) -> None:
    """Twilio's 21610 is permanent: one attempt, status failed with that code."""
    tw.unsubscribed.add(CHIEF)
    async with running_gateway(live_store, tw) as gw:
        message = await order(gw)
        await until(lambda: status_of(live_store, message, "failed"))
    row = await live_store.sms.get(message.id)
    assert row is not None and row.attempts == 1 and row.error_code == "21610"
    assert tw.stats.creates == 1


@pytest.mark.parametrize("number", ["0531-88123456", "1391234567", "not a number"])
async def test_invalid_or_fixed_numbers_are_refused_and_nothing_stored(
    live_store: Store, tw: SimulatedTwilio, number: str
) -> None:
    """A landline or invalid number is refused at enqueue; no row, no request."""
    async with running_gateway(live_store, tw, run_outbox=False) as gw:
        with pytest.raises(InvalidPhoneNumber):
            await order(gw, to=number)
    assert await live_store.sms.counts() == {}


async def test_quiet_hours_hold_citizens_not_officers(tmp_path: Path, tw: SimulatedTwilio) -> None:
    """At 23:00 local (inside 21:00–08:00) a rating request waits; an order goes at once."""
    night = ScaledClock(datetime(2026, 11, 30, 15, 0, tzinfo=UTC), 1.0)  # 23:00 in Shanghai
    async with (
        Store.open(tmp_path / "night.sqlite3", night) as store,
        running_gateway(store, tw, quiet_start="21:00", quiet_end="08:00") as gw,
    ):
        assert gw.sms.quiet.contains(night.now())
        await on_file_as_chief(store, CHIEF)
        rating = await gw.sms.enqueue(
            to=CITIZEN, template="rating_request", variables=RATING_VARS, idempotency_key="r1"
        )
        chief = await order(gw)
        await until(lambda: status_of(store, chief, "delivered"))
        row = await store.sms.get(rating.id)
    assert row is not None and row.status == "queued" and row.attempts == 0
    assert night.local(row.next_attempt_at).strftime("%Y-%m-%d %H:%M") == "2026-12-01 08:00"
    assert [m.to for m in tw.messages] == [CHIEF]


async def on_file_as_chief(store: Store, mobile: str) -> None:
    await store.units.add_unit("PS-CG", "城关派出所", "station")
    await store.units.add_officer("0001", "王所长", "PS-CG", "chief", mobile)


async def _api_post(gw: Gateway, payload: object) -> tuple[int, dict[str, Any]]:
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(gw.url + "/api/sms/messages", json=payload, headers=auth) as r:
            return r.status, await r.json()


async def test_api_queues_a_list_of_texts_in_one_go(live_store: Store, tw: SimulatedTwilio) -> None:
    """A list POSTed to /api/sms/messages is queued whole (an opted-out citizen's text comes
    back failed), or, if one item is invalid, refused naming that item with nothing stored."""
    async with running_gateway(live_store, tw) as gw:
        await live_store.sms.opt_out(CITIZEN, "TD")
        order = {"template": "rectification_order", "variables": ORDER_VARS}
        status, body = await _api_post(
            gw, [{**order, "to": CHIEF, "idempotency_key": "x"}, {**order, "to": CITIZEN}]
        )
        assert status == 400 and body["details"] == {"field": "idempotency_key", "index": 1}
        assert await live_store.sms.counts() == {}
        status, body = await _api_post(
            gw,
            [
                {**order, "to": CHIEF, "idempotency_key": "x"},
                {**order, "to": CITIZEN, "idempotency_key": "y"},
            ],
        )
        assert status == 201
        assert [m["status"] for m in body["messages"]] == ["queued", "failed"]
        sent = await live_store.sms.by_key("x")
        assert sent is not None
        await until(lambda: status_of(live_store, sent, "delivered"))
    assert [m.to for m in tw.messages] == [CHIEF]


async def test_api_cannot_make_a_citizen_an_officer(tmp_path: Path, tw: SimulatedTwilio) -> None:
    """At 23:00, "audience": "officer" for a number not on file is refused; an order to a
    citizen's number is held for the morning; an opted-out citizen gets 400 naming 21610."""
    night = ScaledClock(datetime(2026, 11, 30, 15, 0, tzinfo=UTC), 1.0)  # 23:00 in Shanghai
    async with (
        Store.open(tmp_path / "night.sqlite3", night) as store,
        running_gateway(store, tw, quiet_start="21:00", quiet_end="08:00") as gw,
    ):
        assert await tw.send_reply(CITIZEN, FROM, "退订", gw.url + "/twilio/inbound") == 200
        order = {"template": "rectification_order", "variables": ORDER_VARS}
        status, body = await _api_post(
            gw, {**order, "to": CITIZEN, "audience": "officer", "idempotency_key": "a"}
        )
        assert status == 400 and "no officer's mobile on file" in body["message"]
        status, body = await _api_post(gw, {**order, "to": CITIZEN, "idempotency_key": "b"})
        assert status == 400 and body["error"] == "recipient_opted_out"
        assert body["details"]["code"] == 21610
        other = "+8615005311234"
        status, body = await _api_post(gw, {**order, "to": other, "idempotency_key": "c"})
        assert status == 201 and body["audience"] == "citizen" and body["status"] == "queued"
        assert night.local(parse_utc(body["next_attempt_at"])).hour == 8
        await on_file_as_chief(store, CHIEF)
        status, body = await _api_post(
            gw, {**order, "to": CHIEF, "audience": "officer", "idempotency_key": "d"}
        )
        assert status == 201 and body["audience"] == "officer"
        await until(lambda: len(tw.messages) == 1)
    assert [m.to for m in tw.messages] == [CHIEF]


async def _post_signed(url: str, params: dict[str, str], token: str = TOKEN) -> int:
    signature = RequestValidator(token).compute_signature(url, params)
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=params, headers={"X-Twilio-Signature": signature}) as r:
            return r.status


async def test_forged_and_unsigned_webhooks_are_refused(
    live_store: Store, tw: SimulatedTwilio
) -> None:
    """No signature or one made with another token gets 403 JSON; the text is unchanged."""
    async with running_gateway(live_store, tw) as gw:
        message = await delivered_order(gw, live_store)
        row = await live_store.sms.get(message.id)
        assert row is not None and row.provider_sid is not None
        url = gw.url + "/twilio/status"
        params = {"MessageSid": row.provider_sid, "MessageStatus": "failed", "ErrorCode": "30008"}
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=params) as response:
                assert response.status == 403
                body = await response.json()
        assert body["error"] == "bad_signature" and "message" in body and "details" in body
        assert await _post_signed(url, params, token="forged") == 403
        reply = {"MessageSid": "SMx", "From": CITIZEN, "Body": "3"}
        assert await _post_signed(gw.url + "/twilio/inbound", reply, token="forged") == 403
    row = await live_store.sms.get(message.id)
    assert row is not None and row.status == "delivered"
    assert await live_store.sms.inbound() == []


async def test_out_of_order_and_repeated_callbacks_end_delivered(
    live_store: Store, tw: SimulatedTwilio
) -> None:
    """delivered before sent, each twice: the text ends delivered and stays there."""
    tw.faults.duplicate_callbacks = True
    tw.faults.reorder_callbacks = True
    async with running_gateway(live_store, tw) as gw:
        message = await order(gw)
        async with asyncio.timeout(5):
            await until(lambda: tw.stats.callbacks_posted == 4)
            await tw.callbacks_idle()
    row = await live_store.sms.get(message.id)
    assert row is not None and row.status == "delivered"
    statuses = [e.status for e in await live_store.sms.events(message.id) if e.kind == "status"]
    # Callbacks are posted by several senders at once: only the first is in a fixed place.
    assert statuses[0] == "delivered"
    assert sorted(statuses) == ["delivered", "delivered", "sent", "sent"]


async def test_undelivered_outcome_is_recorded_with_its_code(
    live_store: Store, tw: SimulatedTwilio
) -> None:
    """A handset that cannot be reached ends undelivered with Twilio's 30003."""
    tw.set_outcome(CHIEF, "undelivered")
    async with running_gateway(live_store, tw) as gw:
        message = await order(gw)
        await until(lambda: status_of(live_store, message, "undelivered"))
    row = await live_store.sms.get(message.id)
    assert row is not None and row.error_code == "30003"


async def test_opt_out_reply_stops_citizen_texts(live_store: Store, tw: SimulatedTwilio) -> None:
    """After 退订 a rating request to that citizen is failed 21610 and never sent."""
    async with running_gateway(live_store, tw) as gw:
        assert await tw.send_reply(CITIZEN, FROM, "退订", gw.url + "/twilio/inbound") == 200
        assert await live_store.sms.is_opted_out(CITIZEN)
        rating = await gw.sms.enqueue(
            to=CITIZEN, template="rating_request", variables=RATING_VARS, idempotency_key="r1"
        )
    assert rating.status == "failed" and rating.error_code == "21610"
    assert tw.messages == []


async def test_reply_goes_to_handlers_and_unknown_numbers_are_kept(
    live_store: Store, tw: SimulatedTwilio
) -> None:
    """A "1" reply is taken by the registered handler; a reply nobody takes is still stored."""
    taken: list[InboundText] = []

    async def rating(reply: InboundText) -> bool:
        if reply.body.strip() in ("1", "2", "3"):
            taken.append(reply)
            return True
        return False

    async with running_gateway(live_store, tw) as gw:
        gw.sms.add_reply_handler(rating, "rating")
        hook = gw.url + "/twilio/inbound"
        assert await tw.send_reply(CITIZEN, FROM, "1", hook) == 200
        assert await tw.send_reply("+8615005311234", FROM, "你们是谁", hook) == 200
    assert [r.body for r in taken] == ["1"]
    replies = {r.body: r for r in await live_store.sms.inbound()}
    assert replies["1"].handled_by == "rating"
    assert replies["你们是谁"].handled_by is None
    assert replies["你们是谁"].from_number == "+8615005311234"


# Reclaiming at start needs the single-process lock, a file beside a SQLite store; on
# PostgreSQL the rows come back when their leases expire (several gateways: issue 14).
@pytest.mark.parametrize("store_location", ["sqlite"], indirect=True)
async def test_restart_after_crash_between_send_and_commit(
    live_store: Store, tw: SimulatedTwilio
) -> None:
    """Rows left sending are looked up: one that landed is not re-sent, one that did not is."""
    async with running_gateway(live_store, tw, run_outbox=False) as gw:
        landed = await order(gw, key="landed")
        lost = await order(gw, key="lost", to=CITIZEN)
        await live_store.sms.claim_due(10)  # the crashed worker had claimed both
        # The first reached Twilio before the crash; its sid was never committed.
        accepted = await gw.app[SMS_PROVIDER].send(landed.to, landed.body, None)
    assert await live_store.sms.counts() == {"sending": 2}
    async with running_gateway(live_store, tw) as gw:
        await until(lambda: status_of(live_store, lost, "delivered"))
        assert gw.worker.reconciled == 1 and gw.worker.sent == 1
    row = await live_store.sms.get(landed.id)
    assert row is not None and row.provider_sid == accepted.sid and not row.needs_lookup
    assert sorted(m.body for m in tw.messages) == sorted([landed.body, lost.body])


async def test_health_pings_store_and_provider(live_store: Store, tw: SimulatedTwilio) -> None:
    """GET /health answers 200 with the store and the SMS provider ok."""
    async with running_gateway(live_store, tw, run_outbox=False) as gw:
        async with aiohttp.ClientSession() as session:
            async with session.get(gw.url + "/health") as response:
                assert response.status == 200
                body = await response.json()
    assert body == {"status": "ok", "checks": {"store": {"status": "ok"}, "sms": {"status": "ok"}}}


async def test_health_reports_a_failing_provider(live_store: Store, tw: SimulatedTwilio) -> None:
    """When Twilio refuses the credentials, /health answers 503 naming sms."""
    async with running_gateway(live_store, tw, run_outbox=False, auth_token=_secret("bad")) as gw:
        async with aiohttp.ClientSession() as session:
            async with session.get(gw.url + "/health") as response:
                assert response.status == 503
                body = await response.json()
    assert body["checks"]["sms"]["status"] == "failing"
    assert "20003" in body["checks"]["sms"]["reason"]


def _secret(value: str) -> Secret:
    return Secret(value)


async def test_api_needs_the_bearer_token(live_store: Store, tw: SimulatedTwilio) -> None:
    """The texts API answers 401 JSON without the token, and lists/queues texts with it."""
    async with running_gateway(live_store, tw, run_outbox=False) as gw:
        async with aiohttp.ClientSession() as session:
            async with session.get(gw.url + "/api/sms/messages") as response:
                assert response.status == 401
                assert (await response.json())["error"] == "unauthorized"
            auth = {"Authorization": f"Bearer {API_TOKEN}"}
            payload = {
                "to": "0531-88123456",
                "template": "rectification_order",
                "variables": ORDER_VARS,
                "idempotency_key": "k",
            }
            async with session.post(gw.url + "/api/sms/messages", json=payload, headers=auth) as r:
                assert r.status == 400
                assert (await r.json())["error"] == "invalid_phone_number"
            payload["to"] = CHIEF
            async with session.post(gw.url + "/api/sms/messages", json=payload, headers=auth) as r:
                assert r.status == 201
                created = await r.json()
            one = gw.url + f"/api/sms/messages/{created['id']}"
            async with session.get(one, headers=auth) as r:
                assert r.status == 200
                shown = await r.json()
            for missing in ("999", "9" * 30):  # the second is beyond SQLite's integers
                async with session.get(gw.url + f"/api/sms/messages/{missing}", headers=auth) as r:
                    assert r.status == 404 and (await r.json())["error"] == "no_such_message"
    assert shown["message"]["idempotency_key"] == "k"
    assert [e["kind"] for e in shown["events"]] == ["enqueued"]


@pytest.fixture
def live_store(engine_live_store: Store) -> Store:
    """This module's tests on real time run on SQLite and on PostgreSQL."""
    return engine_live_store


async def test_a_fast_clock_keeps_its_leases_through_a_paced_batch(
    tmp_path: Path, tw: SimulatedTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    """On a clock 600 times faster than real time (the demo runs at 180), a batch sent at
    20 texts a second lasts an hour of the clock: every lease outlasts it, so each text
    goes once, in one pass, and none is given up as a lease lost."""
    fast = ScaledClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC), 600.0)
    async with (
        Store.open(tmp_path / "fast.sqlite3", fast) as store,
        running_gateway(store, tw, rate_per_second=20.0, workers=2) as gw,
    ):
        await on_file_as_chief(store, CHIEF)
        worker = gw.app[OUTBOX]
        assert worker.lease == worker.lease_real * 600
        for n in range(24):
            await order(gw, key=f"order-{n}")
        await until(lambda: len(tw.messages) >= 24, 30)
        await asyncio.sleep(0.5)  # nothing more goes out
        rows = await store.sms.recent(limit=100)
    assert len(tw.messages) == 24
    assert sorted(r.provider_sid or "" for r in rows) == sorted(m.sid for m in tw.messages)
    assert "lease lost" not in caplog.text
