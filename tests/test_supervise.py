"""Supervised loops and owned tasks: errors are logged once, loops go on, close awaits all."""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3

import pytest

from gateway.supervise import ComponentDegraded, Supervisor
from tests.polling import until as wait_until


def _supervisor() -> Supervisor:
    return Supervisor("test", backoff_min=0.01, backoff_max=0.02, rng=random.Random(1))


async def test_failing_round_is_logged_once_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A loop whose body raises the same store error three times logs it once, then works."""
    supervisor = _supervisor()
    calls = 0

    async def body() -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise sqlite3.OperationalError("database is locked")

    with caplog.at_level(logging.DEBUG, logger="gateway.supervise"):
        state = supervisor.loop("outbox", body, every=0.01)
        await wait_until(lambda: state.rounds >= 2)
        await supervisor.aclose()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "database is locked" in errors[0].getMessage()
    assert state.errors_seen == {"OperationalError: database is locked": 3}
    assert not state.degraded
    assert supervisor.tasks == 0


async def test_check_names_the_degraded_loop_until_it_recovers() -> None:
    """While a loop fails, check() raises naming it; a good round clears it."""
    supervisor = _supervisor()
    broken = asyncio.Event()
    broken.set()

    async def body() -> None:
        if broken.is_set():
            raise OSError("disk full")

    state = supervisor.loop("scheduler", body, every=0.01)
    await wait_until(lambda: state.failures >= 1)
    with pytest.raises(ComponentDegraded, match=r"scheduler.*disk full"):
        supervisor.check()
    broken.clear()
    await wait_until(lambda: state.rounds >= 1)
    supervisor.check()
    await supervisor.aclose()


async def test_spawned_task_error_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """A spawned task that raises is logged with its name and does not disturb the caller."""
    supervisor = _supervisor()

    async def boom() -> None:
        raise RuntimeError("bad row")

    with caplog.at_level(logging.ERROR, logger="gateway.supervise"):
        task = supervisor.spawn("sms-7", boom())
        assert await task is None
    assert any("sms-7" in r.getMessage() for r in caplog.records)
    await supervisor.aclose()


async def test_close_cancels_and_awaits_every_task() -> None:
    """aclose() cancels running loops and spawned tasks and returns when all ended."""
    supervisor = _supervisor()
    ended: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.append(name)

    supervisor.spawn("a", forever("a"))
    supervisor.loop("b", lambda: forever("b"))
    await asyncio.sleep(0)
    await supervisor.aclose()
    assert sorted(ended) == ["a", "b"]
    assert supervisor.tasks == 0
    with pytest.raises(RuntimeError, match="closed"):
        supervisor.loop("c", lambda: forever("c"))


async def test_wake_runs_the_next_round_at_once() -> None:
    """A loop waiting out a long pause runs its next round as soon as it is woken."""
    supervisor = _supervisor()
    wake = asyncio.Event()
    state = supervisor.loop("tick", lambda: asyncio.sleep(0), every=3600, wake=wake)
    await wait_until(lambda: state.rounds == 1)
    wake.set()
    await wait_until(lambda: state.rounds == 2)
    await supervisor.aclose()


async def test_in_round_tells_whether_the_body_runs_now() -> None:
    """``in_round`` is true while the body runs (also after a wake or a failed round's
    retry) and false between rounds, so "not woken and not in a round" means idle."""
    supervisor = _supervisor()
    wake = asyncio.Event()
    release = asyncio.Event()
    fail = False

    async def body() -> None:
        await release.wait()
        release.clear()
        if fail:
            raise sqlite3.OperationalError("database is locked")

    state = supervisor.loop("tick", body, every=3600, wake=wake)
    await asyncio.sleep(0)
    assert state.in_round
    release.set()
    await wait_until(lambda: state.rounds == 1)
    assert not state.in_round
    wake.set()
    await wait_until(lambda: not wake.is_set())
    assert state.in_round  # cleared the wake and went straight into the round
    fail = True
    release.set()
    await wait_until(lambda: state.failures == 1 and state.in_round)  # the retry
    fail = False
    release.set()
    await wait_until(lambda: state.rounds == 2)
    assert not state.in_round and state.failures == 0
    await supervisor.aclose()


async def test_a_task_closed_before_it_starts_leaves_no_unawaited_coroutine() -> None:
    """Spawned and closed at once (a stop right after a send): the coroutine is closed,
    not left for the garbage collector to warn about."""
    supervisor = _supervisor()
    started = False

    async def work() -> None:
        nonlocal started
        started = True

    coro = work()
    supervisor.spawn("never-started", coro)
    await supervisor.aclose()
    assert not started
    assert coro.cr_frame is None  # closed: it can no longer run, and warns about nothing
