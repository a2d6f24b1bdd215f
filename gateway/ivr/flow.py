"""Flow files: the model of a flow and its loader, which checks everything it can.

A flow file (YAML, edited by people, comments welcome)::

    name: hotline
    start: welcome
    inputs: []            # variables the caller of the flow must give (survey: unit …)
    on_hangup: saved      # optional: where to go, channel-less, after the caller hangs up
    nodes:
      welcome:
        kind: play
        prompt: hotline/welcome
        next: main_menu
      ...

Node kinds and their fields (``*`` required)::

    play     prompt*, next*
    menu     prompt*, choices* (key → node), on_exhausted*, timeout (s, 5),
             retries (2), invalid, silence, into
    collect  prompt*, max_digits*, into*, next*, on_exhausted*, min_digits (1),
             timeout (s, 5), retries (2), invalid, silence
    record   into*, next*, on_empty*, on_failed*, prompt, max_seconds (60),
             silence_seconds (5), min_seconds (1), retries (1), empty, beep (true)
             (on_failed: where to go when the PBX cannot write the recording)
    queue    queue*, next*, answered*, timeout (s, 300)
             (next: nobody answered in time; answered: a seat took the call and
             hung up first, the caller still on the line)
    action   action*, next* (outcome → node), args (name → text or $variable)
    branch   when* (list of {<condition>, goto}), otherwise*
             conditions: working_hours: true|false, set: var, unset: var,
                         var: name + equals: text
    hangup   prompt

A prompt is a prompt name, or a list of pieces, each a prompt name or
``{say: KIND, var: NAME}`` (KIND: digits, number, date, day, unit, kind, status;
see :mod:`gateway.ivr.say`).

In a menu, ``*`` repeats the prompt (not counted as a retry) and ``#`` alone is an
empty, invalid answer; keys are single digits. In a number entry, ``#`` ends the
input and ``*`` starts it again.

Loading names the file, the node and the line of every mistake: a missing or
unknown node, a node nobody reaches, a loop with no way out, an unknown prompt, a
key used twice, an unknown kind, field, action or outcome, a missing field, a
variable nobody sets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.ivr import say
from gateway.ivr.actions import ACTION_SPECS, ActionSpec
from gateway.ivr.errors import FlowError, Problem
from gateway.ivr.yamlsrc import Duplicate, LineDict, YamlSyntaxError, load_yaml

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
VARIABLE = NAME
MENU_KEYS = "0123456789"
# Variables every flow has, set by the runner from the channel.
BUILTIN_VARIABLES = ("caller_number", "dialled_number", "uniqueid")


@dataclass(frozen=True)
class SayPiece:
    """A variable part of a prompt: say the variable ``var`` as ``kind``."""

    kind: str
    var: str


Piece = str | SayPiece
Prompt = tuple[Piece, ...]


@dataclass(frozen=True, kw_only=True)
class Node:
    name: str
    line: int

    kind = "node"

    def successors(self) -> Iterator[tuple[str, str]]:
        """(field, node name) for every node this one may go to."""
        return iter(())

    def prompts(self) -> Iterator[Prompt]:
        return iter(())


@dataclass(frozen=True, kw_only=True)
class PlayNode(Node):
    kind = "play"
    prompt: Prompt
    next: str

    def successors(self) -> Iterator[tuple[str, str]]:
        yield "next", self.next

    def prompts(self) -> Iterator[Prompt]:
        yield self.prompt


@dataclass(frozen=True, kw_only=True)
class MenuNode(Node):
    kind = "menu"
    prompt: Prompt
    choices: Mapping[str, str]
    on_exhausted: str
    timeout: float = 5.0
    retries: int = 2
    invalid: Prompt = ()
    silence: Prompt = ()
    into: str | None = None

    def successors(self) -> Iterator[tuple[str, str]]:
        for key, target in self.choices.items():
            yield f"choices.{key}", target
        yield "on_exhausted", self.on_exhausted

    def prompts(self) -> Iterator[Prompt]:
        yield from (self.prompt, self.invalid, self.silence)


@dataclass(frozen=True, kw_only=True)
class CollectNode(Node):
    kind = "collect"
    prompt: Prompt
    max_digits: int
    into: str
    next: str
    on_exhausted: str
    min_digits: int = 1
    timeout: float = 5.0
    retries: int = 2
    invalid: Prompt = ()
    silence: Prompt = ()

    def successors(self) -> Iterator[tuple[str, str]]:
        yield "next", self.next
        yield "on_exhausted", self.on_exhausted

    def prompts(self) -> Iterator[Prompt]:
        yield from (self.prompt, self.invalid, self.silence)


@dataclass(frozen=True, kw_only=True)
class RecordNode(Node):
    kind = "record"
    into: str
    next: str
    on_empty: str
    on_failed: str
    prompt: Prompt = ()
    max_seconds: int = 60
    silence_seconds: int = 5
    min_seconds: float = 1.0
    retries: int = 1
    empty: Prompt = ()
    beep: bool = True

    def successors(self) -> Iterator[tuple[str, str]]:
        yield "next", self.next
        yield "on_empty", self.on_empty
        yield "on_failed", self.on_failed

    def prompts(self) -> Iterator[Prompt]:
        yield from (self.prompt, self.empty)


@dataclass(frozen=True, kw_only=True)
class QueueNode(Node):
    kind = "queue"
    queue: str
    next: str
    answered: str
    timeout: int = 300

    def successors(self) -> Iterator[tuple[str, str]]:
        yield "next", self.next
        yield "answered", self.answered


@dataclass(frozen=True, kw_only=True)
class ActionNode(Node):
    kind = "action"
    action: str
    next: Mapping[str, str]
    args: Mapping[str, str] = field(default_factory=dict)  # text, or "$variable"

    def successors(self) -> Iterator[tuple[str, str]]:
        for outcome, target in self.next.items():
            yield f"next.{outcome}", target


@dataclass(frozen=True)
class Condition:
    """One test of a branch: ``working_hours``, ``set``, ``unset`` or ``equals``."""

    test: str
    var: str = ""
    value: str = ""  # for equals; "true"/"false" for working_hours


@dataclass(frozen=True)
class Case:
    condition: Condition
    goto: str
    line: int


@dataclass(frozen=True, kw_only=True)
class BranchNode(Node):
    kind = "branch"
    when: tuple[Case, ...]
    otherwise: str

    def successors(self) -> Iterator[tuple[str, str]]:
        for index, case in enumerate(self.when):
            yield f"when[{index}].goto", case.goto
        yield "otherwise", self.otherwise


@dataclass(frozen=True, kw_only=True)
class HangupNode(Node):
    kind = "hangup"
    prompt: Prompt = ()

    def prompts(self) -> Iterator[Prompt]:
        yield self.prompt


NODE_TYPES: dict[str, type[Node]] = {
    cls.kind: cls
    for cls in (
        PlayNode,
        MenuNode,
        CollectNode,
        RecordNode,
        QueueNode,
        ActionNode,
        BranchNode,
        HangupNode,
    )
}
# Nodes where the IVR's part of a call ends: hung up, or handed to the agents.
TERMINAL_KINDS = ("hangup", "queue")
# What may run after the caller has hung up (no channel).
DETACHED_KINDS = ("action", "branch", "hangup")


@dataclass(frozen=True)
class Flow:
    name: str
    file: str
    start: str
    nodes: Mapping[str, Node]
    inputs: tuple[str, ...] = ()
    on_hangup: str | None = None
    description: str = ""

    def node(self, name: str) -> Node:
        return self.nodes[name]


# --------------------------------------------------------------------------- loading

_FLOW_FIELDS = ("name", "description", "start", "inputs", "on_hangup", "nodes")


class _Builder:
    """Turns one parsed flow file into a :class:`Flow`, collecting every problem."""

    def __init__(self, file: str, catalogue: Container[str], specs: Mapping[str, ActionSpec]):
        self.file = file
        self.catalogue = catalogue
        self.specs = specs
        self.problems: list[Problem] = []

    def problem(self, node: str | None, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.file, node, line, message))

    # ---- values

    def text(self, raw: Any, where: tuple[str, int], what: str) -> str | None:
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            self.problem(where[0], where[1], f"{what} must be text, got {raw!r}")
            return None
        return str(raw)

    def integer(
        self, raw: Any, where: tuple[str, int], what: str, low: int, high: int
    ) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            self.problem(
                where[0],
                where[1],
                f"{what} must be a whole number from {low} to {high}, got {raw!r}",
            )
            return None
        return raw

    def seconds(self, raw: Any, where: tuple[str, int], what: str, high: float) -> float | None:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw <= high:
            self.problem(
                where[0],
                where[1],
                f"{what} must be a number of seconds above 0 and at most {high:g}, got {raw!r}",
            )
            return None
        return float(raw)

    def flag(self, raw: Any, where: tuple[str, int], what: str) -> bool | None:
        if not isinstance(raw, bool):
            self.problem(where[0], where[1], f"{what} must be true or false, got {raw!r}")
            return None
        return raw

    def ref(self, raw: Any, where: tuple[str, int], what: str) -> str | None:
        if not isinstance(raw, str) or not raw:
            self.problem(where[0], where[1], f"{what} must name a node, got {raw!r}")
            return None
        return raw

    def variable(self, raw: Any, where: tuple[str, int], what: str) -> str | None:
        if not isinstance(raw, str) or not VARIABLE.match(raw):
            self.problem(
                where[0],
                where[1],
                f"{what} must be a variable name (lower case, digits, _), got {raw!r}",
            )
            return None
        return raw

    def prompt(self, raw: Any, where: tuple[str, int], what: str) -> Prompt | None:
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            self.problem(where[0], where[1], f"{what} is empty")
            return None
        pieces: list[Piece] = []
        for item in items:
            if isinstance(item, str):
                if item not in self.catalogue:
                    self.problem(
                        where[0],
                        where[1],
                        f"{what}: unknown prompt {item!r} (not in the prompt catalogue)",
                    )
                pieces.append(item)
            elif isinstance(item, LineDict) and set(item) == {"say", "var"}:
                kind, var = item["say"], item["var"]
                line = item.line
                if kind not in say.SAY_KINDS:
                    self.problem(
                        where[0],
                        line,
                        f"{what}: cannot say {kind!r} (known: {', '.join(say.SAY_KINDS)})",
                    )
                    continue
                name = self.variable(var, (where[0], line), f"{what}: say var")
                if name is not None:
                    pieces.append(SayPiece(kind, name))
            else:
                self.problem(
                    where[0],
                    where[1],
                    f"{what}: a piece must be a prompt name or "
                    f"{{say: KIND, var: NAME}}, got {item!r}",
                )
        return tuple(pieces)

    # ---- nodes

    def node(self, name: Any, raw: Any, line: int) -> Node | None:
        if not isinstance(name, str) or not NAME.match(name):
            self.problem(str(name), line, "a node name must be lower case letters, digits and _")
            return None
        if not isinstance(raw, LineDict):
            self.problem(name, line, f"must be a mapping with a kind, got {raw!r}")
            return None
        kind = raw.get("kind")
        cls = NODE_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            self.problem(
                name,
                line,
                f"unknown kind {kind!r} (known: {', '.join(NODE_TYPES)})"
                if kind is not None
                else "missing field 'kind'",
            )
            return None
        parsers = _FIELDS[cls.kind]
        values: dict[str, Any] = {}
        ok = True
        for key, value in raw.items():
            if key == "kind":
                continue
            parser = parsers.get(key)
            if parser is None:
                self.problem(
                    name,
                    raw.key_lines.get(key, line),
                    f"unknown field {key!r} for a {cls.kind} node "
                    f"(known: {', '.join(sorted(parsers))})",
                )
                ok = False
                continue
            parsed = parser(self, value, (name, raw.key_lines.get(key, line)), key)
            if parsed is None:
                ok = False
            else:
                values[key] = parsed
        for required in _REQUIRED[cls.kind]:
            if required not in raw:
                self.problem(
                    name,
                    line,
                    f"missing field {required!r} (a {cls.kind} node needs "
                    f"{', '.join(_REQUIRED[cls.kind])})",
                )
                ok = False
        if not ok:
            return None
        node = cls(name=name, line=line, **values)
        self.check_node(node)
        return node

    def check_node(self, node: Node) -> None:
        where = node.name, node.line
        if isinstance(node, CollectNode) and node.min_digits > node.max_digits:
            self.problem(
                *where, f"min_digits {node.min_digits} is above max_digits {node.max_digits}"
            )
        if isinstance(node, RecordNode) and node.min_seconds >= node.max_seconds:
            self.problem(
                *where,
                f"min_seconds {node.min_seconds:g} must be below max_seconds {node.max_seconds}",
            )
        if isinstance(node, ActionNode):
            spec = self.specs.get(node.action)
            if spec is None:
                self.problem(
                    *where,
                    f"unknown action {node.action!r} (known: {', '.join(sorted(self.specs))})",
                )
                return
            for arg in node.args:
                if arg not in spec.args:
                    self.problem(
                        *where,
                        f"action {spec.name} takes no argument {arg!r} "
                        f"(it takes: {', '.join(spec.args) or 'none'})",
                    )
            for arg in spec.args:
                if arg not in node.args:
                    self.problem(*where, f"action {spec.name} needs argument {arg!r}")
            for outcome in node.next:
                if outcome not in spec.outcomes:
                    self.problem(
                        *where,
                        f"action {spec.name} has no outcome {outcome!r} "
                        f"(its outcomes: {', '.join(spec.outcomes)})",
                    )
            for outcome in spec.outcomes:
                if outcome not in node.next:
                    self.problem(
                        *where, f"next does not say where to go when {spec.name} is {outcome!r}"
                    )


def _choices(b: _Builder, raw: Any, where: tuple[str, int], what: str) -> dict[str, str] | None:
    if not isinstance(raw, LineDict) or not raw:
        b.problem(*where, f"{what} must map keys to nodes, got {raw!r}")
        return None
    choices: dict[str, str] = {}
    ok = True
    for key, target in raw.items():
        line = raw.key_lines.get(key, where[1])
        text = str(key) if isinstance(key, int | str) and not isinstance(key, bool) else None
        if text is None or len(text) != 1 or text not in MENU_KEYS:
            reserved = " ('*' repeats the menu, '#' ends input)" if text in ("*", "#") else ""
            b.problem(where[0], line, f"{what}: key {key!r} is not a single digit 0-9{reserved}")
            ok = False
            continue
        if text in choices:
            b.problem(where[0], line, f"{what}: key {text!r} is used twice")
            ok = False
            continue
        node = b.ref(target, (where[0], line), f"{what}.{text}")
        if node is None:
            ok = False
            continue
        choices[text] = node
    return choices if ok else None


def _args(b: _Builder, raw: Any, where: tuple[str, int], what: str) -> dict[str, str] | None:
    if not isinstance(raw, LineDict):
        b.problem(*where, f"{what} must map argument names to text or $variables, got {raw!r}")
        return None
    args: dict[str, str] = {}
    for key, value in raw.items():
        text = b.text(value, (where[0], raw.key_lines.get(key, where[1])), f"{what}.{key}")
        if text is None:
            return None
        if text.startswith("$") and b.variable(text[1:], where, f"{what}.{key}") is None:
            return None
        args[str(key)] = text
    return args


def _outcomes(b: _Builder, raw: Any, where: tuple[str, int], what: str) -> dict[str, str] | None:
    if not isinstance(raw, LineDict) or not raw:
        b.problem(*where, f"{what} must map each outcome of the action to a node, got {raw!r}")
        return None
    result: dict[str, str] = {}
    for key, value in raw.items():
        node = b.ref(value, (where[0], raw.key_lines.get(key, where[1])), f"{what}.{key}")
        if node is None:
            return None
        result[str(key)] = node
    return result


def _cases(b: _Builder, raw: Any, where: tuple[str, int], what: str) -> tuple[Case, ...] | None:
    if not isinstance(raw, list) or not raw:
        b.problem(*where, f"{what} must be a list of conditions, each with a goto")
        return None
    cases: list[Case] = []
    for item in raw:
        if not isinstance(item, LineDict) or "goto" not in item:
            b.problem(*where, f"{what}: each entry needs a condition and a goto, got {item!r}")
            return None
        line = item.line
        goto = b.ref(item["goto"], (where[0], line), f"{what}.goto")
        test = {k: v for k, v in item.items() if k != "goto"}
        condition: Condition | None = None
        if set(test) == {"working_hours"}:
            flag = b.flag(test["working_hours"], (where[0], line), "working_hours")
            if flag is not None:
                condition = Condition("working_hours", value="true" if flag else "false")
        elif set(test) in ({"set"}, {"unset"}):
            ((test_name, var),) = test.items()
            name = b.variable(var, (where[0], line), f"{what}.{test_name}")
            if name is not None:
                condition = Condition(test_name, var=name)
        elif set(test) == {"var", "equals"}:
            name = b.variable(test["var"], (where[0], line), f"{what}.var")
            value = b.text(test["equals"], (where[0], line), f"{what}.equals")
            if name is not None and value is not None:
                condition = Condition("equals", var=name, value=value)
        else:
            b.problem(
                where[0],
                line,
                f"{what}: unknown condition {sorted(test)} (use "
                "working_hours, set, unset, or var with equals)",
            )
            return None
        if condition is None or goto is None:
            return None
        cases.append(Case(condition, goto, line))
    return tuple(cases)


_P = Callable[[_Builder, Any, tuple[str, int], str], Any]


def _int(low: int, high: int) -> _P:
    return lambda b, raw, where, what: b.integer(raw, where, what, low, high)


def _secs(high: float) -> _P:
    return lambda b, raw, where, what: b.seconds(raw, where, what, high)


_PROMPT: _P = _Builder.prompt
_REF: _P = _Builder.ref
_VAR: _P = _Builder.variable

_FIELDS: dict[str, dict[str, _P]] = {
    "play": {"prompt": _PROMPT, "next": _REF},
    "menu": {
        "prompt": _PROMPT,
        "choices": _choices,
        "on_exhausted": _REF,
        "timeout": _secs(60),
        "retries": _int(0, 9),
        "invalid": _PROMPT,
        "silence": _PROMPT,
        "into": _VAR,
    },
    "collect": {
        "prompt": _PROMPT,
        "max_digits": _int(1, 32),
        "min_digits": _int(1, 32),
        "into": _VAR,
        "next": _REF,
        "on_exhausted": _REF,
        "timeout": _secs(60),
        "retries": _int(0, 9),
        "invalid": _PROMPT,
        "silence": _PROMPT,
    },
    "record": {
        "into": _VAR,
        "next": _REF,
        "on_empty": _REF,
        "on_failed": _REF,
        "prompt": _PROMPT,
        "max_seconds": _int(2, 3600),
        "silence_seconds": _int(1, 60),
        "min_seconds": _secs(60),
        "retries": _int(0, 9),
        "empty": _PROMPT,
        "beep": _Builder.flag,
    },
    "queue": {"queue": _Builder.text, "next": _REF, "answered": _REF, "timeout": _int(1, 7200)},
    "action": {"action": _Builder.text, "args": _args, "next": _outcomes},
    "branch": {"when": _cases, "otherwise": _REF},
    "hangup": {"prompt": _PROMPT},
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "play": ("prompt", "next"),
    "menu": ("prompt", "choices", "on_exhausted"),
    "collect": ("prompt", "max_digits", "into", "next", "on_exhausted"),
    "record": ("into", "next", "on_empty", "on_failed"),
    "queue": ("queue", "next", "answered"),
    "action": ("action", "next"),
    "branch": ("when", "otherwise"),
    "hangup": (),
}


def parse_flow(
    text: str,
    file: str,
    catalogue: Container[str],
    specs: Mapping[str, ActionSpec] = ACTION_SPECS,
) -> Flow:
    """Build and check a flow from its text; raise :class:`FlowError` listing every problem."""
    b = _Builder(file, catalogue, specs)
    try:
        raw, duplicates = load_yaml(text)
    except YamlSyntaxError as exc:
        raise FlowError(file, [Problem(file, None, exc.line, exc.reason)]) from None
    if not isinstance(raw, LineDict):
        raise FlowError(
            file,
            [Problem(file, None, None, "a flow file must be a mapping with name, start and nodes")],
        )
    for key in raw:
        if key not in _FLOW_FIELDS:
            b.problem(
                None,
                raw.key_lines.get(key),
                f"unknown field {key!r} (known: {', '.join(_FLOW_FIELDS)})",
            )
    for required in ("name", "start", "nodes"):
        if required not in raw:
            b.problem(None, raw.line, f"missing field {required!r}")
    name = raw.get("name")
    if "name" in raw and (not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_-]*$", name)):
        b.problem(None, raw.key_lines.get("name"), f"name must be lower-case text, got {name!r}")
    inputs_raw = raw.get("inputs", [])
    inputs: list[str] = []
    if not isinstance(inputs_raw, list):
        b.problem(None, raw.key_lines.get("inputs"), "inputs must be a list of variable names")
    else:
        for item in inputs_raw:
            var = b.variable(item, ("", raw.key_lines.get("inputs", 0)), "inputs")
            if var is not None:
                inputs.append(var)
    nodes_raw = raw.get("nodes")
    nodes: dict[str, Node] = {}
    if "nodes" in raw and (not isinstance(nodes_raw, LineDict) or not nodes_raw):
        b.problem(None, raw.key_lines.get("nodes"), "nodes must map node names to nodes")
    elif isinstance(nodes_raw, LineDict):
        for node_name, node_raw in nodes_raw.items():
            node = b.node(node_name, node_raw, nodes_raw.key_lines.get(node_name, 0))
            if node is not None:
                nodes[node.name] = node
        _report_duplicates(b, duplicates, nodes_raw)
    else:
        _report_duplicates(b, duplicates, None)
    start = raw.get("start")
    on_hangup = raw.get("on_hangup")
    if "start" in raw and not isinstance(start, str):
        b.problem(None, raw.key_lines.get("start"), f"start must name a node, got {start!r}")
    if not isinstance(name, str) or not isinstance(start, str) or not isinstance(nodes_raw, dict):
        raise FlowError(file, b.problems)
    # Nodes that could not be built still exist for the graph checks below.
    failed = {str(n) for n in nodes_raw if n not in nodes}
    flow = Flow(
        name=name,
        file=file,
        start=start,
        nodes=nodes,
        inputs=tuple(inputs),
        on_hangup=on_hangup if isinstance(on_hangup, str) else None,
        description=str(raw.get("description", "")),
    )
    if "on_hangup" in raw and not isinstance(on_hangup, str):
        b.problem(None, raw.key_lines.get("on_hangup"), "on_hangup must name a node")
    _check_graph(b, flow, raw, failed)
    _check_prompts(b, flow)
    _check_variables(b, flow)
    if b.problems:
        raise FlowError(file, b.problems)
    return flow


def _report_duplicates(
    b: _Builder, duplicates: list[Duplicate], nodes_raw: LineDict | None
) -> None:
    """Name the node each duplicate key belongs to, from the lines the nodes start on."""
    starts: list[tuple[int, str]] = []
    if nodes_raw is not None:
        starts = sorted((line, str(name)) for name, line in nodes_raw.key_lines.items())
    for dup in duplicates:
        if nodes_raw is not None and nodes_raw.key_lines.get(dup.key) == dup.first_line:
            b.problem(
                str(dup.key),
                dup.second_line,
                f"node {dup.key!r} is defined twice (lines {dup.first_line} and {dup.second_line})",
            )
            continue
        owner = None
        for line, name in starts:
            if line <= dup.second_line:
                owner = name
        b.problem(owner, dup.second_line, str(dup))


def _check_graph(b: _Builder, flow: Flow, raw: LineDict, failed: set[str]) -> None:
    known = set(flow.nodes) | failed
    if flow.start not in known:
        b.problem(None, raw.key_lines.get("start"), f"start node {flow.start!r} does not exist")
    if flow.on_hangup is not None and flow.on_hangup not in known:
        b.problem(
            None,
            raw.key_lines.get("on_hangup"),
            f"on_hangup node {flow.on_hangup!r} does not exist",
        )
    edges: dict[str, list[str]] = {}
    missing = False
    for node in flow.nodes.values():
        edges[node.name] = []
        for field_name, target in node.successors():
            if target not in known:
                b.problem(
                    node.name,
                    node.line,
                    f"{field_name} goes to node {target!r}, which does not exist",
                )
                missing = True
            elif target in flow.nodes:
                edges[node.name].append(target)
    if missing or failed or any(t not in flow.nodes for t in (flow.start, flow.on_hangup) if t):
        return  # reachability needs every node: fix the ones reported first
    reached = _reach([flow.start], edges)
    if flow.on_hangup is not None:
        tail = _reach([flow.on_hangup], edges)
        for name in sorted(tail):
            node = flow.nodes[name]
            if node.kind not in DETACHED_KINDS:
                b.problem(
                    name,
                    node.line,
                    f"a {node.kind} node cannot run after the caller hung "
                    f"up (on_hangup reaches it; allowed: {', '.join(DETACHED_KINDS)})",
                )
        reached |= tail
    for node in flow.nodes.values():
        if node.name not in reached:
            b.problem(node.name, node.line, "no path from the start reaches this node")
    # A loop with no way out: nodes from which no hang-up or queue can be reached.
    reverse: dict[str, list[str]] = {name: [] for name in flow.nodes}
    for source, targets in edges.items():
        for target in targets:
            reverse[target].append(source)
    exits = [n.name for n in flow.nodes.values() if n.kind in TERMINAL_KINDS]
    can_exit = _reach(exits, reverse)
    trapped = {name for name in reached if name not in can_exit}
    for group in _cycles(trapped, edges):
        first = min(group, key=lambda n: flow.nodes[n].line)
        b.problem(
            first,
            flow.nodes[first].line,
            "loop with no way out: "
            + " → ".join(sorted(group, key=lambda n: flow.nodes[n].line))
            + " never reach a hangup or queue node",
        )


def _reach(starts: list[str], edges: Mapping[str, list[str]]) -> set[str]:
    seen = set(starts)
    todo = list(starts)
    while todo:
        for target in edges.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _cycles(nodes: set[str], edges: Mapping[str, list[str]]) -> list[set[str]]:
    """The strongly connected groups among ``nodes`` that contain a cycle (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for target in edges[name]:
            if target not in nodes:
                continue
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in on_stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == name:
                    break
            if len(group) > 1 or name in edges[name]:
                groups.append(group)

    for name in sorted(nodes):
        if name not in index:
            visit(name)
    return groups


def _check_prompts(b: _Builder, flow: Flow) -> None:
    kinds = {
        piece.kind
        for node in flow.nodes.values()
        for prompt in node.prompts()
        for piece in prompt
        if isinstance(piece, SayPiece)
    }
    if kinds:
        missing = [p for p in say.PIECES if p not in b.catalogue]
        if missing:
            b.problem(
                None,
                None,
                "the prompt catalogue lacks pieces needed to say numbers, dates "
                f"and names: {', '.join(missing)}",
            )


def _check_variables(b: _Builder, flow: Flow) -> None:
    defined = set(BUILTIN_VARIABLES) | set(flow.inputs)
    for node in flow.nodes.values():
        if isinstance(node, MenuNode | CollectNode | RecordNode) and node.into:
            defined.add(node.into)
        if isinstance(node, ActionNode) and node.action in b.specs:
            defined.update(b.specs[node.action].returns)
    for node in flow.nodes.values():
        used: list[str] = []
        for prompt in node.prompts():
            used.extend(p.var for p in prompt if isinstance(p, SayPiece))
        if isinstance(node, ActionNode):
            used.extend(v[1:] for v in node.args.values() if v.startswith("$"))
        if isinstance(node, BranchNode):
            used.extend(c.condition.var for c in node.when if c.condition.var)
        for var in used:
            if var not in defined:
                b.problem(
                    node.name,
                    node.line,
                    f"variable {var!r} is never set (set it with "
                    "into, an action's result, or list it in the flow's inputs)",
                )


def load_flow(path: Path, catalogue: Container[str]) -> Flow:
    """Read and check one flow file (blocking: call at start-up or in a thread)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = Problem(str(path), None, None, f"cannot read: {exc}")
        raise FlowError(str(path), [problem]) from None
    return parse_flow(text, str(path), catalogue)


def load_flows(folder: Path, catalogue: Container[str]) -> dict[str, Flow]:
    """Every ``*.yaml`` flow in ``folder`` by name; two flows of one name are an error."""
    flows: dict[str, Flow] = {}
    for path in sorted(folder.glob("*.yaml")):
        flow = load_flow(path, catalogue)
        if flow.name in flows:
            raise FlowError(
                str(path),
                [
                    Problem(
                        str(path),
                        None,
                        None,
                        f"flow name {flow.name!r} is also used by {flows[flow.name].file}",
                    )
                ],
            )
        flows[flow.name] = flow
    return flows
