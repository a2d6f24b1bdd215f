"""The outbox in the store: one row per key, claimed once, statuses never backwards."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.clock import ManualClock
from gateway.store import Store
from gateway.store.sms import NewText

GRACE = timedelta(minutes=1)


def _text(key: str = "order-1", **changes: object) -> NewText:
    fields: dict[object, object] = {
        "purpose": "rectification_order",
        "audience": "officer",
        "to": "+8613912345678",
        "sender": "+8610690000001",
        "template": "rectification_order",
        "variables": {"case_ref": "LZ1"},
        "body": "【鲁州公安】整改",
        "encoding": "UCS-2",
        "segments": 1,
        "idempotency_key": key,
        "next_attempt_at": None,
    }
    fields.update(changes)
    return NewText(**fields)  # type: ignore[arg-type]


async def test_same_key_returns_the_same_row(store: Store, clock: ManualClock) -> None:
    """Inserting the same idempotency key twice yields one row."""
    first, created = await store.sms.insert_or_get(_text(next_attempt_at=clock.now()))
    again, created_again = await store.sms.insert_or_get(_text(next_attempt_at=clock.now()))
    assert created and not created_again
    assert again.id == first.id
    assert await store.sms.counts() == {"queued": 1}


async def test_claim_takes_due_rows_once(store: Store, clock: ManualClock) -> None:
    """A due row is claimed by one claim only; a future row is not claimed yet."""
    await store.sms.insert_or_get(_text("a", next_attempt_at=clock.now()))
    await store.sms.insert_or_get(_text("b", next_attempt_at=clock.now() + timedelta(hours=1)))
    first = await store.sms.claim_due(10, owner="w1", lease=timedelta(hours=2))
    second = await store.sms.claim_due(10, owner="w2")
    assert [m.idempotency_key for m in first] == ["a"]
    assert first[0].status == "sending" and first[0].attempts == 1
    assert second == []
    clock.advance(3600)
    assert [m.idempotency_key for m in await store.sms.claim_due(10, owner="w2")] == ["b"]


async def test_interrupted_send_is_requeued_for_a_look_up(store: Store, clock: ManualClock) -> None:
    """At start, the lock holder requeues others' rows left sending, marked for a look-up
    after a delay that lets a request the dead worker left in flight land first."""
    await store.sms.insert_or_get(_text(next_attempt_at=clock.now()))
    [claimed] = await store.sms.claim_due(1, owner="dead")
    assert await store.sms.reclaim_interrupted("alive", timedelta(seconds=30)) == 1
    row = await store.sms.get(claimed.id)
    assert row is not None and row.status == "queued" and row.needs_lookup
    assert row.lease_owner is None
    assert row.next_attempt_at == clock.now() + timedelta(seconds=30)  # in-flight may land


async def test_a_lease_is_reclaimed_only_when_expired(store: Store, clock: ManualClock) -> None:
    """Another worker cannot take a leased row; once the lease expires it is requeued for a
    look-up, and the first attempt's time survives every later claim."""
    await store.sms.insert_or_get(_text(next_attempt_at=clock.now()))
    [held] = await store.sms.claim_due(1, owner="w1", lease=timedelta(minutes=5))
    first = held.first_attempt_at
    assert first is not None and held.lease_owner == "w1"
    clock.advance(299)
    assert await store.sms.claim_due(5, owner="w2") == []
    assert await store.sms.renew(held.id, "w1", timedelta(minutes=5))
    assert not await store.sms.renew(held.id, "w2", timedelta(minutes=5))
    clock.advance(299)
    assert await store.sms.claim_due(5, owner="w2") == []
    clock.advance(2)
    [again] = await store.sms.claim_due(5, owner="w2")
    assert again.id == held.id and again.needs_lookup and again.lease_owner == "w2"
    assert again.first_attempt_at == first and again.claimed_at is not None
    assert again.claimed_at > first
    assert not await store.sms.renew(held.id, "w1", timedelta(minutes=5))


async def test_one_provider_message_belongs_to_one_row(store: Store, clock: ManualClock) -> None:
    """Two identical texts in doubt adopt distinct provider messages; a sid taken by one row
    is refused to any other, by look-up or by record."""
    a, _ = await store.sms.insert_or_get(_text("a", next_attempt_at=clock.now()))
    b, _ = await store.sms.insert_or_get(_text("b", next_attempt_at=clock.now()))
    await store.sms.claim_due(2, owner="w1")
    found = [("SM1", "delivered"), ("SM2", "sent")]
    assert await store.sms.adopt(a.id, found) == "SM1"
    assert await store.sms.adopt(b.id, found) == "SM2"
    c, _ = await store.sms.insert_or_get(_text("c", next_attempt_at=clock.now()))
    await store.sms.claim_due(1, owner="w1")
    assert await store.sms.adopt(c.id, found) is None
    assert await store.sms.record_accepted(c.id, "SM2", "queued") is None
    row = await store.sms.get(c.id)
    assert row is not None and row.provider_sid is None and row.status == "sending"


async def test_statuses_never_move_backwards(store: Store, clock: ManualClock) -> None:
    """delivered then a late sent leaves it delivered; a repeated delivered changes nothing."""
    await store.sms.insert_or_get(_text(next_attempt_at=clock.now()))
    [claimed] = await store.sms.claim_due(1)
    await store.sms.record_accepted(claimed.id, "SM1", "queued")
    assert (await store.sms.apply_status("SM1", "delivered", None)).applied
    assert not (await store.sms.apply_status("SM1", "sent", None)).applied
    assert not (await store.sms.apply_status("SM1", "delivered", None)).applied
    row = await store.sms.get(claimed.id)
    assert row is not None and row.status == "delivered" and row.final_at is not None


async def test_callback_before_the_sid_is_stored_is_applied_later(
    store: Store, clock: ManualClock
) -> None:
    """A status for a sid not yet recorded is kept and applied when the sid is stored."""
    await store.sms.insert_or_get(_text(next_attempt_at=clock.now()))
    [claimed] = await store.sms.claim_due(1)
    early = await store.sms.apply_status("SM9", "undelivered", "30003")
    assert early.message_id is None and not early.applied
    row = await store.sms.record_accepted(claimed.id, "SM9", "queued")
    assert row is not None and row.status == "undelivered" and row.error_code == "30003"


async def test_reply_stored_once_per_sid(store: Store) -> None:
    """The same inbound webhook twice stores one reply."""
    first, created = await store.sms.store_inbound("SMr", "+8613800138000", "+861069", "1", GRACE)
    again, created_again = await store.sms.store_inbound(
        "SMr", "+8613800138000", "+861069", "1", GRACE
    )
    assert created and not created_again and first.id == again.id


async def test_history_records_each_step(store: Store, clock: ManualClock) -> None:
    """A text's events tell its story in order."""
    message, _ = await store.sms.insert_or_get(_text(next_attempt_at=clock.now()))
    await store.sms.claim_due(1)
    await store.sms.record_accepted(message.id, "SM2", "queued")
    await store.sms.apply_status("SM2", "sent", None)
    kinds = [e.kind for e in await store.sms.events(message.id)]
    assert kinds == ["enqueued", "claimed", "accepted", "status"]


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
