"""``gateway calls`` and ``gateway cases`` run on a data folder, as after the demo."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.ami.frames import Frame, iter_frames
from gateway.calllog.builder import CallLogBuilder
from gateway.cli import main
from gateway.clock import ManualClock
from gateway.store import Store


def seed(data: Path, clock: ManualClock, transcripts: Path) -> None:
    """Three calls (one with a citizen's mobile, one outbound) and two cases."""

    async def go() -> None:
        async with Store.open(data / "gateway.sqlite3", clock) as store:
            await store.units.add_unit("FJ-01", "东城分局", "sub_bureau")
            await store.units.add_unit("PS-01", "东城派出所", "station", "FJ-01")
            case = await store.cases.open_case(
                channel="hotline",
                category="complaint",
                actor="ivr",
                citizen_number="13912345678",
                citizen_name="王小明",
                subject="轻伤案件办理进度慢，已经两个月没有消息",
                owner_unit="PS-01",
            )
            await store.cases.set_status(case.number, "in_progress", actor="J001", note="已联系")
            await store.cases.open_case(
                channel="web", category="suggestion", actor="web", subject="建议延长窗口办公时间"
            )
            builder = CallLogBuilder("main", clock)
            for name in ("sip-call-rfc4733-dtmf", "queue-errors-command"):
                raw = (transcripts / f"{name}.rx.txt").read_bytes()
                builder.feed_all(f for f in iter_frames(raw) if isinstance(f, Frame))
            records = builder.drain()
            citizen = dataclasses.replace(
                records[0],
                linkedid="9.1",
                caller_number="+8613912345678",
                caller_name="王小明",
                case_id=case.id,
                started_at=clock.now() - timedelta(minutes=5),
            )
            outbound = dataclasses.replace(
                records[0],
                linkedid="9.2",
                direction="outbound",
                started_at=clock.now(),
            )
            await store.calls.upsert([*records, citizen, outbound])

    asyncio.run(go())


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """main() points the root logger at this test's captured stderr: undo that after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def data(tmp_path: Path, clock: ManualClock, transcripts: Path) -> Path:
    seed(tmp_path, clock, transcripts)
    return tmp_path


def test_calls_table_masks_numbers(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The calls table lists every call newest first, numbers masked, names in Chinese intact."""
    assert main(["--data-dir", str(data), "calls"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "开始时间" in lines[0] and "主叫" in lines[0]
    assert len(lines) == 2 + 4
    assert "外呼" in lines[2]  # the newest
    assert "+86139****5678" in out and "13912345678" not in out
    assert "王小明" in out and "TS20261130-0001" in out
    assert "Agent Smith" in out and "support" in out


def test_calls_json_has_full_numbers(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json gives tools every field with the full number, filtered by caller and direction."""
    assert main(["--data-dir", str(data), "calls", "--json", "--caller", "139 1234 5678"]) == 0
    (call,) = json.loads(capsys.readouterr().out)
    assert call["caller_number"] == "+8613912345678" and call["caller_name"] == "王小明"
    assert call["case_number"] == "TS20261130-0001" and call["complete"] is True
    assert main(["--data-dir", str(data), "calls", "--json", "--direction", "outbound"]) == 0
    assert [c["linkedid"] for c in json.loads(capsys.readouterr().out)] == ["9.2"]
    assert main(["--data-dir", str(data), "calls", "--json", "--since", "2026-11-30"]) == 0
    assert {c["linkedid"] for c in json.loads(capsys.readouterr().out)} == {"9.1", "9.2"}
    assert main(["--data-dir", str(data), "calls", "--json", "--limit", "1"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1


def test_calls_say_who_ended_each_call(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The SIP call the IVR hung up says so in --json and in the table."""
    assert main(["--data-dir", str(data), "calls", "--json"]) == 0
    calls = json.loads(capsys.readouterr().out)
    ended = {c["linkedid"]: c["ended_by"] for c in calls}
    assert ended["1795897503.0"] == "gateway"  # the SIP call the client ended with AGI HANGUP
    assert main(["--data-dir", str(data), "calls"]) == 0
    assert "系统挂断" in capsys.readouterr().out


def test_calls_bad_input(
    data: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad date or limit exits 2 naming it; a folder without a store exits 1 saying so."""
    assert main(["--data-dir", str(data), "calls", "--since", "last week"]) == 2
    assert "--since: 'last week' is not a date" in capsys.readouterr().err
    assert main(["--data-dir", str(data), "calls", "--limit", "0"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err
    empty = tmp_path_factory.mktemp("empty")
    assert main(["--data-dir", str(empty), "calls"]) == 1
    assert "no store at" in capsys.readouterr().err
    assert not (empty / "gateway.sqlite3").exists()


def test_cases_table_and_filters(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The cases table shows Chinese labels and masked numbers; filters narrow it."""
    assert main(["--data-dir", str(data), "cases"]) == 0
    out = capsys.readouterr().out
    assert "TS20261130-0001" in out and "JY20261130-0002" in out
    assert "办理中" in out and "投诉" in out and "东城派出所" in out
    assert "+86139****5678" in out and "13912345678" not in out
    assert main(["--data-dir", str(data), "cases", "--status", "open", "--json"]) == 0
    assert [c["number"] for c in json.loads(capsys.readouterr().out)] == ["JY20261130-0002"]
    assert main(["--data-dir", str(data), "cases", "--unit", "PS-01", "--json"]) == 0
    (case,) = json.loads(capsys.readouterr().out)
    assert case["citizen_number"] == "+8613912345678" and case["owner_unit"] == "PS-01"
    assert main(["--data-dir", str(data), "cases", "--unit", "NOPE"]) == 1
    assert "no unit 'NOPE'" in capsys.readouterr().err


def test_cases_show_with_history(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`cases show` prints the case and its history; --json has it for tools; unknown is exit 1."""
    assert main(["--data-dir", str(data), "cases", "show", "TS20261130-0001"]) == 0
    out = capsys.readouterr().out
    assert "轻伤案件办理进度慢，已经两个月没有消息" in out and "办理记录" in out
    assert "assigned → in_progress：已联系" in out and "J001" in out
    assert main(["--data-dir", str(data), "cases", "show", "202611300001", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [h["action"] for h in shown["history"]] == ["opened", "assigned", "status"]
    assert main(["--data-dir", str(data), "cases", "show", "TS20261130-0999"]) == 1
    assert "no case 'TS20261130-0999'" in capsys.readouterr().err
