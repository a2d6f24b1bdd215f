"""Errors of the flow engine. Each carries the facts that explain it.

::

    FlowError                  a flow file or the prompt catalogue is wrong
    │                          (file, and every problem with its node and line)
    └── FlowRuntimeError       a running flow met something its file did not allow
                               (flow, node, reason): an unknown action outcome,
                               a missing action, too many steps
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.errors import GatewayError


@dataclass(frozen=True)
class Problem:
    """One mistake in a flow file: where it is and what is wrong."""

    file: str
    node: str | None  # None: the flow as a whole (its name, its start, …)
    line: int | None  # 1-based line in the file, when known
    message: str

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        what = f"node {self.node!r}: " if self.node else ""
        return f"{where}: {what}{self.message}"


class FlowError(GatewayError):
    """A flow file (or the prompt catalogue) cannot be used; lists every problem found."""

    def __init__(self, file: str, problems: Sequence[Problem]) -> None:
        self.file = file
        self.problems = tuple(sorted(problems, key=lambda p: p.line or 0))
        lines = "\n".join(f"  {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(f"{file}: {count} problem{'s' if count != 1 else ''}\n{lines}")


class FlowRuntimeError(GatewayError):
    """A running flow cannot go on."""

    def __init__(self, flow: str, node: str, reason: str) -> None:
        super().__init__(f"flow {flow!r}, node {node!r}: {reason}")
        self.flow = flow
        self.node = node
        self.reason = reason
