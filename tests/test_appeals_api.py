"""The appeals API on the running gateway: channel credentials, bad input, repeats,
idempotent references, merge and split."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.clock import ScaledClock
from gateway.demo.stack import Stack, running_stack

TOKENS = {
    "web": "web-portal-0123456789abc",
    "wechat": "wechat-acct-0123456789ab",
    "visit": "visit-clerk-0123456789ab",
    "12345": "city-12345-0123456789abc",
}
NOISE = "楼下烧烤摊每天晚上营业到凌晨两点，噪音太大，孩子无法睡觉，请派出所管一管。"
NOISE_AGAIN = "楼下烧烤摊天天营业到凌晨两点，噪音很大孩子睡不着，希望派出所处理。"
BIKE = "我的电动车上周在幸福小区车棚被盗，报案后一直没有消息，想问问进展。"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The gateway (no scheduler) with four intake channels open, Monday 10:00 in Shanghai."""
    clock = ScaledClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC), 1.0)
    overrides = [f"appeals.channels_{name}_token={token}" for name, token in TOKENS.items()]
    async with running_stack(
        tmp_path / "data", clock, run_scheduler=False, overrides=overrides
    ) as running:
        yield running


def appeal(reference: str, channel: str = "web", **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "channel": channel,
        "reference": reference,
        "citizen_number": "13912345678",
        "citizen_name": "王芳",
        "category": "complaint",
        "text": NOISE,
        "place": "幸福路12号",
    }
    values.update(changes)
    return values


