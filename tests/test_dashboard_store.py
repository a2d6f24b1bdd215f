"""The store's read methods behind the dashboard: hotline figures and case counts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from gateway.calllog.builder import CallRecord
from gateway.clock import ManualClock
from gateway.store import Store, StoreError

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def record(linkedid: str, started: datetime, **changes: object) -> CallRecord:
    base = CallRecord(
        pbx="main",
        linkedid=linkedid,
        uniqueid=linkedid,
        direction="inbound",
        caller_number="+8613912345678",
        caller_name=None,
        dialled_number="9600110",
        started_at=started,
        answered_at=started,
        ended_at=started + timedelta(seconds=60),
        duration_s=60.0,
        billable_s=60.0,
        disposition="ANSWERED",
        hangup_cause=16,
        hangup_cause_text="Normal Clearing",
        ivr_path=(),
        queue=None,
        queue_wait_s=None,
        agent=None,
        recording=None,
        case_id=None,
        dtmf="",
        complete=True,
        partial=False,
        note=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def test_hotline_figures_count_inbound_calls_of_the_period(store: Store) -> None:
    """Agent-taken, abandoned and mean wait are counted over inbound calls in the period only."""
    await store.calls.upsert(
        [
            record("1.1", T0, queue="hotline", queue_wait_s=10.0, agent="Local/8001"),
            record(
                "1.2",
                T0 + timedelta(minutes=1),
                queue="hotline",
                queue_wait_s=30.0,
                agent="Local/8002",
            ),
            record(
                "1.3",
                T0 + timedelta(minutes=2),
                queue="hotline",
                queue_wait_s=20.0,
                disposition="ABANDONED",
            ),
            record("1.4", T0 + timedelta(minutes=3)),  # IVR only, no queue
            record("1.5", T0 + timedelta(minutes=4), direction="outbound", agent="x"),
            record("1.6", T0 - timedelta(days=1), agent="Local/8001"),  # yesterday
        ]
    )
    figures = await store.calls.hotline_figures(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert (figures.total, figures.answered_by_agent, figures.abandoned) == (4, 2, 1)
    assert figures.mean_queue_wait_s == pytest.approx(20.0)


async def test_hotline_figures_of_an_empty_period_are_zero(store: Store) -> None:
    """With no calls the counts are zero and the mean wait is unknown (None), not 0."""
    figures = await store.calls.hotline_figures(T0, T0 + timedelta(hours=1))
    assert (figures.total, figures.answered_by_agent, figures.abandoned) == (0, 0, 0)
    assert figures.mean_queue_wait_s is None


async def test_hotline_figures_refuse_a_backwards_period(store: Store) -> None:
    """A period that ends before it starts is an error naming both ends."""
    with pytest.raises(StoreError, match=r"ends .* before it starts"):
        await store.calls.hotline_figures(T0, T0 - timedelta(hours=1))


async def test_cases_opened_by_category_and_open_count(store: Store, clock: ManualClock) -> None:
    """Cases opened in the period are counted per category; open ones exclude resolved."""
    yesterday = await store.cases.open_case(
        channel="web", category="complaint", actor="test", subject="s", content="c"
    )
    clock.advance(86400)
    since = clock.now()
    first = await store.cases.open_case(
        channel="hotline", category="complaint", actor="test", subject="s", content="c"
    )
    await store.cases.open_case(
        channel="hotline", category="consultation", actor="test", subject="s", content="c"
    )
    await store.cases.open_case(
        channel="web", category="complaint", actor="test", subject="s", content="c"
    )
    await store.cases.set_status(first.number, "resolved", actor="test")
    await store.cases.set_status(yesterday.number, "closed", actor="test")
    counts = await store.cases.opened_by_category(since, since + timedelta(days=1))
    assert counts == {"complaint": 2, "consultation": 1}
    assert await store.cases.open_count() == 2


async def test_cases_opened_refuse_a_backwards_period(store: Store) -> None:
    """A period that ends before it starts is an error."""
    with pytest.raises(StoreError, match="before it starts"):
        await store.cases.opened_by_category(T0, T0)


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
