"""A case's lifecycle through the API on the running gateway: assign, accept, answer,
close, each by an officer of the right unit; the citizen's texts; the answer called
back for a rating like a served item; and every refusal naming its field."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from gateway.appeals.lifecycle import PIN_DIGITS, pin_matches
from gateway.appeals.web import add_appeals
from gateway.clock import ScaledClock
from gateway.demo.stack import Stack, running_stack
from gateway.sim.ami import Answer, Press, Speak, WaitForPrompt
from gateway.store.db import Database, bundled_migrations
from tests.polling import until

ROOT = Path(__file__).resolve().parent.parent
WEB_TOKEN = "web-portal-0123456789abc"
CITIZEN = "+8613912345678"
NOISE = "楼下烧烤摊每天晚上营业到凌晨两点，噪音太大，孩子无法睡觉，请派出所管一管。"
ANSWER = "经核查，该烧烤摊已被责令每晚十点前停止营业，民警将每周巡查。"
SUPERVISION = "J00002"  # 督办室
SUB_BUREAU = "J00008"  # 东城分局, parent of 东关派出所
STATION_CHIEF = "J00010"  # 东关派出所
STATION_OFFICER = "J00011"  # 东关派出所
OTHER_STATION = "J00014"  # 西关派出所, another station of 东城分局


@contextlib.asynccontextmanager
async def start_stack(
    tmp_path: Path, speed: float = 1.0, *, run_scheduler: bool = False
) -> AsyncIterator[Stack]:
    """The gateway with the web channel open, on a Monday at 10:00 in Shanghai."""
    clock = ScaledClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC), speed)
    async with running_stack(
        tmp_path / "data",
        clock,
        run_scheduler=run_scheduler,
        recordings_dir=ROOT / "recordings" / "zh",
        overrides=[
            f"appeals.channels_web_token={WEB_TOKEN}",
            "callbacks.poll_seconds=30",
        ],
    ) as running:
        yield running


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The gateway without the callback scheduler (see start_stack)."""
    async with start_stack(tmp_path) as running:
        yield running