async def call(
    stack: Stack,
    method: str,
    path: str,
    body: Any = None,
    *,
    channel_token: str | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {stack.api_token}"}
    if channel_token is not None:
        headers["X-Channel-Token"] = channel_token
    async with aiohttp.ClientSession() as http:
        kwargs: dict[str, Any] = {"headers": headers}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        async with http.request(method, stack.url + path, **kwargs) as response:
            return response.status, await response.json()


async def submit(stack: Stack, body: dict[str, Any]) -> tuple[int, Any]:
    token = TOKENS.get(body.get("channel", ""), "")
    return await call(stack, "POST", "/api/cases", body, channel_token=token)


async def test_a_submission_opens_a_case_and_a_replay_answers_it_again(stack: Stack) -> None:
    """201 with a new case; the same reference again is 200 with the same case, nothing added."""
    status, first = await submit(stack, appeal("W1"))
    assert status == 201 and not first["repeat"] and not first["replay"]
    assert first["case"]["citizen_number"] == "+8613912345678"
    status, again = await submit(stack, appeal("W1"))
    assert status == 200 and again["replay"]
    assert again["case"]["number"] == first["case"]["number"]
    assert await stack.store.cases.count() == 1


async def test_the_same_reference_with_other_content_is_409_naming_it(stack: Stack) -> None:
    """A reused reference with another text: 409 naming the channel and the reference."""
    await submit(stack, appeal("W1"))
    status, body = await submit(stack, appeal("W1", text=BIKE))
    assert (status, body["error"]) == (409, "reference_conflict")
    assert body["details"] == {"channel": "web", "reference": "W1"}


async def test_repeats_from_three_channels_make_one_case(stack: Stack) -> None:
    """The same matter from the web, WeChat and 12345 is one case showing each channel."""
    _, first = await submit(stack, appeal("W1"))
    _, second = await submit(stack, appeal("WX-1", "wechat", text=NOISE_AGAIN))
    _, third = await submit(stack, appeal("GD-77", "12345", citizen_number="+86 139 1234 5678"))
    assert second["repeat"] and third["repeat"]
    number = first["case"]["number"]
    assert {second["case"]["number"], third["case"]["number"]} == {number}
    status, case = await call(stack, "GET", f"/api/cases/{number}")
    assert status == 200
    assert case["channels"] == {"web": 1, "wechat": 1, "12345": 1}
    assert [h["action"] for h in case["history"]] == ["opened", "repeat", "repeat"]
    assert case["terms"]["owner_source"] == "none" and not case["terms"]["estimated"]
    assert case["deadline"] == case["terms"]["answer_by"]


@pytest.mark.parametrize(
    ("token_of", "channel", "status", "error"),
    [
        ("wechat", "web", 403, "channel_refused"),  # another channel's credential
        (None, "web", 403, "channel_refused"),  # none
        ("web", "letter", 403, "channel_refused"),  # a shut channel
        ("web", "fax", 400, "bad_field"),  # an unknown channel
    ],
)
async def test_a_channel_may_only_submit_as_itself(
    stack: Stack, token_of: str | None, channel: str, status: int, error: str
) -> None:
    """Only the channel's own credential lets it submit; nothing is stored otherwise."""
    token = TOKENS[token_of] if token_of else None
    got, body = await call(stack, "POST", "/api/cases", appeal("W1", channel), channel_token=token)
    assert (got, body["error"]) == (status, error)
    assert await stack.store.cases.count() == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"citizen_number": "1391234"}, "citizen_number"),
        ({"text": ""}, "text"),
        ({"text": "长" * 2001}, "text"),
        ({"category": "gossip"}, "category"),
        ({"unit_hint": "NO-SUCH"}, "unit_hint"),
        ({"reference": "x" * 65}, "reference"),
        ({"place": 12}, "place"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_a_bad_field_is_400_naming_it(
    stack: Stack, changes: dict[str, Any], field: str
) -> None:
    """A missing, oversized, unknown or malformed field: 400 naming the field, nothing stored."""
    status, body = await submit(stack, {**appeal("W1"), **changes})
    assert (status, body["error"], body["details"]["field"]) == (400, "bad_field", field)
    assert await stack.store.cases.count() == 0


async def test_a_body_that_is_not_an_object_is_400(stack: Stack) -> None:
    """Not JSON, or JSON that is not an object: 400."""
    status, body = await call(stack, "POST", "/api/cases", raw=b"{", channel_token=TOKENS["web"])
    assert (status, body["error"]) == (400, "bad_json")
    status, body = await call(stack, "POST", "/api/cases", [1], channel_token=TOKENS["web"])
    assert (status, body["error"]) == (400, "bad_json")


async def test_merge_and_split_by_hand(stack: Stack) -> None:
    """Staff merge one case into another, then split a submission off again."""
    _, first = await submit(stack, appeal("W1"))
    _, second = await submit(stack, appeal("V-1", "visit", text=BIKE))
    a, b = first["case"]["number"], second["case"]["number"]
    status, merged = await call(stack, "POST", f"/api/cases/{b}/merge", {"into": a, "actor": "S01"})
    assert status == 200 and merged["channels"] == {"web": 1, "visit": 1}
    visit = next(s["id"] for s in merged["submissions"] if s["channel"] == "visit")
    status, split = await call(
        stack, "POST", f"/api/cases/{a}/split", {"submissions": [visit], "actor": "S01"}
    )
    assert status == 201 and split["channels"] == {"visit": 1}
    assert split["number"] not in (a, b)
    _, after = await call(stack, "GET", f"/api/cases/{a}")
    assert [h["action"] for h in after["history"]] == ["opened", "merged_from", "split"]


async def test_merge_and_split_refusals_are_clear_4xx(stack: Stack) -> None:
    """Into itself, unknown case, one submission, bad body: 409/404/400 with the reason."""
    _, first = await submit(stack, appeal("W1"))
    a = first["case"]["number"]
    status, body = await call(stack, "POST", f"/api/cases/{a}/merge", {"into": a, "actor": "S"})
    assert (status, body["error"]) == (409, "case_change_refused")
    assert "into itself" in body["message"]
    status, body = await call(
        stack, "POST", f"/api/cases/{a}/merge", {"into": "TS20261130-9999", "actor": "S"}
    )
    assert (status, body["error"]) == (404, "no_such_case")
    status, body = await call(
        stack, "POST", f"/api/cases/{a}/split", {"submissions": [1], "actor": "S"}
    )
    assert (status, body["error"]) == (409, "case_change_refused")
    assert "only a case of several" in body["message"]
    status, body = await call(stack, "POST", f"/api/cases/{a}/split", {"submissions": "1"})
    assert (status, body["details"]["field"]) == (400, "submissions")
    status, body = await call(stack, "POST", f"/api/cases/{a}/merge", {"actor": "S"})
    assert (status, body["details"]["field"]) == (400, "into")
