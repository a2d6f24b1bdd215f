"""Appeals intake, one matter one case, merge and split, on a real store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from gateway.appeals.exceptions import (
    BadSubmission,
    CaseChangeRefused,
    ChannelRefused,
    ReferenceConflict,
)
from gateway.appeals.service import AppealService, SubmissionInput
from gateway.clock import ManualClock
from gateway.config import AppealsSection, Secret
from gateway.store import Store
from gateway.store.seed import demo_city, load_seed

WEB_TOKEN = "web-token-0123456789abcdef"
WECHAT_TOKEN = "wechat-token-0123456789abcdef"

NOISE = "楼下烧烤摊每天晚上营业到凌晨两点，噪音太大，孩子无法睡觉，请派出所管一管。"
NOISE_AGAIN = "楼下烧烤摊天天营业到凌晨两点，噪音很大孩子睡不着，希望派出所处理。"
BIKE = "我的电动车上周在幸福小区车棚被盗，报案后一直没有消息，想问问进展。"
PASSPORT = "办理护照已经三周了还没拿到，出入境窗口说在审核，请帮忙催一下。"


@pytest.fixture
async def appeals(store: Store, clock: ManualClock) -> AsyncIterator[AppealService]:
    """The service on a store seeded with the demo city's units."""
    await load_seed(store.units, demo_city(), "demo-city.toml")
    settings = AppealsSection(
        channels_web_token=Secret(WEB_TOKEN), channels_wechat_token=Secret(WECHAT_TOKEN)
    )
    yield AppealService(store, clock, settings)


def appeal(reference: str, text: str = NOISE, **changes: Any) -> SubmissionInput:
    values: dict[str, Any] = {
        "channel": "web",
        "reference": reference,
        "citizen_number": "13912345678",
        "citizen_name": "王芳",
        "category": "complaint",
        "text": text,
        "place": "幸福路12号",
        "unit_hint": "",
    }
    values.update(changes)
    return SubmissionInput(**values)


async def test_a_submission_opens_a_case_with_its_submission(appeals: AppealService) -> None:
    """A first submission opens a case (E.164 number, the text) and is its one submission."""
    intake = await appeals.submit(appeal("W1", citizen_number="139 1234 5678"))
    assert (intake.repeat, intake.replay) == (False, False)
    assert intake.case.citizen_number == "+8613912345678"
    assert intake.case.content == NOISE and intake.case.channel == "web"
    found = await appeals.case_file(intake.case.number)
    assert [s.reference for s in found.submissions] == ["W1"]
    assert found.channels == {"web": 1}


async def test_a_12345_transfer_opens_a_hotline_case(appeals: AppealService) -> None:
    """A 12345 transfer's case is of the hotline kind; its submission keeps the channel 12345."""
    intake = await appeals.submit(appeal("T-88", channel="12345"))
    assert intake.case.channel == "hotline"
    assert (await appeals.case_file(intake.case.number)).channels == {"12345": 1}


async def test_the_same_reference_twice_is_one_submission(
    appeals: AppealService, store: Store
) -> None:
    """Sent again with the same content, a reference answers the first submission."""
    first = await appeals.submit(appeal("W1"))
    again = await appeals.submit(appeal("W1"))
    assert again.replay and again.submission.id == first.submission.id
    assert again.case.number == first.case.number
    assert await store.cases.count() == 1


async def test_the_same_reference_with_other_content_is_a_conflict(
    appeals: AppealService, store: Store
) -> None:
    """A reference reused for another content is refused, naming the reference."""
    await appeals.submit(appeal("W1"))
    with pytest.raises(ReferenceConflict, match="W1") as caught:
        await appeals.submit(appeal("W1", text=BIKE))
    assert (caught.value.channel, caught.value.reference) == ("web", "W1")
    assert await store.cases.count() == 1


async def test_another_channel_may_reuse_a_reference(appeals: AppealService) -> None:
    """References are the channel's own: the same text under WeChat's W1 is its own submission."""
    first = await appeals.submit(appeal("W1"))
    other = await appeals.submit(appeal("W1", channel="wechat"))
    assert not other.replay and other.repeat
    assert other.case.number == first.case.number