async def call(stack: Stack, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {stack.api_token}", "X-Channel-Token": WEB_TOKEN}
    async with aiohttp.ClientSession() as http:
        async with http.request(method, stack.url + path, json=body, headers=headers) as response:
            return response.status, await response.json()


async def new_case(stack: Stack, reference: str = "W1", **changes: str) -> str:
    """A web submission; the number of the case it opened."""
    body = {
        "channel": "web",
        "reference": reference,
        "citizen_number": "139 1234 5678",
        "citizen_name": "王芳",
        "category": "complaint",
        "text": NOISE,
        **changes,
    }
    status, intake = await call(stack, "POST", "/api/cases", body)
    assert status == 201, intake
    number: str = intake["case"]["number"]
    return number


async def step(stack: Stack, number: str, name: str, **body: str) -> tuple[int, Any]:
    return await call(stack, "POST", f"/api/cases/{number}/{name}", body)


async def texts(stack: Stack, template: str) -> list[Any]:
    return [m for m in await stack.store.sms.recent(limit=100) if m.template == template]


async def test_assign_accept_answer_close_by_the_right_units(stack: Stack) -> None:
    """The four steps: each moves the case, is in its history, and texts the citizen twice."""
    number = await new_case(stack)
    status, body = await step(stack, number, "assign", actor=SUPERVISION, unit="LZ-DC-01")
    assert status == 200 and body["status"] == "assigned" and body["owner_unit"] == "LZ-DC-01"

    status, body = await step(stack, number, "accept", actor=STATION_OFFICER)
    assert status == 200 and body["status"] == "in_progress"
    [accepted] = await texts(stack, "case_accepted")
    assert accepted.to == CITIZEN and accepted.purpose == "case"
    assert number in accepted.body and "东关派出所" in accepted.body
    pin = accepted.variables["pin"]
    assert len(pin) == PIN_DIGITS and pin.isdigit() and pin in accepted.body
    case = await stack.store.cases.get(number)
    assert case is not None
    stored = await stack.store.cases.pin_of(case.id)
    assert stored is not None and pin not in stored.pin_hash and pin_matches(pin, stored.pin_hash)

    status, body = await step(stack, number, "answer", actor=STATION_OFFICER, answer=ANSWER)
    assert status == 200 and body["status"] == "resolved"
    [answered] = await texts(stack, "case_answered")
    assert answered.to == CITIZEN and ANSWER in answered.body and number in answered.body

    status, body = await step(stack, number, "close", actor=STATION_CHIEF, note="群众已收到答复")
    assert status == 200 and body["status"] == "closed"
    assert [h["action"] for h in body["history"]] == [
        "opened",
        "assigned",
        "accepted",
        "answered",
        "closed",
    ]
    assert [h["actor"] for h in body["history"][1:]] == [
        SUPERVISION,
        STATION_OFFICER,
        STATION_OFFICER,
        STATION_CHIEF,
    ]
    await until(lambda: len([m for m in stack.twilio.messages if m.to == CITIZEN]) == 2)


async def test_the_answer_is_a_served_item_called_back_for_the_owner_unit(stack: Stack) -> None:
    """The answer adds a served item of kind appeal_answer for the owner unit, tied to the case."""
    number = await new_case(stack, unit_hint="LZ-DC-01")
    assert (await step(stack, number, "accept", actor=STATION_OFFICER))[0] == 200
    assert (await step(stack, number, "answer", actor=STATION_OFFICER, answer=ANSWER))[0] == 200
    case = await stack.store.cases.get(number)
    assert case is not None
    answer = await stack.store.cases.answer_of(case.id)
    assert answer is not None and answer.answer == ANSWER and answer.item_id is not None
    item = await stack.store.callbacks.item(answer.item_id)
    assert item is not None
    unit = await stack.store.units.unit_by_code("LZ-DC-01")
    assert unit is not None
    assert (item.kind_code, item.unit_id, item.citizen_number) == (
        "appeal_answer",
        unit.id,
        CITIZEN,
    )
    assert item.status == "pending" and item.officer_code == STATION_OFFICER
    assert item.reference == f"AP-{number}"
    status, shown = await call(stack, "GET", f"/api/cases/{number}")
    assert status == 200 and shown["answer"]["text"] == ANSWER
    assert shown["answer"]["officer"] == STATION_OFFICER
    assert shown["answer"]["callback"] == {
        "reference": f"AP-{number}",
        "status": "pending",
        "round": 1,
    }
    assert shown["answer"]["rating"] is None
    # the dashboard's case timeline shows the callback the answer opened
    timeline = await stack.store.dashboard.case_timeline(
        case.id, number, case.citizen_number, case.created_at
    )
    assert [r.ref_id for r in timeline if r.kind == "item"] == [answer.item_id]


async def test_a_sub_bureau_assigns_to_its_station_but_a_station_may_not(stack: Stack) -> None:
    """The owner's parent may assign; an officer of a sibling station gets 403 naming actor."""
    number = await new_case(stack)
    status, body = await step(stack, number, "assign", actor=OTHER_STATION, unit="LZ-DC-01")
    assert (status, body["error"], body["details"]["field"]) == (403, "not_permitted", "actor")
    status, body = await step(stack, number, "assign", actor=SUB_BUREAU, unit="LZ-DC-01")
    assert status == 200 and body["owner_unit"] == "LZ-DC-01"


async def test_an_answer_by_another_unit_is_refused_and_nothing_written(stack: Stack) -> None:
    """An officer of another station may not accept or answer: 403 naming actor, no text."""
    number = await new_case(stack, unit_hint="LZ-DC-01")
    status, body = await step(stack, number, "accept", actor=OTHER_STATION)
    assert (status, body["error"], body["details"]["field"]) == (403, "not_permitted", "actor")
    assert (await step(stack, number, "accept", actor=STATION_OFFICER))[0] == 200
    status, body = await step(stack, number, "answer", actor=OTHER_STATION, answer=ANSWER)
    assert (status, body["error"], body["details"]["field"]) == (403, "not_permitted", "actor")
    case = await stack.store.cases.get(number)
    assert case is not None and case.status == "in_progress"
    assert await texts(stack, "case_answered") == []
    assert await stack.store.cases.answer_of(case.id) is None


@pytest.mark.parametrize(
    ("done", "name", "body"),
    [
        ([], "answer", {"actor": STATION_OFFICER, "answer": ANSWER}),  # before acceptance
        ([], "close", {"actor": STATION_CHIEF}),  # before the answer
        (["accept"], "accept", {"actor": STATION_OFFICER}),  # twice
        (["accept", "answer"], "answer", {"actor": STATION_OFFICER, "answer": "再答一次"}),
        (["accept", "answer", "close"], "close", {"actor": STATION_CHIEF}),
        (["accept"], "assign", {"actor": SUPERVISION, "unit": "LZ-DC-02"}),  # after acceptance
    ],
    ids=[
        "answer-first",
        "close-first",
        "accept-twice",
        "answer-twice",
        "close-twice",
        "assign-late",
    ],
)
async def test_a_step_out_of_order_is_409_and_changes_nothing(
    stack: Stack, done: list[str], name: str, body: dict[str, str]
) -> None:
    """A step the case's state does not allow is refused with 409 naming the case."""
    number = await new_case(stack, unit_hint="LZ-DC-01")
    bodies = {
        "accept": {"actor": STATION_OFFICER},
        "answer": {"actor": STATION_OFFICER, "answer": ANSWER},
        "close": {"actor": STATION_CHIEF},
    }
    for earlier in done:
        assert (await step(stack, number, earlier, **bodies[earlier]))[0] == 200
    case = await stack.store.cases.get(number)
    assert case is not None
    history = await stack.store.cases.history(case.id)
    status, refused = await step(stack, number, name, **body)
    assert (status, refused["error"], refused["details"]["case"]) == (
        409,
        "case_change_refused",
        number,
    )
    assert await stack.store.cases.history(case.id) == history


@pytest.mark.parametrize(
    ("name", "body", "status", "field"),
    [
        ("accept", {"actor": "J99999"}, 400, "actor"),  # no such officer
        ("accept", {}, 400, "actor"),  # nobody named
        ("answer", {"actor": STATION_OFFICER}, 400, "answer"),  # missing
        ("answer", {"actor": STATION_OFFICER, "answer": "   "}, 400, "answer"),  # blank
        ("answer", {"actor": STATION_OFFICER, "answer": "答" * 201}, 400, "answer"),  # too long
        ("answer", {"actor": STATION_OFFICER, "answer": ANSWER, "pin": "1"}, 400, "pin"),
        ("assign", {"actor": SUPERVISION, "unit": "LZ-NOWHERE"}, 400, "unit"),
        ("assign", {"actor": SUPERVISION}, 400, "unit"),
        ("close", {"actor": 7}, 400, "actor"),  # not a string
    ],
    ids=[
        "unknown-officer",
        "no-actor",
        "no-answer",
        "blank-answer",
        "long-answer",
        "unknown-field",
        "unknown-unit",
        "no-unit",
        "actor-not-text",
    ],
)
async def test_bad_input_is_400_naming_the_field(
    stack: Stack, name: str, body: dict[str, Any], status: int, field: str
) -> None:
    """Each bad value is refused with 400 and the field it is in; the case stays as it was."""
    number = await new_case(stack, unit_hint="LZ-DC-01")
    if name == "answer":
        assert (await step(stack, number, "accept", actor=STATION_OFFICER))[0] == 200
    case = await stack.store.cases.get(number)
    assert case is not None
    got, refused = await call(stack, "POST", f"/api/cases/{number}/{name}", body)
    assert (got, refused["error"], refused["details"]["field"]) == (status, "bad_field", field)
    after = await stack.store.cases.get(number)
    assert after is not None and after.status == case.status


async def test_an_unknown_case_is_404(stack: Stack) -> None:
    """A step on a case number nobody issued is 404 naming the number."""
    status, body = await step(stack, "TS20991231-0001", "accept", actor=STATION_OFFICER)
    assert (status, body["error"], body["details"]["case"]) == (
        404,
        "no_such_case",
        "TS20991231-0001",
    )


async def test_a_merged_case_takes_no_step(stack: Stack) -> None:
    """A case merged into another is refused (409): the steps go to the case it joined."""
    first = await new_case(stack, "W1", unit_hint="LZ-DC-01")
    second = await new_case(stack, "W2", category="help", text="家门口的路灯坏了一个月了。")
    status, _ = await call(
        stack, "POST", f"/api/cases/{second}/merge", {"into": first, "actor": SUPERVISION}
    )
    assert status == 200
    status, body = await step(stack, second, "assign", actor=SUPERVISION, unit="LZ-DC-01")
    assert (status, body["error"]) == (409, "case_change_refused")
    assert "merged into" in body["message"]


async def test_a_dissatisfied_answer_opens_a_rectification_order(tmp_path: Path) -> None:
    """The answered case is called back like a served item; a 3 texts the station chief an order."""
    async with start_stack(tmp_path, speed=100.0, run_scheduler=True) as stack:
        stack.pbx.set_citizen(
            CITIZEN,
            Answer(
                [
                    WaitForPrompt("rate"),
                    Press("3"),
                    WaitForPrompt("reason"),
                    Press("4"),
                    WaitForPrompt("message_intro"),
                    Speak(2.0),
                    Press("#"),
                    WaitForPrompt(timeout=60),
                ]
            ),
        )
        number = await new_case(stack, unit_hint="LZ-DC-01")
        assert (await step(stack, number, "accept", actor=STATION_OFFICER))[0] == 200
        assert (await step(stack, number, "answer", actor=STATION_OFFICER, answer=ANSWER))[0] == 200
        stack.clock.advance(timedelta(hours=25))  # the kind's callback delay
        chief = await stack.store.units.officers(
            (await stack.store.units.unit_by_code("LZ-DC-01")).id,  # type: ignore[union-attr]
            "chief",
        )
        mobile = chief[0].mobile

        def order_texts() -> list[str]:
            return [m.body for m in stack.twilio.messages if m.to == mobile]

        await until(order_texts, 120)
        [order] = await stack.store.callbacks.orders()
        item = await stack.store.callbacks.item(order.item_id)
        assert item is not None and item.reference == f"AP-{number}"
        assert "民生诉求" in order_texts()[0] and order.ref in order_texts()[0]
        rating = await stack.store.callbacks.rating(item.id, 1)
        assert rating is not None and (rating.score, rating.reason) == (3, "unsolved")
        status, shown = await call(stack, "GET", f"/api/cases/{number}")
        assert status == 200 and shown["answer"]["rating"] == {"score": 3, "reason": "unsolved"}


async def test_the_migration_keeps_texts_and_lets_case_texts_in(tmp_path: Path) -> None:
    """A store of schema 11 with texts and their events migrates to 12: the rows stay, and
    the same connection (and a new one) store a text of purpose 'case'."""
    path = tmp_path / "old.sqlite3"
    before = [m for m in bundled_migrations() if m.version <= 11]
    insert = (
        "INSERT INTO sms_messages (purpose, audience, to_number, sender, template, variables,"
        " body, encoding, segments, idempotency_key, status, next_attempt_at, created_at,"
        " updated_at) VALUES (?, 'citizen', '+8613912345678', 'S', 't', '{}', 'b', 'UCS-2', 1,"
        " ?, 'queued', '2026-11-30T02:00:00Z', '2026-11-30T02:00:00Z', '2026-11-30T02:00:00Z')"
    )
    async with Database.open(path, migrate=False) as db:
        await db.migrate(before)
        async with db.transaction() as conn:
            await conn.execute(insert, ("rating_request", "old-1"))
            await conn.execute(
                "INSERT INTO sms_events (message_id, kind, at) VALUES (1, 'enqueued', 'x')"
            )
        with pytest.raises(sqlite3.IntegrityError):
            async with db.transaction() as conn:
                await conn.execute(insert, ("case", "new-0"))
        up_to_12 = [m for m in bundled_migrations() if m.version <= 12]
        assert await db.migrate(up_to_12) == ["0012_case_lifecycle.sql"]
        async with db.transaction() as conn:
            await conn.execute(insert, ("case", "new-1"))
        assert [r[0] for r in await db.fetchall("PRAGMA integrity_check")] == ["ok"]
        assert [r[0] for r in await db.fetchall("PRAGMA foreign_key_check")] == []
    async with Database.open(path) as db:
        async with db.transaction() as conn:
            await conn.execute(insert, ("case", "new-2"))
        rows = await db.fetchall("SELECT purpose FROM sms_messages ORDER BY id")
        assert [r[0] for r in rows] == ["rating_request", "case", "case"]


def test_the_openapi_fragment_documents_the_lifecycle_routes() -> None:
    """lifecycle.yaml documents the four lifecycle routes (POST), only paths and schemas,
    and every $ref in it resolves to one of its schemas."""
    fragment = yaml.safe_load((ROOT / "gateway" / "web" / "openapi" / "lifecycle.yaml").read_text())
    assert set(fragment) == {"paths", "components"} and set(fragment["components"]) == {"schemas"}
    app = web.Application()
    add_appeals(app)
    routed = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.resource.canonical.split("/")[-1] in STEPS
    }
    documented = {
        (method.upper(), path) for path, ops in fragment["paths"].items() for method in ops
    }
    assert documented == routed == {("POST", f"/api/cases/{{ref}}/{s}") for s in STEPS}
    refs = set(re.findall(r"\$ref: \"#/components/schemas/(\w+)\"", yaml.safe_dump(fragment)))
    refs |= set(re.findall(r"'#/components/schemas/(\w+)'", yaml.safe_dump(fragment)))
    assert refs and refs <= set(fragment["components"]["schemas"])


