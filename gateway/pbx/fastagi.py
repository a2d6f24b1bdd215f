"""FastAGI: the second AGI transport. Asterisk's ``AGI(agi://gateway:4573/<pbx>)``
connects to us for each call; the same flows run as over AsyncAGI.

Each connection sends its environment (``agi_*`` lines, an empty line), then
we write one command per line and read its result line (a ``520-`` block up to
its ``520 `` line). ``HANGUP`` from Asterisk means the caller hung up. Handing a
call back to the dialplan is closing the connection: AGI() returns and the
dialplan goes on. When the gateway is away the connection is refused at once,
so the dialplan moves on to its fallback (the queue) instead of leaving the
caller in silence, and there is no ~100 ms AsyncAGI poll per command.

The script part of the URL names the PBX whose AGI router takes the call (the
only one when there is one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Self
from urllib.parse import quote

from gateway.ami import agi
from gateway.pbx.agi_router import AgiRouter
from gateway.pbx.channel import AgiChannel
from gateway.pbx.exceptions import AmiConnectionLost

log = logging.getLogger(__name__)

MAX_ENV_LINES = 200  # a FastAGI environment has about 25; more is not Asterisk
ENV_TIMEOUT = 5.0  # seconds a new connection has to send its environment
# Connections the kernel queues before we accept them: a burst of calls (200 at once)
# must not overflow it, or their SYNs are dropped and AGI() waits on retransmits.
LISTEN_BACKLOG = 1024


class FastAgiCall:
    """One FastAGI connection: the :class:`gateway.pbx.channel.AgiLink` of its call."""

    def __init__(self, pbx: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._pbx = pbx
        self._reader = reader
        self._writer = writer
        self._seq = 0
        self._channel: AgiChannel | None = None
        self.caller_hung_up = False

    @property
    def pbx_name(self) -> str:
        return self._pbx

    def next_command_id(self) -> str:
        self._seq += 1
        return f"fastagi/{self._seq}"

    def agi_expect(self, command_id: str, channel: AgiChannel) -> None:
        self._channel = channel

    def agi_forget(self, command_id: str) -> None:
        pass

    async def agi_send(self, channel: str, command: str, command_id: str) -> None:
        """Write the command and read its result (one command at a time per call)."""
        if command.strip().upper() == agi.cmd_break().upper():
            # Back to the dialplan: FastAGI does that by ending the session.
            self.close()
            self._deliver(command_id, agi.parse_result_text("200 result=0\n"))
            return
        try:
            self._writer.write(command.encode("utf-8") + b"\n")
            await self._writer.drain()
            text = await self._read_result()
        except (ConnectionError, OSError) as exc:
            raise AmiConnectionLost(self._pbx, f"FastAGI {command}") from exc
        if text is None:
            raise AmiConnectionLost(self._pbx, f"FastAGI {command}")
        try:
            result: agi.AgiResult | Exception = agi.parse_result_text(text)
        except agi.AgiParseError as exc:
            result = exc
        self._deliver(command_id, result)

    def _deliver(self, command_id: str, result: agi.AgiResult | Exception) -> None:
        if self._channel is not None:
            self._channel.deliver(command_id, result)

    async def _read_result(self) -> str | None:
        """The next result (``HANGUP`` lines noted and skipped); None at end of stream."""
        lines: list[str] = []
        while True:
            raw = await self._reader.readline()
            if not raw:
                return None
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not lines and line == "HANGUP":
                self.caller_hung_up = True
                continue
            lines.append(line)
            if len(line) < 4 or line[3] != "-":  # "200 result=…", or a block's last line
                return "\n".join(lines) + "\n"

    @property
    def closed(self) -> bool:
        return self._writer.is_closing()

    def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()

    async def hand_back(self, channel: AgiChannel) -> None:
        """End the FastAGI session: AGI() returns and the dialplan goes on at once."""
        self.close()
        channel.mark_gone("released to the dialplan")

    async def read_env(self) -> agi.AgiEnvironment:
        """Read the environment block (raises AgiParseError or TimeoutError)."""
        lines: list[str] = []
        async with asyncio.timeout(ENV_TIMEOUT):
            while len(lines) < MAX_ENV_LINES:
                raw = await self._reader.readline()
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not raw or not line:
                    break
                lines.append(line)
        # parse_env reads the URL-encoded Env of AsyncAGIStart: encode ours the same way
        return agi.parse_env(quote("\n".join(lines) + "\n\n", safe=""))


class FastAgiServer:
    """Listens for FastAGI connections and hands each call to its PBX's AGI router."""

    def __init__(self, routers: Mapping[str, AgiRouter], host: str, port: int) -> None:
        if not routers:
            raise ValueError("a FastAGI server needs at least one AGI router")
        self._routers = dict(routers)
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._calls: set[FastAgiCall] = set()

    @property
    def port(self) -> int:
        """The port listened on (the one picked when configured as 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(
            self._accept, self._host, self._port, backlog=LISTEN_BACKLOG
        )
        log.info("FastAGI listening on %s:%d", self._host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for call in list(self._calls):
            call.close()

    def _router_for(self, script: str) -> AgiRouter | None:
        if script in self._routers:
            return self._routers[script]
        if len(self._routers) == 1 and not script:
            return next(iter(self._routers.values()))
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        first = next(iter(self._routers))
        call = FastAgiCall(first, reader, writer)
        try:
            env = await call.read_env()
        except (agi.AgiParseError, TimeoutError, ConnectionError) as exc:
            log.warning("FastAGI connection from %s without a usable environment: %s", peer, exc)
            call.close()
            return
        script = env.values.get("agi_network_script", "")
        router = self._router_for(script)
        if router is None:
            log.error("FastAGI call %s names no known PBX %r: handed back", env.channel, script)
            call.close()
            return
        call = FastAgiCall(router.pbx, reader, writer)
        self._calls = {c for c in self._calls if not c.closed}
        self._calls.add(call)
        flow = router.start(AgiChannel(call, env, channel=env.channel), call)
        try:
            if flow is not None:
                # Asterisk keeps the channel in AGI() until we close: wait for the flow.
                await asyncio.wait({flow})
        finally:
            call.close()