async def test_a_similar_text_joins_the_open_case_across_channels(
    appeals: AppealService,
) -> None:
    """The same matter retold on WeChat joins the web case; the case counts both channels."""
    first = await appeals.submit(appeal("W1"))
    second = await appeals.submit(
        appeal("WX-9", NOISE_AGAIN, channel="wechat", citizen_number="+86 139-1234-5678")
    )
    assert second.repeat and second.case.number == first.case.number
    found = await appeals.case_file(first.case.number)
    assert found.channels == {"web": 1, "wechat": 1}
    assert [e.action for e in found.history][-1] == "repeat"


async def test_another_matter_of_the_same_citizen_opens_another_case(
    appeals: AppealService, store: Store
) -> None:
    """A dissimilar text with no shared unit is another matter: another case."""
    first = await appeals.submit(appeal("W1"))
    second = await appeals.submit(appeal("W2", BIKE))
    assert not second.repeat and second.case.number != first.case.number
    assert await store.cases.count() == 2


async def test_another_citizen_with_the_same_text_opens_another_case(
    appeals: AppealService,
) -> None:
    """Only the same citizen's submissions join: a neighbour's identical complaint is theirs."""
    first = await appeals.submit(appeal("W1"))
    second = await appeals.submit(appeal("W2", citizen_number="13800138000"))
    assert not second.repeat and second.case.number != first.case.number


async def test_same_category_and_unit_within_the_window_join(
    appeals: AppealService, clock: ManualClock
) -> None:
    """Same category and unit hint joins within the window, even with an unrelated text;
    after the window it opens a new case."""
    first = await appeals.submit(appeal("W1", unit_hint="LZ-DC-01"))
    clock.advance(timedelta(days=29))
    second = await appeals.submit(appeal("L-2", BIKE, channel="letter", unit_hint="LZ-DC-01"))
    assert second.repeat and second.case.number == first.case.number
    clock.advance(timedelta(days=31))
    third = await appeals.submit(appeal("L-3", PASSPORT, channel="letter", unit_hint="LZ-DC-01"))
    assert not third.repeat


async def test_a_closed_case_is_not_joined(appeals: AppealService, store: Store) -> None:
    """A repeat of a closed matter opens a new case instead of joining the closed one."""
    first = await appeals.submit(appeal("W1"))
    await store.cases.set_status(first.case.number, "closed", actor="A1")
    second = await appeals.submit(appeal("W2", NOISE_AGAIN))
    assert not second.repeat and second.case.number != first.case.number


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"citizen_number": "12345"}, "citizen_number"),
        ({"citizen_number": ""}, "citizen_number"),
        ({"channel": "fax"}, "channel"),
        ({"category": "gossip"}, "category"),
        ({"text": "  "}, "text"),
        ({"text": "长" * 2001}, "text"),
        ({"reference": "a/b"}, "reference"),
        ({"reference": "x" * 65}, "reference"),
        ({"citizen_name": "名" * 65}, "citizen_name"),
        ({"place": "路" * 201}, "place"),
        ({"unit_hint": "NO-SUCH-UNIT"}, "unit_hint"),
    ],
)
async def test_a_bad_submission_names_its_field(
    appeals: AppealService, store: Store, changes: dict[str, str], field: str
) -> None:
    """Every malformed field is refused before anything is written, naming the field."""
    with pytest.raises(BadSubmission) as caught:
        await appeals.submit(replace(appeal("W1"), **changes))
    assert caught.value.field == field
    assert await store.cases.count() == 0


def test_a_channel_may_only_submit_as_itself(appeals: AppealService) -> None:
    """Its own token passes; another channel's token, a wrong one, none, or a shut channel fail."""
    appeals.authenticate("web", WEB_TOKEN)
    with pytest.raises(ChannelRefused, match="'wechat' channel's"):
        appeals.authenticate("web", WECHAT_TOKEN)
    with pytest.raises(ChannelRefused, match="wrong"):
        appeals.authenticate("web", "not-the-token-at-all")
    with pytest.raises(ChannelRefused, match="missing"):
        appeals.authenticate("web", None)
    with pytest.raises(ChannelRefused, match="shut"):
        appeals.authenticate("letter", WEB_TOKEN)
    with pytest.raises(BadSubmission, match="channel"):
        appeals.authenticate("fax", WEB_TOKEN)


