"""The live hotline wall: queue state from real Asterisk 22 events, reloaded by QueueStatus at
connect, and served live from a running gateway against the simulated PBX."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from gateway.ami.frames import Frame, FrameParser
from gateway.app import PBX
from gateway.clock import ScaledClock
from gateway.demo.stack import Stack, running_stack
from gateway.sim.ami import CallerScript, Press, WaitForAgent, WaitForPrompt
from gateway.wall.state import QueueBoard
from tests.polling import until
from tests.session_transcript import load

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 30, 7, 35, tzinfo=UTC)


def _received(path: Path) -> list[Frame]:
    parser = FrameParser(expect_banner=True)
    return [f for f in parser.feed(path.read_bytes()) if isinstance(f, Frame)]


def test_the_recorded_session_plays_out_on_the_board(transcripts: Path) -> None:
    """Replaying the gateway's real session with Asterisk 22: each seat is talking between its
    AgentConnect and AgentComplete, callers wait between join and leave, and all ends free."""
    board = QueueBoard()
    talking_seen: set[str] = set()
    most_waiting = 0
    for session in load(transcripts / "gateway-session-shipped-config.txt"):
        for timed in session.received:
            frame = timed.frame
            board.apply(frame, timed.when)
            view = board.view("hotline", timed.when)
            most_waiting = max(most_waiting, view.waiting)
            if frame.get("Event") == "AgentConnect":
                seat = next(s for s in view.seats if s.interface == frame["Interface"])
                assert seat.state == "talking"
                talking_seen.add(seat.name)
    end = board.view("hotline", T0 + timedelta(days=1))
    assert talking_seen == {"坐席01", "坐席02", "坐席03", "坐席04"}
    assert most_waiting == 1
    assert end.waiting == 0 and end.longest_wait_s is None
    assert end.counts["talking"] == 0 and end.counts["free"] == 4
    assert all(s.calls_taken >= 1 for s in end.seats)


def test_queue_status_reloads_the_board(transcripts: Path) -> None:
    """A QueueStatus answer (as recorded) replaces what the board knew; a waiting caller's
    wait counts from before the reload; a paused member is paused, a removed one gone."""
    frames = _received(transcripts / "queue-errors-command.rx.txt")
    status = [
        f for f in frames if f.get("ActionID") == "Q2" and f.get("Event") != "QueueStatusComplete"
    ]
    board = QueueBoard()
    now = T0
    board.apply(
        Frame([("Event", "QueueCallerJoin"), ("Queue", "support"), ("Uniqueid", "9.9")]), now
    )
    waiting = Frame(
        [("Event", "QueueEntry"), ("Queue", "support"), ("Uniqueid", "1.1"), ("Wait", "42")]
    )
    board.load([*status, waiting], now)
    view = board.view("support", now)
    assert view.waiting == 1 and view.longest_wait_s == 42
    assert [(s.name, s.state) for s in view.seats] == [("Agent Smith", "free")]
    added = next(f for f in frames if f.get("Event") == "QueueMemberAdded")
    paused = Frame([(k, "1" if k == "Paused" else v) for k, v in added.items()])
    board.apply(paused, now)
    assert board.view("support", now).counts["paused"] == 1
    removed = next(f for f in frames if f.get("Event") == "QueueMemberRemoved")
    board.apply(removed, now)
    assert board.view("support", now).seats == ()


# -- live, against the simulated PBX -------------------------------------------------


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The gateway and the simulators with two seats, at 20x speed (a talk lasts seconds)."""
    clock = ScaledClock(datetime(2026, 11, 30, 1, 0, tzinfo=UTC), 20.0)
    async with running_stack(
        tmp_path / "data",
        clock,
        agents=2,
        recordings_dir=ROOT / "recordings" / "zh",
        run_scheduler=False,
    ) as running:
        session = running.app[PBX]["main"]
        await session.wait_connected(10)
        await session.ping()
        yield running


