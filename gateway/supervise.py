"""Supervised background work: loops that survive their own errors, tasks nobody loses.

    supervisor = Supervisor("sms")
    supervisor.loop("outbox", worker.run_once, every=1.0)   # a round, again and again
    supervisor.spawn(f"sms-{row.id}", send(row))            # one owned task
    ...
    await supervisor.aclose()                               # cancel and await them all

A *loop* calls its body again and again. A body that raises is logged once per
kind of error with its context (the same error again is only counted, at debug
level), the loop waits with exponential backoff and goes on; the component is
*degraded* until a round succeeds again, and :meth:`Supervisor.check` raises for
``/health`` meanwhile. A *spawned* task is owned: its exception is logged (never
lost, never propagated to whoever started it) and it is cancelled at close.

Nothing here holds a ``TaskGroup`` open: a cleanup context may ``yield`` between
starting the supervisor and closing it, and one failing loop never cancels the
task that started the application.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import GatewayError

log = logging.getLogger(__name__)

Body = Callable[[], Awaitable[Any]]


class ComponentDegraded(GatewayError):
    """A supervised loop is failing; the message names it and its last error."""


@dataclass
class LoopState:
    """What ``/health`` and the logs know of one loop."""

    name: str
    rounds: int = 0
    failures: int = 0  # consecutive failed rounds; 0 when healthy
    in_round: bool = False  # its body is running now
    last_error: str = ""
    errors_seen: dict[str, int] = field(default_factory=dict)  # error kind → count

    @property
    def degraded(self) -> bool:
        return self.failures > 0


def _error_kind(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Supervisor:
    """Owns a component's background loops and tasks (see the module docstring)."""

    def __init__(
        self,
        component: str,
        *,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if backoff_min <= 0 or backoff_max < backoff_min:
            raise ValueError(f"bad backoff {backoff_min}..{backoff_max}")
        self.component = component
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self._rng = rng or random.Random()
        self._loops: dict[str, LoopState] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # -- starting work ------------------------------------------------------------

    def loop(
        self,
        name: str,
        body: Body,
        *,
        every: float | Callable[[], float] = 0.0,
        wake: asyncio.Event | None = None,
    ) -> LoopState:
        """Run ``await body()`` for ever: after each round wait ``every`` seconds
        (a number, or a function giving it) or until ``wake`` is set; after a failed
        round, back off instead. Returns the loop's state (for tests and health)."""
        if self._closed:
            raise RuntimeError(f"{self.component}: supervisor closed")
        if name in self._loops:
            raise ValueError(f"{self.component}: a loop named {name!r} already runs")
        state = LoopState(name)
        self._loops[name] = state
        self._own(self._run_loop(state, body, every, wake), f"{self.component}-{name}")
        return state

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task this supervisor owns; an exception it raises is logged."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self.component}: supervisor closed")
        task = self._own(self._guard(name, coro), name)
        # A task cancelled before its first step never starts ``coro``: close it then,
        # or Python warns that it was never awaited (a no-op once it ran).
        task.add_done_callback(lambda _: coro.close())
        return task

    @property
    def tasks(self) -> int:
        """Tasks still running (loops and spawned tasks)."""
        return len(self._tasks)

    def _own(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guard(self, name: str, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: task %s failed", self.component, name)
            return None

    async def _run_loop(
        self,
        state: LoopState,
        body: Body,
        every: float | Callable[[], float],
        wake: asyncio.Event | None,
    ) -> None:
        while True:
            # Set in the same step as the wake is cleared: "not woken and not in a
            # round" means the last wake's round is over.
            state.in_round = True
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                state.in_round = False
                delay = self._failed(state, exc)
                await asyncio.sleep(delay)
                continue
            if state.failures:
                log.warning(
                    "%s: %s works again after %d failed rounds",
                    self.component,
                    state.name,
                    state.failures,
                )
            state.failures = 0
            state.rounds += 1
            state.in_round = False
            pause = every() if callable(every) else every
            if wake is not None:
                try:
                    async with asyncio.timeout(pause if pause > 0 else None):
                        await wake.wait()
                except TimeoutError:
                    pass
                wake.clear()
            else:
                await asyncio.sleep(pause)

    def _failed(self, state: LoopState, exc: Exception) -> float:
        kind = _error_kind(exc)
        state.failures += 1
        state.last_error = kind
        seen = state.errors_seen.get(kind, 0)
        state.errors_seen[kind] = seen + 1
        delay = min(self.backoff_max, self.backoff_min * 2 ** min(state.failures - 1, 20))
        delay = self._rng.uniform(delay / 2, delay)
        if seen == 0:
            log.error(
                "%s: %s failed (%s); retrying in %.1fs",
                self.component,
                state.name,
                kind,
                delay,
                exc_info=exc,
            )
        else:
            log.debug("%s: %s failed again (%s, %d times)", self.component, state.name, kind, seen)
        return delay

    # -- health and shutdown --------------------------------------------------------

    @property
    def loops(self) -> dict[str, LoopState]:
        return dict(self._loops)

    def check(self) -> None:
        """Raise :class:`ComponentDegraded` naming every loop that is failing now."""
        failing = [s for s in self._loops.values() if s.degraded]
        if failing:
            raise ComponentDegraded(
                "; ".join(
                    f"{self.component} {s.name}: {s.failures} failed rounds, last {s.last_error}"
                    for s in failing
                )
            )

    async def aclose(self) -> None:
        """Cancel every loop and task and wait for them; errors are logged, not raised."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("%s: %s failed while stopping", self.component, task.get_name())
        self._tasks.difference_update(tasks)  # done callbacks may not have run yet

    def __del__(self) -> None:
        if getattr(self, "_tasks", None) and not self._closed:
            import warnings

            warnings.warn(
                f"Supervisor {self.component} was never closed", ResourceWarning, stacklevel=1
            )
