"""The demo's appeals: five channels through the real API, one case per matter."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path

from gateway.appeals.similarity import similarity
from gateway.appeals.web import APPEALS
from gateway.clock import ScaledClock
from gateway.config import AppealsSection
from gateway.demo.appeals import (
    INTAKE_ORDER,
    MATTERS,
    appeals_during_hour,
    appeals_morning,
    appeals_script,
    demo_citizens,
    hotline_followups,
)
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