async def _wall(http: ClientSession, stack: Stack) -> dict[str, Any]:
    response = await http.get(
        f"{stack.url}/dashboard/wall.json", headers={"Authorization": f"Bearer {stack.api_token}"}
    )
    assert response.status == 200
    data: dict[str, Any] = await response.json()
    return data


async def test_the_wall_follows_the_queue_live(stack: Stack) -> None:
    """At connect the wall knows the seats (QueueStatus); a seat added paused shows paused; with
    three callers for two seats it shows two talking and one waiting with a growing wait; when
    the calls end every seat is free again."""
    async with ClientSession() as http:

        async def hotline() -> dict[str, Any] | None:
            queues = (await _wall(http, stack))["queues"]
            return next((q for q in queues if q["queue"] == "hotline"), None)

        first = await until(hotline, 10)
        assert first["seats"]["free"] == 2 and first["waiting"] == 0 and first["loaded"]
        reply = await stack.app[PBX]["main"].action(
            {
                "Action": "QueueAdd",
                "Queue": "hotline",
                "Interface": "PJSIP/seat99",
                "MemberName": "坐席99",
                "Paused": "true",
            }
        )
        assert reply.get("Response") == "Success"
        await until(lambda: _paused(http, stack), 10)
        calls = [
            stack.pbx.place_call(
                CallerScript(
                    caller=f"+861380000000{i}",
                    caller_name="市民",
                    dialled="9600110",
                    steps=[WaitForPrompt("main_menu", timeout=60), Press("0"), WaitForAgent(600)],
                    language="zh",
                )
            )
            for i in range(3)
        ]

        async def busy() -> dict[str, Any] | None:
            q = await hotline()
            full = q and q["seats"]["talking"] == 2 and q["waiting"] == 1
            return q if full else None

        seen = await until(busy, 30, every=0.05)
        assert seen["seats"]["paused"] == 1 and seen["seats"]["free"] == 0
        talking = [m for m in seen["members"] if m["state"] == "talking"]
        assert {m["name"] for m in talking} == {"Seat 01", "Seat 02"}

        async def waited() -> bool:
            q = await hotline()
            return bool(q and q["waiting"] == 1 and (q["longest_wait_s"] or 0) >= 2)

        await until(waited, 30, every=0.05)
        await asyncio.wait([c.finished for c in calls], timeout=60)

        async def idle() -> bool:
            q = await hotline()
            return bool(q and q["seats"]["free"] == 2 and q["waiting"] == 0)

        await until(idle, 30)
        page = await http.get(
            f"{stack.url}/dashboard/wall", headers={"Authorization": f"Bearer {stack.api_token}"}
        )
        text = await page.text()
        assert page.status == 200 and 'data-queue="hotline"' in text and "/static/wall.js" in text


async def _paused(http: ClientSession, stack: Stack) -> bool:
    queues = (await _wall(http, stack))["queues"]
    return any(q["queue"] == "hotline" and q["seats"]["paused"] == 1 for q in queues)


async def test_after_a_lost_link_the_wall_reloads_from_queue_status(stack: Stack) -> None:
    """A change the gateway could not hear (a seat paused while the link was down) shows on
    the wall once the link is back: each (re)connect reloads it from QueueStatus."""
    async with ClientSession() as http:

        async def seats(state: str, count: int) -> bool:
            queues = (await _wall(http, stack))["queues"]
            return any(q["queue"] == "hotline" and q["seats"][state] == count for q in queues)

        await until(lambda: seats("free", 2), 10)
        session = stack.app[PBX]["main"]
        connects = session.connects
        stack.pbx.world.queues["hotline"].seats[0].paused = True  # no event reaches the gateway
        stack.pbx.faults.drop_connections()
        await until(lambda: session.connected and session.connects > connects, 20)
        await until(lambda: seats("paused", 1), 10)
        assert await seats("free", 1)
