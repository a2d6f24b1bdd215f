"""Two gateways on one PostgreSQL database, both logged in to one PBX whose dialplan
hands hotline calls over by AsyncAGI: every gateway gets each ``AsyncAGIStart``, one at a
time runs the flows (:meth:`gateway.cluster.leader.Leadership.claim_asyncagi`), and the
other takes the PBX over when the serving one's database connection dies."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from gateway.app import PBX
from gateway.clock import ScaledClock
from gateway.cluster.wiring import CLUSTER
from gateway.demo.stack import Stack, running_stack
from gateway.sim.ami import CallerScript, CallOutcome, HangUp, WaitForPrompt
from tests.polling import until
from tests.test_hotline_e2e import CALLER, CALLER_NAME, HOTLINE, MONDAY_9AM_SHANGHAI, ROOT

pytestmark = pytest.mark.postgres


async def menu_call(stack: Stack) -> CallOutcome:
    """A caller who hears the welcome and the main menu, then hangs up."""
    script = CallerScript(
        caller=CALLER,
        caller_name=CALLER_NAME,
        dialled=HOTLINE,
        steps=[WaitForPrompt("main_menu", timeout=120), HangUp()],
        language="zh",
    )
    return await asyncio.wait_for(stack.pbx.place_call(script).finished, 30)


async def test_one_of_two_gateways_runs_each_asyncagi_call_and_the_other_takes_over(
    tmp_path: Path, postgres_url: str
) -> None:
    """Each call runs one flow (its prompts are heard once), on the gateway that serves
    the PBX; when that gateway leaves the database (its place among the gateways ends,
    as when it dies), the other serves the next call, again once."""
    clock = ScaledClock(MONDAY_9AM_SHANGHAI, 100.0)
    async with running_stack(
        tmp_path / "data",
        clock,
        agents=2,
        recordings_dir=ROOT / "recordings" / "zh",
        overrides=[f"store.url={postgres_url}", "gateway.name=gw-a"],
        run_scheduler=False,
        agi="async",
    ) as stack:
        config = stack.config
        second = dataclasses.replace(
            config, gateway=dataclasses.replace(config.gateway, name="gw-b")
        )
        app, runner = await stack.another_gateway(second)
        try:
            a, b = stack.app[CLUSTER], app[CLUSTER]
            await until(lambda: app[PBX]["main"].connected, 10)
            assert a.serves_asyncagi("main") and not b.serves_asyncagi("main")

            first = await menu_call(stack)
            assert first.prompts == ["welcome", "main_menu"], first.prompts

            await a.aclose()
            await until(lambda: b.serves_asyncagi("main"), 10)
            assert not a.serves_asyncagi("main")
            second_call = await menu_call(stack)
            assert second_call.prompts == ["welcome", "main_menu"], second_call.prompts
        finally:
            await runner.cleanup()
