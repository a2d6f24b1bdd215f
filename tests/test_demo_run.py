"""`gateway demo` end to end, small and fast: every part of the day runs and is summed up."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import main


@pytest.fixture
def log_files_closed(restore_logging: None) -> Iterator[None]:
    """The demo logs to a file in its data folder: close that handler after the test."""
    root = logging.getLogger()
    before = set(root.handlers)
    yield
    for handler in set(root.handlers) - before:
        handler.close()


@pytest.mark.usefixtures("log_files_closed")
def test_a_small_demo_day_prints_every_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Calls, appeals on five channels, bookings, callbacks and chasing, each summed up."""
    args = ["--calls", "12", "--appeals", "10", "--bookings", "3", "--items", "20"]
    code = main(["--data-dir", str(tmp_path / "data"), "demo", *args, "--speed", "3000"])
    out = capsys.readouterr().out
    assert code == 0, out
    for line in ("热线一小时小结", "诉求受理（五个渠道，一事一案）", "首次回访满意率（按单位）"):
        assert line in out
    assert "接口拒收" not in out and "预约接口拒收" not in out
    assert "预约 3 件，取消 2 件；短信：预约确认 3 条，取消通知 2 条" in out
    assert "诉求督办：超期案件 6 件逐级督办" in out
