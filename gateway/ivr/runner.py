"""The thin async edge of the flow engine: drives a live :class:`Channel` with a flow.

:class:`FlowRunner` performs the operations the pure :class:`FlowMachine` asks
for on the channel and calls the domain actions. A caller who hangs up raises
:class:`ChannelHungUp` from whatever was running; it is caught in one place,
:meth:`FlowRunner.run`, which records where it happened and then runs the flow's
``on_hangup`` tail (domain actions only: e.g. open the case for a message the
caller left before hanging up). Every run returns a :class:`FlowResult` with the
path for the call record.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from gateway.clock import Clock
from gateway.errors import GatewayError
from gateway.ivr.actions import ActionCall, ActionRegistry, ActionResult
from gateway.ivr.channel import Channel
from gateway.ivr.errors import FlowRuntimeError
from gateway.ivr.flow import Flow
from gateway.ivr.hours import WorkingHours
from gateway.ivr.machine import (
    CallAction,
    CallerGone,
    FlowMachine,
    GetData,
    Hangup,
    Operation,
    PathStep,
    PlayAll,
    Queue,
    ReadDigits,
    Record,
    Stream,
)
from gateway.pbx.exceptions import AmiError, ChannelHungUp, ChannelLinkLost

log = logging.getLogger("gateway.ivr")

Outcome = Literal["completed", "hung_up", "transferred", "link_lost", "error"]


@dataclass(frozen=True)
class FlowResult:
    """How one run of a flow on one call went, for the call record."""

    flow: str
    uniqueid: str
    outcome: Outcome  # completed: the flow hung up; hung_up: the caller did;
    # transferred: the caller was handed to a queue and the call ended there;
    # link_lost: the AMI link dropped (the caller did not hang up); error
    node: str  # the node where it ended (where the caller hung up, for hung_up)
    path: tuple[PathStep, ...]
    variables: Mapping[str, str]
    started_at: datetime
    ended_at: datetime
    queue: str | None = None
    error: str | None = None

    @property
    def keys(self) -> str:
        """Every key the caller pressed, in order: choices, numbers, wrong keys, ``*``."""
        pressed = {"key": None, "digits": None, "invalid": None, "repeat": "*"}
        return "".join(pressed[s.event] or s.detail for s in self.path if s.event in pressed)

    @property
    def nodes(self) -> tuple[str, ...]:
        """The nodes entered, in order."""
        return tuple(s.node for s in self.path if s.event == "enter")


class MessageFolder:
    """Where callers' voice messages go: ``<root>/YYYY/MM/DD/<uniqueid>-<node>-<n>``.

    ``root`` is under the configured data folder, never the source tree. The PBX
    writes the file (``RECORD FILE``), so the path it is given is absolute: Asterisk
    would put a relative one under its own sounds folder. On a separate PBX host the
    folder must be shared (the same path on both).
    """

    def __init__(self, root: Path, clock: Clock) -> None:
        self.root = root.absolute()
        self.clock = clock

    async def path_for(self, uniqueid: str, node: str, attempt: int) -> str:
        local = self.clock.local()
        folder = self.root / f"{local.year:04d}" / f"{local.month:02d}" / f"{local.day:02d}"
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", uniqueid) or "call"
        return str(folder / f"{safe}-{node}-{attempt}")


@dataclass
class FlowRunner:
    """Runs flows on channels; one per application, shared by all calls."""

    actions: ActionRegistry
    clock: Clock
    catalogue: Mapping[str, str]
    messages: MessageFolder
    hours: WorkingHours | None = None
    max_steps: int = 1000

    async def run(
        self,
        flow: Flow,
        channel: Channel,
        variables: Mapping[str, str] | None = None,
        *,
        answer: bool = True,
    ) -> FlowResult:
        """Run ``flow`` on ``channel`` to its end; never raises for a hang-up."""
        machine = FlowMachine(
            flow,
            self.clock,
            self.catalogue,
            self.hours,
            variables={
                "caller_number": channel.caller_number,
                "dialled_number": channel.dialled_number,
                "uniqueid": channel.uniqueid,
                **(variables or {}),
            },
            max_steps=self.max_steps,
        )
        started = self.clock.now()
        outcome: Outcome = "completed"
        error: str | None = None
        in_queue: str | None = None
        steps = machine.run()
        attempts = [0]
        try:
            if answer:
                await channel.answer()
            op = next(steps)
            while True:
                in_queue = op.queue if isinstance(op, Queue) else None
                result = await self._perform(op, channel, machine, flow, attempts)
                in_queue = None
                op = steps.send(result)
        except StopIteration:
            pass
        except ChannelHungUp as exc:  # the one place a hang-up is caught
            if isinstance(exc, ChannelLinkLost):
                outcome = "link_lost"
                machine.note("link_lost", exc.during)
            else:
                outcome = "transferred" if in_queue else "hung_up"
                machine.note("caller_hangup", exc.during)
            steps.close()
            ended_at_node = machine.node or flow.start
            error = await self._after_hangup(flow, channel, machine)
            machine.node = ended_at_node
        except (AmiError, FlowRuntimeError) as exc:
            outcome = "error"
            error = str(exc)
            log.error("flow %s on %s stopped: %s", flow.name, channel.uniqueid, exc)
            steps.close()
        result = FlowResult(
            flow=flow.name,
            uniqueid=channel.uniqueid,
            outcome=outcome,
            node=machine.node or flow.start,
            path=tuple(machine.path),
            variables=dict(machine.variables),
            started_at=started,
            ended_at=self.clock.now(),
            queue=in_queue,
            error=error,
        )
        log.info(
            "flow %s on %s: %s at %s after %d steps",
            flow.name,
            channel.uniqueid,
            outcome,
            result.node,
            len(result.path),
        )
        return result

    async def _perform(
        self, op: Operation, channel: Channel, machine: FlowMachine, flow: Flow, attempts: list[int]
    ) -> Any:
        if isinstance(op, Stream):
            return await channel.stream_file(op.prompt, op.escape_digits)
        if isinstance(op, PlayAll):
            await channel.play(op.prompts)
            return None
        if isinstance(op, GetData):
            return await channel.get_data(op.prompt, op.timeout_ms, op.max_digits)
        if isinstance(op, ReadDigits):
            return await channel.read_digits(op.prompts, op.timeout_ms, op.max_digits)
        if isinstance(op, Record):
            attempts[0] += 1
            path = await self.messages.path_for(channel.uniqueid, op.node, attempts[0])
            return await channel.record_file(
                path, "wav", "#", timeout_ms=op.max_ms, beep=op.beep, silence_s=op.silence_s
            )
        if isinstance(op, Queue):
            return await channel.exec("Queue", f"{op.queue},,,,{op.timeout_s}")
        if isinstance(op, CallAction):
            return await self._call_action(op, channel, machine, flow)
        if isinstance(op, Hangup):
            await channel.hangup()
            return None
        if isinstance(op, CallerGone):
            raise ChannelHungUp(channel.name, op.during)
        raise FlowRuntimeError(flow.name, machine.node or "", f"unknown operation {op!r}")

    async def _call_action(
        self, op: CallAction, channel: Channel, machine: FlowMachine, flow: Flow
    ) -> ActionResult:
        action = self.actions.get(op.name)
        if action is None:
            raise FlowRuntimeError(
                flow.name, op.node, f"no implementation registered for action {op.name}"
            )
        call = ActionCall(
            name=op.name,
            args=dict(op.args),
            flow=flow.name,
            node=op.node,
            channel=channel.name,
            uniqueid=channel.uniqueid,
            caller_number=channel.caller_number,
            variables=dict(machine.variables),
        )
        try:
            return await action(call)
        except GatewayError as exc:
            raise FlowRuntimeError(flow.name, op.node, f"action {op.name} failed: {exc}") from exc
        except Exception as exc:
            log.exception("flow %s node %s: action %s raised", flow.name, op.node, op.name)
            raise FlowRuntimeError(
                flow.name, op.node, f"action {op.name} raised {type(exc).__name__}: {exc}"
            ) from exc

    async def _after_hangup(self, flow: Flow, channel: Channel, machine: FlowMachine) -> str | None:
        """Run the flow's on_hangup tail: its actions only, until it needs the channel."""
        if flow.on_hangup is None:
            return None
        tail: Generator[Operation, Any, str] = machine.run(flow.on_hangup)
        try:
            op = next(tail)
            while isinstance(op, CallAction):
                op = tail.send(await self._call_action(op, channel, machine, flow))
        except StopIteration:
            return None
        except FlowRuntimeError as exc:
            log.error("flow %s on %s: after hang-up: %s", flow.name, channel.uniqueid, exc)
            return str(exc)
        finally:
            tail.close()
        return None
