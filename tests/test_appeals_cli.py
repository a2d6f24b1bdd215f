"""``gateway cases merge`` and ``gateway cases split`` on a data folder."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.appeals.service import AppealService, SubmissionInput
from gateway.cli import main
from gateway.clock import ManualClock
from gateway.config import AppealsSection
from gateway.store import Store

NOISE = "楼下烧烤摊每天晚上营业到凌晨两点，噪音太大，孩子无法睡觉，请派出所管一管。"
NOISE_AGAIN = "楼下烧烤摊天天营业到凌晨两点，噪音很大孩子睡不着，希望派出所处理。"
BIKE = "我的电动车上周在幸福小区车棚被盗，报案后一直没有消息，想问问进展。"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """main() points the root logger at this test's captured stderr: undo that after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def cases(tmp_path: Path, clock: ManualClock) -> list[str]:
    """Three cases in a data folder: noise (web + WeChat repeat), a bike, a closed one."""

    async def go() -> list[str]:
        async with Store.open(tmp_path / "gateway.sqlite3", clock) as store:
            service = AppealService(store, clock, AppealsSection())

            def appeal(channel: str, reference: str, text: str) -> SubmissionInput:
                return SubmissionInput(channel, reference, "13912345678", "complaint", text)

            noise = await service.submit(appeal("web", "W1", NOISE))
            await service.submit(appeal("wechat", "X1", NOISE_AGAIN))
            bike = await service.submit(appeal("visit", "V1", BIKE))
            closed = await service.submit(
                appeal("letter", "L1", "我想咨询港澳通行证续签需要带哪些材料。")
            )
            await store.cases.set_status(closed.case.number, "closed", actor="S01")
            return [noise.case.number, bike.case.number, closed.case.number]

    return asyncio.run(go())


def run(tmp_path: Path, *args: str) -> int:
    return main(["--data-dir", str(tmp_path), "cases", *args])


def test_merge_then_split(
    tmp_path: Path, cases: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Merge prints where the case went and its channels; split prints the new case."""
    noise, bike, _ = cases
    assert run(tmp_path, "merge", bike, noise, "--actor", "S01", "--note", "同一人") == 0
    out = capsys.readouterr().out
    assert f"{bike} 已并入 {noise}" in out and "来访 1 件" in out and "微信 1 件" in out
    assert run(tmp_path, "show", noise) == 0
    shown = capsys.readouterr().out
    assert "诉求（各渠道）" in shown and "V1" in shown and "merged_from" in shown
    assert run(tmp_path, "show", noise, "--json") == 0
    listed = json.loads(capsys.readouterr().out)["submissions"]
    assert [(s["id"], s["channel"]) for s in listed] == [(1, "web"), (2, "wechat"), (3, "visit")]
    assert run(tmp_path, "split", noise, "--submission", "3", "--actor", "S01") == 0
    out = capsys.readouterr().out
    assert f"已从 {noise} 拆出新案件" in out and "来访 1 件" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["merge", "{noise}", "{noise}"], "cannot be merged into itself"),
        (["merge", "{noise}", "{closed}"], "is closed"),
        (["merge", "{noise}", "TS20261130-9999"], "no case"),
        (["split", "{bike}", "--submission", "3"], "only a case of several"),
        (["split", "{noise}", "--submission", "3"], "has no submission 3"),
    ],
)
def test_refusals_are_one_line(
    tmp_path: Path,
    cases: list[str],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    """A merge or split that cannot be done: one line on stderr, exit status 1."""
    noise, bike, closed = cases
    filled = [a.format(noise=noise, bike=bike, closed=closed) for a in args]
    assert run(tmp_path, *filled, "--actor", "S01") == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
