"""A citizen's reply is never lost to a failing handler: the webhook answers 500, Twilio's
retry is offered again, and a supervised loop re-offers what is still unsettled."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sms_support import ACCOUNT, CITIZEN, FROM, TOKEN, running_gateway, until

from gateway.clock import ManualClock
from gateway.sim.twilio import SimulatedTwilio
from gateway.sms.service import OFFER_GRACE
from gateway.store import Store
from gateway.store.sms import InboundText
from gateway.web.sms import REPLIES


class FlakyRating:
    """A rating handler that fails its first ``failures`` calls (a store blip, a bug)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.taken: list[str] = []

    async def __call__(self, reply: InboundText) -> bool:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("database is locked")
        self.taken.append(reply.body)
        return True


async def handled_by(store: Store, name: str | None) -> bool:
    replies = await store.sms.inbound()
    return bool(replies) and replies[0].handled_by == name and replies[0].settled


async def test_failed_handler_answers_500_and_twilios_retry_is_handled(
    live_store: Store, tw: SimulatedTwilio
) -> None:
    """The first delivery of a rating whose handler fails gets 500; Twilio's retry of the same
    message is offered again (not taken for a duplicate) and the rating is recorded once."""
    rating = FlakyRating(failures=1)
    async with running_gateway(live_store, tw, run_outbox=False) as gw:
        gw.sms.add_reply_handler(rating, "rating")
        hook = gw.url + "/twilio/inbound"
        assert await tw.send_reply(CITIZEN, FROM, "3", hook) == 500
        sid = tw.inbound[-1]["MessageSid"]
        [stored] = await live_store.sms.inbound()
        assert stored.handled_by is None and not stored.settled and stored.offers == 1
        assert stored.offer_error is not None and "database is locked" in stored.offer_error
        assert await tw.send_reply(CITIZEN, FROM, "3", hook, sid=sid) == 200
        assert await tw.send_reply(CITIZEN, FROM, "3", hook, sid=sid) == 200  # a late duplicate
    assert rating.taken == ["3"] and rating.calls == 2
    assert await handled_by(live_store, "rating")


async def test_unsettled_replies_are_offered_again_by_the_loop(tmp_path: Path) -> None:
    """With no retry from Twilio, a reply whose handler failed is re-offered after its backoff,
    and one stored just before a crash (never offered) is re-offered after the grace time."""
    clock = ManualClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC))
    rating = FlakyRating(failures=2)
    async with (
        Store.open(tmp_path / "gateway.sqlite3", clock) as store,
        SimulatedTwilio(ACCOUNT, TOKEN, time_scale=0.1, now=clock.now) as tw,
    ):
        # A reply stored by a gateway that died before any handler ran.
        await store.sms.store_inbound("SMcrashed", "+8615005311234", FROM, "1", OFFER_GRACE)
        async with running_gateway(store, tw) as gw:
            gw.sms.add_reply_handler(rating, "rating")
            assert await tw.send_reply(CITIZEN, FROM, "2", gw.url + "/twilio/inbound") == 500
            clock.advance(1)  # past the backoff: the loop offers it again, and it fails again
            await until(lambda: rating.calls == 2)
            clock.advance(1)
            await until(lambda: rating.taken == ["2"])
            assert rating.calls == 3

            async def two_settled() -> bool:
                # The handler has returned; its reply is marked handled just after.
                return any(r.body == "2" and r.settled for r in await store.sms.inbound())

            await until(two_settled)
            assert [r.body for r in await store.sms.due_offers(10)] == []  # "1" not yet due
            clock.advance(OFFER_GRACE.total_seconds())
            await until(lambda: rating.taken == ["2", "1"])

            async def both_settled() -> dict[str, InboundText] | None:
                # The handler has returned; its reply is marked handled just after.
                found = {r.body: r for r in await store.sms.inbound()}
                return found if all(r.settled for r in found.values()) else None

            replies = await until(both_settled)
            assert not gw.app[REPLIES].loops["replies"].degraded
    assert replies["2"].handled_by == "rating" and replies["2"].settled
    assert replies["1"].handled_by == "rating" and replies["1"].settled


@pytest.fixture
def live_store(engine_live_store: Store) -> Store:
    """This module's tests on real time run on SQLite and on PostgreSQL."""
    return engine_live_store
