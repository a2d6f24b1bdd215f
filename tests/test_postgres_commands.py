"""The gateway and its commands on PostgreSQL (``store.url``): ``gateway run`` serves with
the store healthy and a second gateway on the same database is not refused; the everyday
commands work on the database as on the SQLite file."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sms_support import (
    ACCOUNT,
    ORDER_VARS,
    TOKEN,
    gateway_process,
    healthy_process,
    process_settings,
    stop_process,
    until,
)

from gateway import cli
from gateway.clock import Clock
from gateway.sim.ami import SimConfig, SimulatedPbx
from gateway.sim.twilio import SimulatedTwilio
from gateway.store import Store

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("restore_logging")]

PBX_SECRET = "s3cret"


def _settings(
    url: str, tw: SimulatedTwilio, pbx_port: int, data: Path, name: str = "gw-1"
) -> tuple[list[str], int]:
    """Command-line settings of the gateway ``name`` on ``url``, and its web port."""
    return process_settings(
        tw,
        **{
            "gateway.name": name,
            "store.url": url,
            "gateway.data_dir": str(data),
            "pbx.main.port": str(pbx_port),
            "pbx.main.secret": PBX_SECRET,
        },
    )


async def test_two_gateways_run_on_one_postgresql_database(
    tmp_path: Path, postgres_url: str
) -> None:
    """`gateway run` with store.url starts on a new database (migrating it), answers /health
    with the store ok, and a second `gateway run` (its own name) on the same database starts instead
    of being refused; `sms send --wait` beside them (an outbox of its own, as there is no
    lock to tell it a gateway serves) gets its text out once; both stop cleanly, and no
    SQLite file or lock file is made."""
    async with (
        SimulatedPbx(SimConfig(port=0, secret=PBX_SECRET, time_scale=0.01)) as pbx,
        SimulatedTwilio(ACCOUNT, TOKEN, time_scale=0.1) as tw,
    ):
        first_args, first_port = _settings(postgres_url, tw, pbx.port, tmp_path / "one")
        second_args, second_port = _settings(postgres_url, tw, pbx.port, tmp_path / "two", "gw-2")
        first = await gateway_process(*first_args, "run")
        second = None
        try:
            health = await healthy_process(first_port, first)
            checks = health["checks"]
            assert isinstance(checks, dict) and checks["store"] == {"status": "ok"}
            second = await gateway_process(*second_args, "run")
            health = await healthy_process(second_port, second)
            assert isinstance(health["checks"], dict)
            assert health["checks"]["store"] == {"status": "ok"}
            assert first.returncode is None  # both serve at once
            out = await _send_order(first_args, "beside-two", "--wait=30")
            assert b"(SM" in out
            await asyncio.sleep(0.5)  # time for a second send, if any worker made one
            assert len(tw.messages) == 1
        finally:
            errors = [await stop_process(p) for p in (first, second) if p is not None]
        assert first.returncode == 0 and second is not None and second.returncode == 0, errors
    for err in errors:
        assert b"gateway-test" not in err  # the password never reaches the log
    made = await asyncio.to_thread(lambda: [p.name for p in tmp_path.rglob("*")])
    assert not [name for name in made if ".sqlite3" in name or name.endswith(".lock")], made


async def _send_order(settings: list[str], key: str, *options: str) -> bytes:
    """`gateway sms send` of a rectification order under ``key``: what it printed."""
    variables = [f"--var={k}={v}" for k, v in ORDER_VARS.items()]
    send = await gateway_process(
        *settings,
        "sms",
        "send",
        "--to=13912345678",
        "--template=rectification_order",
        *variables,
        f"--key={key}",
        *options,
    )
    async with asyncio.timeout(60):
        out, err = await send.communicate()
    assert send.returncode == 0, (out, err)
    return out


def _cli(args: list[str], capsys: pytest.CaptureFixture[str], *command: str) -> str:
    code = cli.main([*args, *command])
    captured = capsys.readouterr()
    assert code == 0, (command, captured.out, captured.err)
    return captured.out


def test_everyday_commands_work_on_postgresql(
    tmp_path: Path,
    postgres_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Users, served items, callbacks, texts, orders, cases, calls and the daily report run
    on PostgreSQL through the command line, and what one writes the others read; no SQLite
    file is made."""
    args = ["--data-dir", str(tmp_path), "--set", f"store.url={postgres_url}"]
    _cli(args, capsys, "db", "migrate")
    _cli(args, capsys, "db", "seed")
    monkeypatch.setattr("sys.stdin", io.StringIO("Station-chief-2026\n"))
    add = ["users", "add", "zhang", "--role", "station", "--unit", "LZ-DC-02"]
    _cli(args, capsys, *add, "--password-stdin")
    assert "zhang" in _cli(args, capsys, "users", "list")
    served = (datetime.now() - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    items = tmp_path / "items.csv"
    items.write_text(
        "reference,kind,unit,citizen_number,served_at,citizen_name\n"
        f"A1,id_card,LZ-DC-01,13912345678,{served},王五\n",
        encoding="utf-8",
    )
    assert "1 served items added" in _cli(args, capsys, "callbacks", "import", str(items))
    summary = json.loads(_cli(args, capsys, "callbacks", "--json"))
    assert summary["items"] == {"pending": 1}
    assert json.loads(_cli(args, capsys, "orders", "--json")) == []
    queued = _cli(
        args,
        capsys,
        "sms",
        "send",
        "--to=13912345678",
        "--template=rectification_order",
        *[f"--var={k}={v}" for k, v in ORDER_VARS.items()],
        "--key=pg-1",
    )
    assert "queued" in queued
    assert "待发送" in _cli(args, capsys, "sms", "list")
    assert "13912345678" not in _cli(args, capsys, "sms", "show", "1")
    assert json.loads(_cli(args, capsys, "calls", "--json")) == []
    assert json.loads(_cli(args, capsys, "cases", "--json")) == []
    yesterday = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%d")
    _cli(args, capsys, "report", "daily", "--date", yesterday, "--no-texts")
    assert not list(tmp_path.rglob("*.sqlite3*"))


async def test_a_command_on_an_unreachable_database_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command whose store.url cannot be reached stops with one line naming the database
    without its password (no traceback)."""
    url = "postgresql://gw:s3cret@127.0.0.1:1/gateway"
    code = await asyncio.to_thread(
        cli.main, ["--data-dir", str(tmp_path), "--set", f"store.url={url}", "calls"]
    )
    err = capsys.readouterr().err
    assert code != 0
    assert [line for line in err.splitlines() if line.strip()] == [err.strip()]
    assert "postgresql://gw@127.0.0.1:1/gateway" in err and "connection refused" in err
    assert "s3cret" not in err


async def test_store_configured_opens_the_database_with_its_settings(
    tmp_path: Path, postgres_url: str
) -> None:
    """Store.configured opens store.url (not a SQLite file) with store.lock_timeout and a
    pool of store.pool_size connections."""
    from gateway import config as config_module
    from gateway.store.postgres import PostgresDatabase

    config = config_module.load(
        overrides=[
            f"gateway.data_dir={tmp_path}",
            f"store.url={postgres_url}",
            "store.lock_timeout=2.5",
            "store.pool_size=3",
        ]
    )
    async with Store.configured(config, Clock()) as store:
        assert isinstance(store.db, PostgresDatabase)
        assert store.db.lock_timeout == 2.5
        assert store.db.pool.get_max_size() == 3
        assert store.db.file is None and "gateway-test" not in store.name


async def _health(port: int) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/health") as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


async def test_sms_run_works_beside_a_gateway_and_leaves_it_the_leadership(
    tmp_path: Path, postgres_url: str
) -> None:
    """`gateway sms run` on PostgreSQL (the outbox and Twilio's webhooks alone) serves under
    its own name but never leads, even started first: the `gateway run` that comes after
    leads the periodic jobs. A text queued on the database goes out exactly once."""
    async with (
        SimulatedPbx(SimConfig(port=0, secret=PBX_SECRET, time_scale=0.01)) as pbx,
        SimulatedTwilio(ACCOUNT, TOKEN, time_scale=0.1) as tw,
    ):
        sms_args, sms_port = _settings(postgres_url, tw, pbx.port, tmp_path / "sms", "sms-1")
        gw_args, gw_port = _settings(postgres_url, tw, pbx.port, tmp_path / "gw", "gw-1")
        outbox = await gateway_process(*sms_args, "sms", "run")
        gateway = None
        try:
            health = await healthy_process(sms_port, outbox)
            assert health["checks"]["cluster"]["name"] == "sms-1"
            assert health["checks"]["cluster"]["leader"] == "(none yet)"
            gateway = await gateway_process(*gw_args, "run")
            await healthy_process(gw_port, gateway)

            async def led_by_the_gateway() -> bool:
                return (await _health(sms_port))["checks"]["cluster"]["leader"] == "gw-1"

            await until(led_by_the_gateway, 30)
            await _send_order(sms_args, "beside-sms-run")
            await until(lambda: len(tw.messages) == 1, 30)
            await asyncio.sleep(0.5)  # time for a second send, if any worker made one
            assert len(tw.messages) == 1
        finally:
            errors = [await stop_process(p) for p in (outbox, gateway) if p is not None]
        assert outbox.returncode == 0 and gateway is not None and gateway.returncode == 0, errors
