"""The demo's appeals: five channels through the real API, one case per matter."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

from polling import until

from gateway.appeals.similarity import similarity
from gateway.appeals.web import APPEALS
from gateway.clock import ScaledClock
from gateway.config import AppealsSection
from gateway.demo.appeals import (
    BACKLOG,
    INTAKE_ORDER,
    MATTERS,
    appeals_backlog,
    appeals_during_hour,
    appeals_morning,
    appeals_script,
    demo_citizens,
    hotline_followups,
)
from gateway.demo.bookings import bookings_day
from gateway.demo.stack import running_stack


def test_each_matter_retold_is_close_enough_to_join_and_apart_from_the_others() -> None:
    """A retelling passes the repeat threshold; two different matters stay below it."""
    threshold = AppealsSection().similarity_threshold
    for matter in MATTERS:
        assert similarity(matter.first, matter.again) >= threshold, matter.first
    for one, other in combinations(MATTERS, 2):
        assert similarity(one.first, other.again) < threshold, (one.first, other.again)


def test_the_script_uses_every_channel_and_repeats_across_channels() -> None:
    """36 citizens: each intake channel used, repeats on a channel other than the first."""
    rng = random.Random(2026)
    citizens = demo_citizens(rng, set(), 36)
    morning, hour = appeals_script(rng, "20261130", citizens)
    everything = morning + hour
    assert {a.channel for a in everything} == set(INTAKE_ORDER)
    assert {a.channel for a in morning} <= {"web", "wechat", "letter"}
    by_citizen = defaultdict(list)
    for appeal in everything:
        by_citizen[appeal.submission.citizen_number].append(appeal)
    repeated = [tellings for tellings in by_citizen.values() if len(tellings) == 2]
    assert len(repeated) >= 8
    assert all(first.channel != again.channel for first, again in repeated)
    assert len({a.submission.reference for a in everything}) == len(everything)


async def test_every_channel_reaches_one_case_per_matter(tmp_path: Path) -> None:
    """Posted with each channel's token, every citizen's matter is one case; resends are
    replays; a WeChat appeal after a hotline message is merged by hand into its case."""
    clock = ScaledClock(datetime(2026, 11, 30, 1, 0, tzinfo=UTC), 3600.0)
    async with running_stack(
        tmp_path / "data", clock, run_scheduler=False, intake_channels=INTAKE_ORDER
    ) as stack:
        called = [
            await stack.store.cases.open_case(
                channel="hotline",
                category="complaint",
                actor="ivr",
                citizen_number=f"+861391234567{n}",
                content="语音留言",
                recording=f"messages/{n}.wav",
                call_linkedid=f"1764464400.{n}",
            )
            for n in range(2)
        ]
        rng = random.Random(7)
        citizens = demo_citizens(rng, set(), 20)
        day, later = await appeals_morning(stack, rng, citizens, lambda _: None)
        await appeals_during_hour(stack, day, later, rng, lambda _: None)
        await hotline_followups(stack, day, rng, lambda _: None)
        assert day.refused == []
        assert day.replays == min(2, sum(1 for a in later if a.channel == "12345"))
        assert sum(day.joined.values()) + day.merged_by_hand == day.intended_repeats
        assert day.merged_by_hand == 2
        cases = [c for c in await stack.store.cases.find(limit=1000) if c.merged_into is None]
        channels = await stack.app[APPEALS].channels([c.id for c in cases])
        by_citizen = defaultdict(list)
        for case in cases:
            by_citizen[case.citizen_number].append(case)
        assert len(by_citizen) == len(citizens) + len(called)
        assert all(len(found) == 1 for found in by_citizen.values())
        told = sum(sum(counted.values()) for counted in channels.values())
        assert told == sum(day.posted.values()) + len(called)
        for case in called:
            assert channels[case.id] == {"hotline": 1, "wechat": 1}


async def test_bookings_are_confirmed_and_cancelled_by_text(tmp_path: Path) -> None:
    """Booked through the API with the bookings credential: a confirmation each, and a
    cancellation text for each of the two cancelled."""
    clock = ScaledClock(datetime(2026, 11, 30, 1, 0, tzinfo=UTC), 3600.0)
    async with running_stack(tmp_path / "data", clock, run_scheduler=False, bookings=True) as stack:
        rng = random.Random(3)
        day = await bookings_day(stack, rng, demo_citizens(rng, set(), 6), lambda _: None)
        assert day.refused == []
        assert (sum(day.booked.values()), day.cancelled) == (6, 2)
        texts = Counter(t.template for t in await stack.store.sms.recent(limit=100))
        assert texts == {"booking_confirmation": 6, "booking_cancelled": 2}


async def test_last_weeks_backlog_is_overdue_and_chased(tmp_path: Path) -> None:
    """The backlog's cases carry their own days' numbers and terms, and the running
    gateway's chasing texts each owner unit's chief that its case is overdue."""
    clock = ScaledClock(datetime(2026, 12, 1, 1, 0, tzinfo=UTC), 3600.0)  # Tuesday 09:00
    async with running_stack(tmp_path / "data", clock) as stack:
        rng = random.Random(5)
        numbers = await appeals_backlog(stack, rng, demo_citizens(rng, set(), len(BACKLOG)))
        assert len(numbers) == len(BACKLOG)
        assert numbers[0].startswith("TS20261123-")  # six working days before
        assert not any("20261201" in n for n in numbers)  # none of them today's

        async def chased() -> set[str]:
            texts = await stack.store.sms.recent(limit=1000)
            return {t.variables["case_ref"] for t in texts if t.template == "case_overdue"}

        found = await until(lambda: _all(chased, set(numbers)), seconds=30)
        assert found
        for number in numbers:
            case = await stack.store.cases.get(number)
            assert case is not None and case.owner_unit_code is not None


async def _all(check: Any, wanted: set[str]) -> bool:
    return wanted <= await check()
