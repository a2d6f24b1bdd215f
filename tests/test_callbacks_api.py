"""The callbacks' HTTP API on the running gateway: auth, bad input, per-item outcomes,
reports of rectification, the summary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.callbacks.policy import CallOutcome
from gateway.callbacks.service import DialResult
from gateway.callbacks.web import CALLBACKS
from gateway.clock import ScaledClock
from gateway.demo.stack import Stack, running_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The gateway (no scheduler: nothing is dialled) on a Monday at 10:00 in Shanghai."""
    clock = ScaledClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC), 1.0)
    async with running_stack(tmp_path / "data", clock, run_scheduler=False) as running:
        yield running


def item(reference: str, stack: Stack, **changes: str) -> dict[str, str]:
    values = {
        "reference": reference,
        "kind": "id_card",
        "unit": "LZ-DC-01",
        "citizen_number": "13912345678",
        "served_at": (stack.clock.now() - timedelta(days=2)).isoformat(),
        "citizen_name": "李四",
    }
    values.update(changes)
    return values


async def call(
    stack: Stack,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = "ok",
    raw: bytes | None = None,
) -> tuple[int, Any]:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {stack.api_token if token == 'ok' else token}"
    async with aiohttp.ClientSession() as http:
        kwargs: dict[str, Any] = {"headers": headers}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        async with http.request(method, stack.url + path, **kwargs) as response:
            return response.status, await response.json()


@pytest.mark.parametrize("token", [None, "wrong"])
async def test_api_needs_the_bearer_token(stack: Stack, token: str | None) -> None:
    """No token or a wrong one: 401 with a stable error id, nothing stored."""
    status, body = await call(stack, "POST", "/api/served-items", item("R1", stack), token=token)
    assert (status, body["error"]) == (401, "unauthorized")
    assert await stack.store.callbacks.item_by_reference("R1") is None


async def test_one_item_is_added_then_refused_as_duplicate(stack: Stack) -> None:
    """201 with the stored item (E.164 number, pending), then 409 for the same reference."""
    status, body = await call(stack, "POST", "/api/served-items", item("R1", stack))
    assert status == 201
    assert (body["citizen_number"], body["status"]) == ("+8613912345678", "pending")
    status, body = await call(stack, "POST", "/api/served-items", item("R1", stack))
    assert (status, body["error"]) == (409, "duplicate_reference")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kind": "parking"}, "kind"),
        ({"unit": "NOPE"}, "unit"),
        ({"citizen_number": "12345"}, "citizen_number"),
        ({"served_at": "yesterday"}, "served_at"),
    ],
)
async def test_an_invalid_item_names_its_field(
    stack: Stack, changes: dict[str, str], field: str
) -> None:
    """422 naming the field that was wrong."""
    status, body = await call(stack, "POST", "/api/served-items", item("R2", stack, **changes))
    assert (status, body["error"], body["details"]["field"]) == (422, "invalid_served_item", field)


@pytest.mark.parametrize(
    ("raw", "body", "error"),
    [
        (b"{not json", None, "bad_json"),
        (None, [], "bad_body"),
        (None, "R1", "bad_body"),
        (None, [{"reference": 3}], "bad_item"),
        (None, [{"reference": "R1", "colour": "red"}], "bad_item"),
    ],
)
async def test_malformed_bodies_are_refused(
    stack: Stack, raw: bytes | None, body: Any, error: str
) -> None:
    """Bad JSON, an empty list, a non-object, a non-string or unknown field: 400."""
    status, answer = await call(stack, "POST", "/api/served-items", body, raw=raw)
    assert (status, answer["error"]) == (400, error)


async def test_a_list_reports_each_item(stack: Stack) -> None:
    """A batch answers 207 with one outcome per item; the good ones are stored."""
    batch = [item("B1", stack), item("B2", stack, unit="NOPE"), item("B1", stack)]
    status, body = await call(stack, "POST", "/api/served-items", batch)
    assert status == 207
    assert [r["result"] for r in body["results"]] == ["added", "refused", "duplicate"]
    assert body["results"][1]["field"] == "unit"
    status, body = await call(stack, "GET", "/api/served-items/B1")
    assert (status, body["reference"], body["attempts"]) == (200, "B1", [])
    status, body = await call(stack, "GET", "/api/served-items/B2")
    assert (status, body["error"]) == (404, "no_such_item")


async def test_report_an_order_done_through_the_api(stack: Stack) -> None:
    """The holding unit's chief reports the rectification; bad or foreign reports are refused."""
    await call(stack, "POST", "/api/served-items", item("O1", stack))
    service = stack.app[CALLBACKS]
    served, attempt = (await service.claim_calls(1, "main"))[0]
    await service.call_finished(served, attempt, DialResult(CallOutcome.ANSWERED))
    await service.record_phone_rating(served.id, attempt, 3)
    await service.survey_ended(served.id, attempt)
    status, body = await call(stack, "GET", "/api/served-items/O1")
    assert [(a["outcome"], a["pbx"]) for a in body["attempts"]] == [("rated", "main")]
    status, orders = await call(stack, "GET", "/api/orders")
    assert status == 200 and len(orders) == 1 and orders[0]["level"] == 1
    ref = orders[0]["ref"]

    status, body = await call(stack, "POST", f"/api/orders/{ref}/report", {"note": "x"})
    assert (status, body["error"]) == (400, "bad_report")
    status, body = await call(stack, "POST", "/api/orders/ZG19990101-0001/report",
                              {"actor": "J00002"})  # fmt: skip
    assert (status, body["error"]) == (404, "no_such_order")
    # The supervision office's chief does not hold a level-1 order: refused.
    status, body = await call(stack, "POST", f"/api/orders/{ref}/report",
                              {"actor": "J00002", "note": "已上门说明"})  # fmt: skip
    assert (status, body["error"]) == (403, "not_authorized")
    status, body = await call(stack, "POST", f"/api/orders/{ref}/report",
                              {"actor": "J00010", "note": "已上门说明"})  # fmt: skip
    assert (status, body["status"], body["reported_by"]) == (200, "reported", "J00010")

    status, summary = await call(stack, "GET", "/api/callbacks/summary")
    assert status == 200
    assert summary["overall"][0]["dissatisfied"] == 1
    assert summary["by_unit"][0]["label"] == "东关派出所"
