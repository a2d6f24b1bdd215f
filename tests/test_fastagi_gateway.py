"""FastAGI in the running gateway: the `[agi]` listener, the same flows over it, and what
callers go through when the gateway process dies (kill -9) with calls in hand."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from gateway.app import PBX
from gateway.clock import ScaledClock
from gateway.config import ConfigError
from gateway.config import load as load_config
from gateway.demo.stack import AGI_TRANSPORTS, PBX_USER, running_stack
from gateway.sim.ami import (
    CallerScript,
    Press,
    Silence,
    SimCall,
    SimConfig,
    SimulatedPbx,
    WaitForPrompt,
)
from gateway.sim.ami.config import shipped_gateway_user
from tests.polling import until
from tests.sim_ami_client import RawAmi

ROOT = Path(__file__).resolve().parent.parent
SECRET = "fastagi-s3cret"
# Simulated seconds per real second of the PBX: prompts and menu timeouts shrink by it.
TIME_SCALE = 0.25
# No caller waits longer than this (real seconds) for the dialplan to move on.
SILENCE_BOUND = 3.0
MONDAY_9AM_SHANGHAI = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_fastagi_port_is_checked_like_every_other_key() -> None:
    """agi.listen_port beyond 65535 is refused with one line naming the key."""
    with pytest.raises(ConfigError, match=r"agi\.listen_port: must be from 0 to 65535"):
        load_config(overrides=["agi.listen_port=70000"])
    assert load_config().agi.listen_port == 0  # off unless configured


async def _start_gateway(
    tmp_path: Path, ami_port: int, agi_port: int, web_port: int
) -> asyncio.subprocess.Process:
    """``gateway run`` in its own process, FastAGI on ``agi_port``; its output in
    ``tmp_path/gateway.log``."""
    values = {
        "gateway.data_dir": str(tmp_path / "data"),
        "pbx.main.port": str(ami_port),
        "pbx.main.reconnect_min": "0.2",
        "pbx.main.reconnect_max": "1",
        "agi.listen_port": str(agi_port),
        # No text is sent here: the provider's address only has to be well formed.
        "sms.api_base_url": f"http://127.0.0.1:{_free_port()}",
        "sms.account_sid": "AC" + "fa" * 16,
        "sms.from_number": "+8610690000001",
        "web.port": str(web_port),
        "web.public_url": f"http://127.0.0.1:{web_port}",
        "ivr.flows_dir": str(ROOT / "flows"),
        "ivr.prompts": str(ROOT / "recordings" / "prompts.yaml"),
        "hotline.working_hours": "00:00-24:00",
        "hotline.working_days": "1,2,3,4,5,6,7",
    }
    settings = [a for k, v in values.items() for a in ("--set", f"{k}={v}")]
    log = tmp_path / "gateway.log"
    with log.open("ab") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            *settings,
            "run",
            cwd=ROOT,
            stdout=sink,
            stderr=sink,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "GATEWAY_PBX_MAIN_SECRET": SECRET,
                "GATEWAY_SMS_AUTH_TOKEN": "fastagi-token",
            },
        )
    return proc


@contextlib.asynccontextmanager
async def _gateway_run(
    tmp_path: Path, ami_port: int, agi_port: int
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``gateway run`` in its own process, FastAGI on ``agi_port``, up once /health answers."""
    web_port = _free_port()
    proc = await _start_gateway(tmp_path, ami_port, agi_port, web_port)
    log = tmp_path / "gateway.log"
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(60):
            while True:
                if proc.returncode is not None:
                    raise AssertionError(f"gateway exited: {log.read_text()[-3000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{web_port}/health") as response:
                        if response.status in (200, 503):
                            break
                await asyncio.sleep(0.1)
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_fastagi_port_in_use_stops_the_gateway_with_one_line(tmp_path: Path) -> None:
    """A FastAGI port another program holds ends `gateway run` with one line naming the key."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        async with SimulatedPbx(SimConfig(port=0, users=(shipped_gateway_user(SECRET),))) as pbx:
            proc = await _start_gateway(tmp_path, pbx.port, busy, _free_port())
            assert await asyncio.wait_for(proc.wait(), 60) == 1
    output = (tmp_path / "gateway.log").read_text()
    assert f"agi.listen_port: cannot listen on 127.0.0.1:{busy}" in output
    assert "Traceback" not in output


async def _queued_at(call: SimCall) -> float:
    """The loop time at which the dialplan put ``call`` in the queue."""
    loop = asyncio.get_running_loop()
    await until(lambda: call.outcome.queue is not None, 30, every=0.005)
    return loop.time()


async def test_callers_move_on_to_the_queue_within_seconds_of_a_kill_9(tmp_path: Path) -> None:
    """With the gateway killed (-9), callers in the IVR and callers arriving meanwhile reach
    the queue within a few seconds: FastAGI fails at once, the dialplan goes on.

    A caller in the IVR first hears out the command in hand (as with Asterisk, which
    sees the closed connection only when it writes the result): here the menu, which
    each of them ends with a key 1 simulated second after it began."""
    agi_port = _free_port()
    sim = SimConfig(
        port=0,
        users=(shipped_gateway_user(SECRET),),
        agi_url=f"agi://127.0.0.1:{agi_port}/main",
        time_scale=TIME_SCALE,
        agents=2,
    )
    loop = asyncio.get_running_loop()
    async with SimulatedPbx(sim) as pbx:
        async with _gateway_run(tmp_path, pbx.port, agi_port) as proc:
            # Callers in the IVR: they hear the menu, then press 1 a moment later.
            in_ivr = [
                pbx.place_call(
                    CallerScript(
                        caller=f"1380000010{i}",
                        steps=[WaitForPrompt(name="main_menu"), Silence(1.0), Press("1")],
                    )
                )
                for i in range(3)
            ]
            await until(lambda: all("main_menu" in c.outcome.prompts for c in in_ivr), 30)
            ivr_queued = [asyncio.ensure_future(_queued_at(c)) for c in in_ivr]
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            killed = loop.time()
            # Callers at the door: they arrive while no gateway listens.
            door_placed = loop.time()
            at_door = [
                pbx.place_call(CallerScript(caller=f"1390000010{i}", steps=[Silence(60)]))
                for i in range(3)
            ]
            door_queued = [asyncio.ensure_future(_queued_at(c)) for c in at_door]
            ivr_waits = [t - killed for t in await asyncio.gather(*ivr_queued)]
            door_waits = [t - door_placed for t in await asyncio.gather(*door_queued)]
    print(
        "\nkill -9 → queue, real seconds: in the IVR "
        + ", ".join(f"{w:.2f}" for w in ivr_waits)
        + "; at the door "
        + ", ".join(f"{w:.2f}" for w in door_waits)
    )
    assert all(c.outcome.queue == "hotline" for c in in_ivr + at_door)
    assert max(ivr_waits) < SILENCE_BOUND, ivr_waits
    assert max(door_waits) < SILENCE_BOUND, door_waits


@pytest.mark.parametrize("transport", AGI_TRANSPORTS)
async def test_a_hotline_call_runs_over_either_transport_without_get_variable(
    tmp_path: Path, transport: str
) -> None:
    """The hotline flow runs the same by FastAGI or AsyncAGI, and a hotline call is never
    asked for channel variables (only calls in the callbacks' context can be surveys)."""
    clock = ScaledClock(MONDAY_9AM_SHANGHAI, 100.0)
    async with running_stack(tmp_path / "data", clock, agi=transport, run_scheduler=False) as stack:
        await stack.app[PBX]["main"].wait_connected(10)
        watcher = await RawAmi.connect(stack.pbx.port)
        try:
            secret = stack.config.pbx[0].secret.reveal()
            assert (await watcher.login_md5(PBX_USER, secret)).get("Response") == "Success"
            call = stack.pbx.place_call(
                CallerScript(caller="13800000021", steps=[WaitForPrompt(input=True), Press("0")])
            )
            outcome = await asyncio.wait_for(call.finished, 30)
            commands = [
                f.get("Command", "")
                for f in watcher.events("AGIExecStart")
                if f.get("Channel") == call.channel
            ]
        finally:
            await watcher.close()
    assert outcome.prompts[:2] == ["welcome", "main_menu"] and outcome.queue == "hotline"
    assert any(c.startswith("GET DATA") for c in commands), commands
    assert not [c for c in commands if c.upper().startswith("GET VARIABLE")], commands