STEPS = ("assign", "accept", "answer", "close")


async def test_the_supervision_office_may_close_but_another_station_may_not(
    stack: Stack,
) -> None:
    """An answered case is closed by the supervision office; another station gets 403."""
    number = await new_case(stack, unit_hint="LZ-DC-01")
    assert (await step(stack, number, "accept", actor=STATION_OFFICER))[0] == 200
    assert (await step(stack, number, "answer", actor=STATION_OFFICER, answer=ANSWER))[0] == 200
    status, body = await step(stack, number, "close", actor=OTHER_STATION)
    assert (status, body["error"], body["details"]["field"]) == (403, "not_permitted", "actor")
    assert "may not close it" in body["message"]
    status, body = await step(stack, number, "close", actor=SUPERVISION)
    assert status == 200 and body["status"] == "closed"


async def test_the_parent_moves_a_case_between_its_stations(stack: Stack) -> None:
    """A sub-bureau re-assigns its station's case to a sibling station, before acceptance."""
    number = await new_case(stack, unit_hint="LZ-DC-01")
    status, body = await step(stack, number, "assign", actor=SUB_BUREAU, unit="LZ-DC-02")
    assert status == 200 and body["owner_unit"] == "LZ-DC-02" and body["status"] == "assigned"
    status, body = await step(stack, number, "accept", actor=STATION_OFFICER)
    assert (status, body["error"]) == (403, "not_permitted")  # no longer its case


async def test_two_answers_at_once_make_one_answer_one_text_one_item(stack: Stack) -> None:
    """Two officers answer at the same moment: one wins, the other gets 409; one text, one item."""
    number = await new_case(stack, unit_hint="LZ-DC-01")
    assert (await step(stack, number, "accept", actor=STATION_OFFICER))[0] == 200
    first, second = await asyncio.gather(
        step(stack, number, "answer", actor=STATION_OFFICER, answer=ANSWER),
        step(stack, number, "answer", actor=STATION_CHIEF, answer="另一份答复。"),
    )
    assert sorted([first[0], second[0]]) == [200, 409]
    assert len(await texts(stack, "case_answered")) == 1
    items = [i for i in await stack.store.callbacks.items() if i.kind_code == "appeal_answer"]
    assert len(items) == 1
    case = await stack.store.cases.get(number)
    assert case is not None
    actions = [e.action for e in await stack.store.cases.history(case.id)]
    assert actions.count("answered") == 1
