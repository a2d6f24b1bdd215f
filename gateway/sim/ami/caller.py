"""The simulated citizen on a call: hears prompts, follows a script of steps."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from gateway.sim.ami.channel import SimChannel
from gateway.sim.ami.script import (
    HangUp,
    Press,
    Silence,
    Speak,
    Step,
    WaitForAgent,
    WaitForPrompt,
)

if TYPE_CHECKING:
    from gateway.sim.ami.world import SimCall, World

log = logging.getLogger("gateway.sim.ami")


class CallerSide:
    """Runs a caller's steps against the channel and notes what the caller heard."""

    def __init__(
        self, world: World, chan: SimChannel, steps: tuple[Step, ...], call: SimCall
    ) -> None:
        self.world = world
        self.chan = chan
        self.steps = steps
        self.call = call
        self.outcome = call.outcome
        # what the caller notices, in order: ("prompt", name, is_input), ("input", kind, True),
        # ("agent", member, False), ("end", "", False)
        self._notices: asyncio.Queue[tuple[str, str, bool]] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._ended = asyncio.Event()

    # called by the PBX side

    def heard(self, prompt: str, *, listening: bool) -> None:
        self.outcome.prompts.append(prompt)
        self._notices.put_nowait(("prompt", prompt, listening))

    def input_requested(self, kind: str) -> None:
        self._notices.put_nowait(("input", kind, True))

    def agent_connected(self) -> None:
        self._connected.set()
        self._notices.put_nowait(("agent", self.outcome.agent or "", False))

    def call_ended(self) -> None:
        self._ended.set()
        self._notices.put_nowait(("end", "", False))
        self.call._finish()

    # the script

    async def run(self) -> None:
        try:
            for step in self.steps:
                if self._ended.is_set():
                    break
                await self._step(step)
            await self._ended.wait()
        finally:
            if not self._ended.is_set() and not self.chan.gone:
                # the simulator is stopping: the citizen leaves the line
                self.world.request_hangup(self.chan, cause=16, soft=False, by_caller=True)

    async def _step(self, step: Step) -> None:
        world = self.world
        if isinstance(step, WaitForPrompt):
            await self._wait_prompt(step)
        elif isinstance(step, Press):
            for i, digit in enumerate(step.digits):
                if i:
                    await self._pause(step.gap)
                if self._ended.is_set():
                    return
                await world.press(self.chan, digit, step.duration_ms)
        elif isinstance(step, Silence):
            await self._pause(step.seconds)
        elif isinstance(step, Speak):
            world.speak(self.chan, step.seconds)
            await self._pause(step.seconds)
        elif isinstance(step, HangUp):
            world.request_hangup(self.chan, cause=16, soft=False, by_caller=True)
        elif isinstance(step, WaitForAgent):
            await self._until(self._connected.wait(), step.timeout)

    async def _pause(self, seconds: float) -> None:
        # asyncio.timeout rather than wait_for: no extra task per wait (thousands of callers)
        try:
            async with asyncio.timeout(self.world.real(seconds)):
                await self._ended.wait()
        except TimeoutError:
            pass

    async def _until(self, waiter: object, limit: float | None) -> None:
        ended = asyncio.ensure_future(self._ended.wait())
        target = asyncio.ensure_future(waiter)  # type: ignore[call-overload]
        try:
            await asyncio.wait(
                {ended, target},
                return_when=asyncio.FIRST_COMPLETED,
                timeout=None if limit is None else self.world.real(limit),
            )
        finally:
            for fut in (ended, target):
                fut.cancel()
            await asyncio.gather(ended, target, return_exceptions=True)

    async def _wait_prompt(self, step: WaitForPrompt) -> None:
        if step.nth is not None and len(self.outcome.prompts) >= step.nth:
            return
        loop = asyncio.get_running_loop()
        deadline = None if step.timeout is None else loop.time() + self.world.real(step.timeout)
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            try:
                async with asyncio.timeout(remaining):
                    kind, name, listening = await self._notices.get()
            except TimeoutError:
                return
            if kind == "end":
                return
            if step.nth is not None:
                if len(self.outcome.prompts) >= step.nth:
                    return
                continue
            if step.input:
                if listening:
                    return
                continue
            if kind == "prompt" and (step.name is None or name == step.name):
                return
