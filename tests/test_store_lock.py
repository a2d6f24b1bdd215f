"""One gateway per store, across real processes: a second refuses at start with one line,
read-only commands run beside the first, and a kill -9 frees the store at once."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sms_support import (
    ACCOUNT,
    ORDER_VARS,
    TOKEN,
    gateway_process,
    process_settings,
    stop_process,
)

from gateway.sim.twilio import SimulatedTwilio


def _settings(tw: SimulatedTwilio, data: Path) -> list[str]:
    return process_settings(tw, **{"gateway.data_dir": str(data)})[0]


async def _run(settings: list[str], *command: str) -> tuple[int, str, str]:
    proc = await gateway_process(*settings, *command)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _serving(settings: list[str]) -> asyncio.subprocess.Process:
    """``gateway sms run`` started and serving (its first line printed)."""
    proc = await gateway_process(*settings, "sms", "run")
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        line = await proc.stdout.readline()
    assert line.startswith(b"outbox running"), line
    return proc


async def test_second_gateway_refuses_and_kill_frees_the_store(tmp_path: Path) -> None:
    """While one process serves a store, gateway run and sms run refuse with one line naming
    its pid; list and send --wait work beside it; after kill -9 a new one starts at once."""
    async with SimulatedTwilio(ACCOUNT, TOKEN, time_scale=0.1) as tw:
        settings = _settings(tw, tmp_path / "data")
        first = await _serving(settings)
        try:
            for command in (["run"], ["sms", "run"]):
                code, out, err = await _run(settings, *command)
                assert code == 1, (command, out, err)
                lines = err.strip().splitlines()
                assert len(lines) == 1 and "in use by another gateway" in lines[0], err
                assert f"pid {first.pid}" in lines[0]
            code, out, err = await _run(settings, "sms", "list")
            assert code == 0 and "没有短信" in out, err
            variables = [f"--var={k}={v}" for k, v in ORDER_VARS.items()]
            send = ["sms", "send", "--to=13912345678", "--template=rectification_order"]
            code, out, err = await _run(settings, *send, *variables, "--key=beside", "--wait=30")
            assert code == 0 and "a running gateway sends it" in out, (out, err)
            assert len(tw.messages) == 1  # sent by the first process's outbox, once
        finally:
            await stop_process(first, signal.SIGKILL)
        # No gateway now: send --wait takes the lock and runs an outbox of its own.
        code, out, err = await _run(settings, *send, *variables, "--key=alone", "--wait=30")
        assert code == 0 and "running gateway" not in out and "(SM" in out, (out, err)
        assert len(tw.messages) == 2
        second = await _serving(settings)  # the kernel released the killed one's lock
        await stop_process(second)
        assert second.returncode == 0
