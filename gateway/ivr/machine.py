"""The pure core of the flow engine: a flow interpreted as a sequence of operations.

:meth:`FlowMachine.run` is a generator. It yields one operation at a time (play
this, collect digits, record, run the queue, call a domain action, hang up) and
is sent the result of each; it never touches a socket. The runner
(:mod:`gateway.ivr.runner`) performs the operations on a live channel; tests send
scripted results. The machine keeps the call's path (nodes entered, keys
pressed, with times from the injected clock) and its variables.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.clock import Clock
from gateway.ivr import say
from gateway.ivr.actions import ActionResult
from gateway.ivr.channel import RecordResult
from gateway.ivr.errors import FlowRuntimeError
from gateway.ivr.flow import (
    ActionNode,
    BranchNode,
    CollectNode,
    Condition,
    Flow,
    HangupNode,
    MenuNode,
    Node,
    PlayNode,
    Prompt,
    QueueNode,
    RecordNode,
    SayPiece,
)
from gateway.ivr.hours import WorkingHours

log = logging.getLogger("gateway.ivr")

# Asterisk's own sound of one second of silence: played when a prompt came out empty.
SILENCE = "silence/1"
# How often a caller may press * to hear a prompt again before it counts as a wrong key.
MAX_REPEATS = 3


# ---- operations the machine asks for, and what each is answered with


@dataclass(frozen=True)
class Stream:
    """Play one prompt; answered with the escape digit pressed, or None."""

    prompt: str
    escape_digits: str = ""


@dataclass(frozen=True)
class PlayAll:
    """Play several prompts as one command, without the gaps between commands and not
    interruptible; answered with None."""

    prompts: tuple[str, ...]


@dataclass(frozen=True)
class GetData:
    """Play one prompt and collect digits; answered with (digits, timed_out)."""

    prompt: str
    timeout_ms: int
    max_digits: int


@dataclass(frozen=True)
class ReadDigits:
    """Play several prompts as one command, each interruptible by any key, and collect
    digits; answered with (digits, timed_out)."""

    prompts: tuple[str, ...]
    timeout_ms: int
    max_digits: int


@dataclass(frozen=True)
class Record:
    """Record the caller into a file the runner names; answered with a RecordResult."""

    node: str
    max_ms: int
    silence_s: int
    beep: bool


@dataclass(frozen=True)
class Queue:
    """Hand the caller to a queue of agents; answered with the application's result code."""

    queue: str
    timeout_s: int


@dataclass(frozen=True)
class CallAction:
    """Call a domain action; answered with an ActionResult."""

    name: str
    args: Mapping[str, str]
    node: str


@dataclass(frozen=True)
class Hangup:
    """Hang up the call; answered with None."""


@dataclass(frozen=True)
class CallerGone:
    """A result showed the caller has hung up (a recording ended by hang-up)."""

    during: str


Operation = (
    Stream | PlayAll | GetData | ReadDigits | Record | Queue | CallAction | Hangup | CallerGone
)
CHANNEL_OPERATIONS = (Stream, PlayAll, GetData, ReadDigits, Record, Queue, Hangup, CallerGone)


@dataclass(frozen=True)
class PathStep:
    """One step of a call's path: a node entered, a key pressed, an outcome."""

    at: datetime
    node: str
    event: str  # enter, key, repeat, invalid, silence, exhausted, digits, recorded,
    # empty_recording, record_failed, queue, queue_left, queue_answered, action, branch,
    # hangup, caller_hangup, link_lost, say_failed
    detail: str = ""


