"""Shared set-up of the AMI session tests: a simulated Asterisk and a PBX section for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from gateway.config import PbxSection, Secret
from gateway.sim.ami import SimConfig, SimulatedPbx

SECRET = "s3cret"


def section(pbx: SimulatedPbx, **changes: Any) -> PbxSection:
    """Fast timings for tests; the simulated PBX's address and account."""
    base = PbxSection(
        name="main",
        host="127.0.0.1",
        port=pbx.port,
        username="gateway",
        secret=Secret(SECRET),
        auth="plain",
        ping_interval=5.0,
        ping_timeout=0.5,
        action_timeout=2.0,
        connect_timeout=2.0,
        reconnect_min=0.01,
        reconnect_max=0.05,
        login_attempts=3,
    )
    return replace(base, **changes)


async def simulated_pbx() -> AsyncIterator[SimulatedPbx]:
    """The body of each test module's ``pbx`` fixture: a simulated Asterisk on a free
    loopback port, 100× faster than real time."""
    async with SimulatedPbx(SimConfig(port=0, secret=SECRET, time_scale=0.01)) as sim:
        yield sim
