"""The `gateway` command answers a user's mistake (configuration, store file, port) with
one line and a non-zero exit, never a Python traceback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import cli
from gateway.clock import Clock
from gateway.store import Store, StoreUnavailable

ROOT = Path(__file__).resolve().parent.parent


# cli.main points the root logger at the captured stderr: undo it after each test.
pytestmark = pytest.mark.usefixtures("restore_logging")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    err = capsys.readouterr().err
    return code, err


def assert_one_line(err: str) -> None:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err


def make_store(path: Path) -> None:
    async def create() -> None:
        async with Store.open(path, Clock()) as store:
            await store.units.add_unit("LZ", "测试市局", "city")

    asyncio.run(create())


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("pbx.main.port=99999", "pbx.main.port"),
        ("web.port=-1", "web.port"),
        ("gateway.timezone=Mars/Olympus", "gateway.timezone"),
        ("gateway.log_level=LOUD", "gateway.log_level"),
        ("callbacks.max_concurrent_calls=-3", "callbacks.max_concurrent_calls"),
        ("sms.from_number=not-a-number", "sms.from_number"),
        ("pbx.main.auth=clear", "pbx.main.auth"),
    ],
)
def test_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, named: str
) -> None:
    """Each bad setting stops any command before it runs, naming the key."""
    code, err = run(["--data-dir", str(tmp_path), "--set", setting, "calls"], capsys)
    assert code == 2
    assert_one_line(err)
    assert named in err


def test_file_that_is_not_a_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store file holding something else is named with the problem, in one line."""
    (tmp_path / "gateway.sqlite3").write_text("name,phone\n张三,13912345678\n" * 50)
    code, err = run(["--data-dir", str(tmp_path), "calls"], capsys)
    assert code == 1
    assert_one_line(err)
    assert str(tmp_path / "gateway.sqlite3") in err
    assert "not a SQLite database" in err


def test_truncated_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store cut short (a half-copied file) is refused as truncated, in one line."""
    path = tmp_path / "gateway.sqlite3"
    make_store(path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.truncate(size // 2)
    code, err = run(["--data-dir", str(tmp_path), "calls"], capsys)
    assert code == 1
    assert_one_line(err)
    assert "truncated" in err and str(path) in err


def test_a_store_killed_during_a_checkpoint_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store whose process died mid-checkpoint (page 1 already says the new, larger size;
    the later pages are still only in the write-ahead log) is not taken for a truncated
    file: SQLite replays the log and every row is there."""
    path = tmp_path / "gateway.sqlite3"
    log = path.with_name(path.name + "-wal")
    make_store(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = path.read_bytes()
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("CREATE TABLE filler (x BLOB)")
        conn.executemany("INSERT INTO filler VALUES (randomblob(4000))", [()] * 200)
        wal = log.read_bytes()  # the log as a crash leaves it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_one = path.read_bytes()[:4096]  # the header now gives the grown size
    path.write_bytes(page_one + before[4096:])  # only page 1 of the checkpoint landed
    log.write_bytes(wal)
    path.with_name(path.name + "-shm").unlink(missing_ok=True)
    assert len(path.read_bytes()) < int.from_bytes(page_one[28:32], "big") * 4096
    code, err = run(["--data-dir", str(tmp_path), "calls"], capsys)
    assert code == 0, err
    assert "Traceback" not in err and "truncated" not in err
    with contextlib.closing(sqlite3.connect(path)) as check:
        assert check.execute("SELECT count(*) FROM filler").fetchone()[0] == 200


def test_store_of_a_newer_schema_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store made by a newer gateway is refused with both versions, even by db migrate."""
    path = tmp_path / "gateway.sqlite3"
    make_store(path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    for command in (["db", "migrate"], ["calls"]):
        code, err = run(["--data-dir", str(tmp_path), *command], capsys)
        assert code == 1
        assert_one_line(err)
        assert "schema version 99 is newer than this gateway's" in err


def run_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *settings: str
) -> tuple[int, str]:
    """`gateway run` with a PBX that never answers and a Twilio that is never reached."""
    args = ["--data-dir", str(tmp_path)]
    for setting in settings:
        args += ["--set", setting]
    return run(
        [
            *args,
            "--set",
            "pbx.main.port=1",
            "--set",
            "sms.account_sid=AC" + "0f" * 16,
            "--set",
            "sms.api_base_url=http://127.0.0.1:1",
            "--set",
            "sms.from_number=+8610690000001",
            "--set",
            f"ivr.flows_dir={ROOT / 'flows'}",
            "--set",
            f"ivr.prompts={ROOT / 'recordings' / 'prompts.yaml'}",
            "run",
        ],
        capsys,
    )


def test_web_port_in_use_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gateway run` on a web port already taken names host, port and reason, exit 1."""
    monkeypatch.setenv("GATEWAY_SMS_AUTH_TOKEN", "tok")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = run_gateway(tmp_path, capsys, f"web.port={port}")
    assert code == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("gateway:")]
    assert lines == [
        f"gateway: web: cannot listen on 127.0.0.1:{port} (web.host, web.port):"
        " Address already in use"
    ]


def test_web_host_not_on_this_machine_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A web.host that is no address of this machine (TEST-NET-1) is named in one line."""
    monkeypatch.setenv("GATEWAY_SMS_AUTH_TOKEN", "tok")
    code, err = run_gateway(tmp_path, capsys, "web.host=192.0.2.1", "web.port=8080")
    assert code == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("gateway:")]
    assert lines == [
        "gateway: web: cannot listen on 192.0.2.1:8080 (web.host, web.port):"
        " Cannot assign requested address"
    ]


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A data folder holding a store, then made read-only: immutable for root (which
    ignores permissions), mode 0555 for anyone else."""
    folder = tmp_path / "data"
    store = folder / "gateway.sqlite3"
    make_store(store)
    with sqlite3.connect(store) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for leftover in folder.glob("gateway.sqlite3-*"):
        leftover.unlink()
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if as_root:
        locked = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
        if locked.returncode != 0:
            pytest.skip("root ignores permissions and this file system has no immutable flag")
    else:
        os.chmod(folder, 0o555)
    try:
        yield folder
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        os.chmod(folder, 0o755)


def test_read_only_data_folder_even_for_gateway_calls(
    read_only_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway calls` on a data folder it cannot write gets one line naming the folder."""
    code, err = run(["--data-dir", str(read_only_dir), "calls"], capsys)
    assert code == 1
    assert_one_line(err)
    assert f"the folder {read_only_dir} is read-only" in err


def test_store_error_is_one_line_unless_debug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder where the store file should be is one line; the hidden --debug lets the
    exception through, so its traceback shows."""
    (tmp_path / "gateway.sqlite3").mkdir()
    code, err = run(["--data-dir", str(tmp_path), "calls"], capsys)
    assert code != 0
    assert_one_line(err)
    with pytest.raises(StoreUnavailable, match=r"gateway\.sqlite3"):
        cli.main(["--debug", "--data-dir", str(tmp_path), "calls"])