@dataclass
class FlowMachine:
    flow: Flow
    clock: Clock
    catalogue: Container[str]
    hours: WorkingHours | None = None
    variables: dict[str, str] = field(default_factory=dict)
    max_steps: int = 1000
    path: list[PathStep] = field(default_factory=list)
    node: str | None = None  # the node being run

    def note(self, event: str, detail: str = "", node: str | None = None) -> None:
        self.path.append(PathStep(self.clock.now(), node or self.node or "", event, detail))

    def run(self, start: str | None = None) -> Generator[Operation, Any, str]:
        """Run from ``start`` (default: the flow's start); return the node that ended it."""
        name = start or self.flow.start
        for _ in range(self.max_steps):
            node = self.flow.nodes[name]
            self.node = name
            self.note("enter", node.kind)
            following = yield from self._node(node)
            if following is None:
                return name
            name = following
        raise FlowRuntimeError(
            self.flow.name, name, f"more than {self.max_steps} steps: is a loop spinning?"
        )

    def _node(self, node: Node) -> Generator[Operation, Any, str | None]:
        if isinstance(node, PlayNode):
            yield from self._play(node.prompt)
            return node.next
        if isinstance(node, MenuNode):
            return (yield from self._menu(node))
        if isinstance(node, CollectNode):
            return (yield from self._collect(node))
        if isinstance(node, RecordNode):
            return (yield from self._record(node))
        if isinstance(node, QueueNode):
            self.note("queue", node.queue)
            code = yield Queue(node.queue, node.timeout)
            self.note("queue_left", str(code))
            if code == -1:
                # Queue answers -1 with the caller still on the line (a hang-up would
                # have raised) when a seat took the call and hung up first.
                self.note("queue_answered")
                return node.answered
            return node.next
        if isinstance(node, ActionNode):
            return (yield from self._action(node))
        if isinstance(node, BranchNode):
            target = node.otherwise
            for case in node.when:
                if self._holds(case.condition):
                    target = case.goto
                    break
            self.note("branch", target)
            return target
        if isinstance(node, HangupNode):
            yield from self._play(node.prompt)
            self.note("hangup")
            yield Hangup()
            return None
        raise FlowRuntimeError(self.flow.name, node.name, f"cannot run a {node.kind} node")

    # ---- prompts

    def expand(self, prompt: Prompt) -> list[str]:
        """Prompt names to play for ``prompt``, with variables said from pieces."""
        names: list[str] = []
        for piece in prompt:
            if isinstance(piece, SayPiece):
                value = self.variables.get(piece.var, "")
                try:
                    names.extend(say.say(piece.kind, value, self.catalogue))
                except say.SayError as exc:
                    log.warning("flow %s node %s: %s", self.flow.name, self.node, exc)
                    self.note("say_failed", f"{piece.var}: {exc}")
            else:
                names.append(piece)
        return names

    def _play(self, prompt: Prompt) -> Generator[Operation, Any, None]:
        """Play a prompt through: STREAM FILE for one piece, one command for several (over
        AsyncAGI each command costs a ~100 ms poll of silence)."""
        names = self.expand(prompt)
        if len(names) == 1:
            yield Stream(names[0])
        elif names:
            yield PlayAll(tuple(names))

    def _ask(
        self, prompt: Prompt, timeout: float, max_digits: int
    ) -> Generator[Operation, Any, tuple[str, bool]]:
        """Play the prompt and collect the answer: GET DATA for one piece; for several, one
        command that plays them all. Any key interrupts the prompt, as in GET DATA: the keys
        the node accepts answer it, any other is a wrong answer."""
        names = self.expand(prompt) or [SILENCE]
        if len(names) == 1:
            digits, timed_out = yield GetData(names[0], int(timeout * 1000), max_digits)
        else:
            digits, timed_out = yield ReadDigits(tuple(names), int(timeout * 1000), max_digits)
        return str(digits), bool(timed_out)

    # ---- node kinds

    def _menu(self, node: MenuNode) -> Generator[Operation, Any, str]:
        failures = repeats = 0
        while True:
            key, timed_out = yield from self._ask(node.prompt, node.timeout, 1)
            if key == "*" and repeats < MAX_REPEATS:
                repeats += 1
                self.note("repeat")
                continue
            if key in node.choices:
                self.note("key", key)
                if node.into:
                    self.variables[node.into] = key
                return node.choices[key]
            failures += 1
            if not (yield from self._retry(node, key, timed_out, failures)):
                return node.on_exhausted

    def _collect(self, node: CollectNode) -> Generator[Operation, Any, str]:
        failures = repeats = 0
        while True:
            digits, timed_out = yield from self._ask(node.prompt, node.timeout, node.max_digits)
            if "*" in digits and repeats < MAX_REPEATS:
                repeats += 1
                self.note("repeat")
                continue
            if digits.isdigit() and node.min_digits <= len(digits) <= node.max_digits:
                self.note("digits", digits)
                self.variables[node.into] = digits
                return node.next
            failures += 1
            if not (yield from self._retry(node, digits, timed_out, failures)):
                return node.on_exhausted

    def _retry(
        self, node: MenuNode | CollectNode, answer: str, timed_out: bool, failures: int
    ) -> Generator[Operation, Any, bool]:
        """Note a silent or invalid answer and play its retry prompt; False once retries run out."""
        if not answer and timed_out:
            self.note("silence")
            retry_prompt = node.silence
        else:
            self.note("invalid", answer or "#")
            retry_prompt = node.invalid
        if failures > node.retries:
            self.note("exhausted")
            return False
        yield from self._play(retry_prompt)
        return True

    def _record(self, node: RecordNode) -> Generator[Operation, Any, str]:
        failures = 0
        yield from self._play(node.prompt)
        while True:
            result = yield Record(
                node.name, node.max_seconds * 1000, node.silence_seconds, node.beep
            )
            if not isinstance(result, RecordResult):
                raise FlowRuntimeError(self.flow.name, node.name, f"record answered {result!r}")
            if result.failed:
                # the PBX could not write the file (logged by the channel): nothing recorded
                self.note("record_failed", result.file)
                return node.on_failed
            if result.duration_ms >= node.min_seconds * 1000:
                self.variables[node.into] = result.file
                self.note("recorded", f"{result.duration_ms}ms {result.ended_by}")
                if result.ended_by == "hangup":
                    yield CallerGone(node.name)
                return node.next
            self.note("empty_recording", f"{result.duration_ms}ms {result.ended_by}")
            if result.ended_by == "hangup":
                yield CallerGone(node.name)
            failures += 1
            if failures > node.retries:
                self.note("exhausted")
                return node.on_empty
            yield from self._play(node.empty)

    def _action(self, node: ActionNode) -> Generator[Operation, Any, str]:
        args = {
            name: self.variables.get(value[1:], "") if value.startswith("$") else value
            for name, value in node.args.items()
        }
        result = yield CallAction(node.action, args, node.name)
        if not isinstance(result, ActionResult) or result.outcome not in node.next:
            raise FlowRuntimeError(
                self.flow.name,
                node.name,
                f"action {node.action} answered {result!r}; expected one of {', '.join(node.next)}",
            )
        self.variables.update({k: str(v) for k, v in result.values.items()})
        self.note("action", result.outcome)
        return node.next[result.outcome]

    def _holds(self, condition: Condition) -> bool:
        if condition.test == "working_hours":
            is_open = self.hours.is_open(self.clock.now()) if self.hours is not None else True
            return is_open == (condition.value == "true")
        value = self.variables.get(condition.var, "")
        if condition.test == "set":
            return value != ""
        if condition.test == "unset":
            return value == ""
        return value == condition.value
