"""``SimulatedPbx``: the TCP server speaking AMI, the world behind it, and the fault switches."""

from __future__ import annotations

import asyncio
import logging
import warnings
from types import TracebackType
from typing import Any

from gateway.ami import names as n
from gateway.sim.ami.config import SimConfig
from gateway.sim.ami.faults import Faults
from gateway.sim.ami.script import CallerScript, CitizenBehaviour
from gateway.sim.ami.session import AmiSession
from gateway.sim.ami.tasks import TaskSet
from gateway.sim.ami.world import PRIV_SYSTEM, SimCall, World, normalise

log = logging.getLogger("gateway.sim.ami")


class SimulatedPbx:
    """A simulated Asterisk 22 reachable over AMI on a loopback (or any) TCP port.

    Use it as an async context manager; every task it starts stops on exit::

        async with SimulatedPbx(SimConfig(port=0, time_scale=0.01)) as pbx:
            call = pbx.place_call(CallerScript(caller="+8613912345678", steps=[...]))
            outcome = await call.finished
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.tasks = TaskSet()
        self._server: asyncio.Server | None = None
        self._sessions: dict[AmiSession, asyncio.Task[Any]] = {}
        self._world: World | None = None
        self.faults = Faults(self._drop_all, self._shutdown, self._garble)
        self.port = 0
        self._open = False

    @property
    def world(self) -> World:
        if self._world is None:
            raise RuntimeError("the simulated PBX is not started")
        return self._world

    async def __aenter__(self) -> SimulatedPbx:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self._world = World(self.config, self.tasks)
        self._server = await asyncio.start_server(self._accept, self.config.host, self.config.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._open = True
        log.info("simulated PBX listening on %s:%d", self.config.host, self.port)

    async def stop(self) -> None:
        if not self._open:
            return
        self._open = False
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.abort()
        if self._world is not None:
            self._world.hang_up_everything()
        await self.tasks.close()
        sessions = list(self._sessions.values())
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_open", False):
            _warn(
                f"SimulatedPbx on port {self.port} was never stopped", ResourceWarning, stacklevel=1
            )

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if not self._open:
            writer.close()
            return
        session = AmiSession(self, reader, writer)
        self._sessions[session] = task
        try:
            await session.run()
        finally:
            self._sessions.pop(session, None)

    # --- the world, for tests and the demo -------------------------------------------------

    def place_call(self, script: CallerScript) -> SimCall:
        """A citizen calls the hotline and follows ``script``."""
        return self.world.place_call(script)

    def set_citizen(self, number: str, behaviour: CitizenBehaviour) -> None:
        """How the citizen at ``number`` answers an outbound Originate."""
        self.world.citizens[normalise(number)] = behaviour

    def set_default_citizen(self, behaviour: CitizenBehaviour) -> None:
        """How numbers nobody configured answer."""
        self.world.default_citizen = behaviour

    def calls_to(self, number: str) -> list[SimCall]:
        """The outbound calls placed to ``number`` so far."""
        return list(self.world.outbound.get(normalise(number), []))

    @property
    def sessions(self) -> int:
        """How many AMI connections are open."""
        return len(self._sessions)

    @property
    def active_channels(self) -> list[str]:
        return list(self.world.channels)

    # --- faults -----------------------------------------------------------------------------

    def _drop_all(self) -> None:
        for session in list(self._sessions):
            session.abort()

    def _garble(self) -> None:
        for session in self._sessions:
            session.garble_pending = True

    async def _shutdown(self, cleanly: bool, restart: bool) -> None:
        self.world.emit(
            n.EV_SHUTDOWN,
            PRIV_SYSTEM,
            [
                ("Shutdown", "Cleanly" if cleanly else "Uncleanly"),
                ("Restart", "True" if restart else "False"),
            ],
        )
        sessions = list(self._sessions.items())
        for session, _ in sessions:
            session.close_after_flush()
        await asyncio.gather(*(task for _, task in sessions), return_exceptions=True)
        self.world.hang_up_everything()
