"""``gateway cases assign|accept|answer|close`` on a data folder: the steps, their texts
queued in the outbox, and one line for each refusal."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.appeals.service import AppealService, SubmissionInput
from gateway.cli import main
from gateway.clock import Clock
from gateway.config import AppealsSection
from gateway.store import Store
from gateway.store.seed import demo_city, load_seed

NOISE = "楼下烧烤摊每天晚上营业到凌晨两点，噪音太大，孩子无法睡觉，请派出所管一管。"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """main() points the root logger at this test's captured stderr: undo that after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def number(tmp_path: Path) -> str:
    """A data folder with the demo city and one open complaint; the case's number."""

    async def go() -> str:
        async with Store.open(tmp_path / "gateway.sqlite3", Clock()) as store:
            await load_seed(store.units, demo_city(), "demo-city.toml")
            service = AppealService(store, store.clock, AppealsSection())
            intake = await service.submit(
                SubmissionInput("web", "W1", "13912345678", "complaint", NOISE)
            )
            return intake.case.number

    return asyncio.run(go())


def run(tmp_path: Path, *args: str) -> int:
    return main(["--data-dir", str(tmp_path), "cases", *args])


def stored(tmp_path: Path, number: str) -> tuple[str, list[str]]:
    """The case's status and the templates of the texts queued."""

    async def go() -> tuple[str, list[str]]:
        async with Store.open(tmp_path / "gateway.sqlite3", Clock()) as store:
            case = await store.cases.get(number)
            assert case is not None
            texts = [m.template for m in reversed(await store.sms.recent(limit=10))]
            return case.status, texts

    return asyncio.run(go())


def test_the_four_steps_from_the_command_line(
    tmp_path: Path, number: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """assign, accept, answer, close: each prints the new state; both texts are queued."""
    assert run(tmp_path, "assign", number, "LZ-DC-01", "--actor", "J00002") == 0
    assert "已分派给东关派出所（LZ-DC-01）" in capsys.readouterr().out
    assert run(tmp_path, "accept", number, "--actor", "J00011") == 0
    assert "状态：办理中" in capsys.readouterr().out
    assert run(tmp_path, "answer", number, "--actor", "J00011", "--text", "已责令停业整改。") == 0
    assert "状态：已办结" in capsys.readouterr().out
    assert run(tmp_path, "close", number, "--actor", "J00002", "--note", "已答复") == 0
    assert "状态：已关闭" in capsys.readouterr().out
    assert stored(tmp_path, number) == ("closed", ["case_accepted", "case_answered"])
    assert run(tmp_path, "show", number) == 0
    shown = capsys.readouterr().out
    assert "已责令停业整改。" in shown and f"待回访（AP-{number}）" in shown
    assert run(tmp_path, "show", number, "--json") == 0
    answer = json.loads(capsys.readouterr().out)["answer"]
    assert answer["text"] == "已责令停业整改。" and answer["officer"] == "J00011"
    assert answer["callback"]["status"] == "pending" and answer["rating"] is None


@pytest.mark.parametrize(
    ("steps", "args", "message"),
    [
        ([], ["accept", "{n}", "--actor", "J00011"], "has no owner unit yet: assign it first"),
        ([], ["assign", "{n}", "LZ-DC-01", "--actor", "J99999"], "actor: no officer 'J99999'"),
        ([], ["assign", "{n}", "LZ-XX", "--actor", "J00002"], "unit: no unit 'LZ-XX'"),
        ([], ["accept", "TS20991231-0001", "--actor", "J00011"], "no case 'TS20991231-0001'"),
        (
            [["accept", "{n}", "--actor", "J00011"]],
            ["answer", "{n}", "--actor", "J00014", "--text", "已处理"],
            "actor 'J00014' may not answer it: only an officer of the owner unit (LZ-DC-01) may",
        ),
        (
            [["accept", "{n}", "--actor", "J00011"]],
            ["answer", "{n}", "--actor", "J00011", "--text", "长" * 201],
            "answer: longer than 200 characters (201)",
        ),
        ([], ["close", "{n}", "--actor", "J00002"], "answer it first"),
    ],
    ids=["not-assigned", "unknown-officer", "unknown-unit", "unknown-case", "other-unit",
         "long-answer", "close-early"],
)  # fmt: skip
def test_a_refusal_is_one_line_and_changes_nothing(
    tmp_path: Path,
    number: str,
    capsys: pytest.CaptureFixture[str],
    steps: list[list[str]],
    args: list[str],
    message: str,
) -> None:
    """A bad step prints one line naming the field or the reason, exit 1, nothing written."""
    assert run(tmp_path, "assign", number, "LZ-DC-01", "--actor", "J00002") == 0
    for earlier in steps:
        assert run(tmp_path, *(a.format(n=number) for a in earlier)) == 0
    if "no owner unit" in message:
        number = _fresh(tmp_path)  # a case nobody assigned
    before = stored(tmp_path, number)
    capsys.readouterr()
    assert run(tmp_path, *(a.format(n=number) for a in args)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert stored(tmp_path, number) == before


def _fresh(tmp_path: Path) -> str:
    """Another open case with no owner."""

    async def go() -> str:
        async with Store.open(tmp_path / "gateway.sqlite3", Clock()) as store:
            service = AppealService(store, store.clock, AppealsSection())
            intake = await service.submit(
                SubmissionInput("web", "W2", "13812345678", "help", "家门口的路灯坏了一个月。")
            )
            return intake.case.number

    return asyncio.run(go())
