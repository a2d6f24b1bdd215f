"""`gateway sms send | list | show` on a temporary data folder (no network: queued only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main

VARS = [
    "--var", "unit=东关派出所", "--var", "business=居民身份证", "--var", "case_ref=ZG20261130-0001",
    "--var", "reason=办事拖拉", "--var", "citizen=+8613912345678", "--var", "deadline=12月3日18时",
]  # fmt: skip


def run(tmp_path: Path, *args: str) -> int:
    return main(["--data-dir", str(tmp_path), *args])


def test_send_list_and_show_a_queued_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A queued order shows in the table (masked, in Chinese) and in JSON (in full)."""
    code = run(tmp_path, "sms", "send", "--to", "139 1234 5678", "--template",
               "rectification_order", "--key", "order:1:level:1", *VARS)  # fmt: skip
    assert code == 0
    assert "text #1 queued" in capsys.readouterr().out
    assert run(tmp_path, "sms", "list") == 0
    table = capsys.readouterr().out
    assert "整改通知" in table and "待发送" in table and "139****5678" in table
    assert "+8613912345678" not in table
    assert run(tmp_path, "sms", "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["to"] for r in rows] == ["+8613912345678"]
    assert run(tmp_path, "sms", "show", "1") == 0
    assert "order:1:level:1" in capsys.readouterr().out


def test_same_key_queues_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Sending twice with one idempotency key leaves one text."""
    for _ in range(2):
        run(tmp_path, "sms", "send", "--to", "13912345678", "--template",
            "rectification_order", "--key", "k1", *VARS)  # fmt: skip
    capsys.readouterr()
    run(tmp_path, "sms", "list", "--json")
    assert len(json.loads(capsys.readouterr().out)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "010 6552 1234", "--template", "rectification_order", *VARS], "fixed line"),
        (["--to", "13912345678", "--template", "nope"], "nope"),
        (
            ["--to", "13912345678", "--template", "rectification_order", "--var", "unit"],
            "NAME=VALUE",
        ),
        (
            ["--to", "13912345678", "--template", "rectification_order", "--var", "unit=x"],
            "missing",
        ),
    ],
)
def test_bad_sends_are_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """A landline, an unknown template, a malformed or missing variable: exit 1, reason shown."""
    assert run(tmp_path, "sms", "send", *args) == 1
    assert message in capsys.readouterr().err


def test_empty_list_and_unknown_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No texts yet says so; an unknown id is an error naming it."""
    assert run(tmp_path, "sms", "list") == 0
    assert "没有短信" in capsys.readouterr().out
    assert run(tmp_path, "sms", "show", "42") == 1
    assert "42" in capsys.readouterr().err