async def test_merge_moves_every_submission_and_writes_both_histories(
    appeals: AppealService, store: Store
) -> None:
    """Merging a case moves its submissions to the target; both histories say so."""
    first = await appeals.submit(appeal("W1"))
    second = await appeals.submit(appeal("V-1", BIKE, channel="visit"))
    merged = await appeals.merge(second.case.number, first.case.number, actor="S01", note="同一事")
    assert merged.case.number == first.case.number
    assert merged.channels == {"web": 1, "visit": 1}
    assert merged.history[-1].action == "merged_from"
    gone = await appeals.case_file(second.case.number)
    assert gone.case.merged_into_number == first.case.number and not gone.submissions
    assert gone.history[-1].action == "merged" and "同一事" in gone.history[-1].note
    assert await store.cases.open_count() == 1


async def test_merge_refusals_name_the_reason(appeals: AppealService, store: Store) -> None:
    """Into itself, into a closed case, from or into a merged case: refused, nothing changed."""
    first = await appeals.submit(appeal("W1"))
    second = await appeals.submit(appeal("W2", BIKE))
    third = await appeals.submit(appeal("W3", PASSPORT))
    with pytest.raises(CaseChangeRefused, match="into itself"):
        await appeals.merge(first.case.number, first.case.number, actor="S01")
    await store.cases.set_status(third.case.number, "closed", actor="S01")
    with pytest.raises(CaseChangeRefused, match="is closed"):
        await appeals.merge(first.case.number, third.case.number, actor="S01")
    await appeals.merge(second.case.number, first.case.number, actor="S01")
    with pytest.raises(CaseChangeRefused, match="already merged"):
        await appeals.merge(second.case.number, first.case.number, actor="S01")
    with pytest.raises(CaseChangeRefused, match="merge into that case"):
        await appeals.merge(first.case.number, second.case.number, actor="S01")
    with pytest.raises(BadSubmission, match="actor"):
        await appeals.merge(first.case.number, second.case.number, actor=" ")


async def test_split_moves_chosen_submissions_to_a_new_case(appeals: AppealService) -> None:
    """Splitting off a submission opens a case for it; both histories say so."""
    first = await appeals.submit(appeal("W1", unit_hint="LZ-DC-01"))
    wrong = await appeals.submit(appeal("W2", BIKE, unit_hint="LZ-DC-01"))
    assert wrong.repeat
    new = await appeals.split(first.case.number, [wrong.submission.id], actor="S01")
    assert new.case.number != first.case.number and new.case.content == BIKE
    assert [s.reference for s in new.submissions] == ["W2"]
    assert new.history[-1].action == "split_from"
    old = await appeals.case_file(first.case.number)
    assert [s.reference for s in old.submissions] == ["W1"]
    assert old.history[-1].action == "split" and new.case.number in old.history[-1].note


async def test_split_refusals_name_the_reason(appeals: AppealService) -> None:
    """A case of one submission, a stranger's id, or every submission: refused."""
    alone = await appeals.submit(appeal("W1"))
    with pytest.raises(CaseChangeRefused, match="only a case of several"):
        await appeals.split(alone.case.number, [alone.submission.id], actor="S01")
    again = await appeals.submit(appeal("W2", NOISE_AGAIN))
    with pytest.raises(CaseChangeRefused, match="no submission 999"):
        await appeals.split(alone.case.number, [999], actor="S01")
    with pytest.raises(CaseChangeRefused, match="leave it empty"):
        await appeals.split(
            alone.case.number, [alone.submission.id, again.submission.id], actor="S01"
        )
    with pytest.raises(BadSubmission, match="submissions"):
        await appeals.split(alone.case.number, [], actor="S01")


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
