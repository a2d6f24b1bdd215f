"""A seeded random population of hotline callers, for the demo and load runs."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

from gateway.sim.ami.script import (
    CallerScript,
    HangUp,
    Press,
    Silence,
    Speak,
    Step,
    WaitForAgent,
    WaitForPrompt,
)

if TYPE_CHECKING:
    from gateway.sim.ami.server import SimulatedPbx
    from gateway.sim.ami.world import SimCall

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"


def random_caller(rng: random.Random, dialled: str = "9600110") -> CallerScript:
    """One plausible caller: a mobile number, a Chinese name, and a path through the menus."""
    number = f"+861{rng.choice('3578')}{rng.randrange(10**9):09d}"
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
    steps: list[Step] = [WaitForPrompt(input=True, timeout=60)]
    roll = rng.random()
    if roll < 0.1:
        steps += [Silence(rng.uniform(1, 5)), HangUp()]  # hangs up during the greeting
    elif roll < 0.2:
        steps += [Silence(30)]  # says nothing: the IVR's timeouts
    else:
        steps += [Press(rng.choice("1234")), WaitForPrompt(input=True, timeout=60)]
        if rng.random() < 0.4:
            steps += [Speak(rng.uniform(3, 20)), Press("#")]
        else:
            steps += [Press(str(rng.randrange(1, 4)))]
        if rng.random() < 0.5:
            steps += [WaitForAgent(timeout=rng.uniform(20, 120))]
            if rng.random() < 0.3:
                steps += [HangUp()]  # tired of waiting: abandons if no agent came
    return CallerScript(
        caller=number, caller_name=name, dialled=dialled, steps=steps, language="zh"
    )


async def generate_calls(
    pbx: SimulatedPbx, count: int | None, *, per_minute: float = 6.0, seed: int = 1
) -> list[SimCall]:
    """Place ``count`` random calls (forever if None), about ``per_minute`` a simulated minute."""
    if per_minute <= 0:
        raise ValueError(f"per_minute must be positive, got {per_minute}")
    rng = random.Random(seed)
    calls: list[SimCall] = []
    placed = 0
    while count is None or placed < count:
        calls.append(pbx.place_call(random_caller(rng)))
        placed += 1
        await asyncio.sleep(pbx.world.real(rng.expovariate(per_minute / 60)))
    return calls
