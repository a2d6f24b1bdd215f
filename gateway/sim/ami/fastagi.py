"""``AGI(agi://host[:port][/script])``: the simulated PBX as a FastAGI client.

Like res_agi: connect (a refused or unreachable server fails at once, so the
dialplan goes on: no caller waits in silence for a gateway that is away), send
the environment (``agi_network: yes``, ``agi_network_script``, ``agi_request``
the URL) and an empty line, then read one command per line and answer each with
its result line, with no poll between commands. When the caller hangs up the
server is sent ``HANGUP`` and later commands answer 511. When the server closes
the connection, AGI() returns and the dialplan continues (``AGISTATUS``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gateway.ami import names as n
from gateway.sim.ami.agi import AgiResult, agi_env, execute
from gateway.sim.ami.world import PRIV_AGI

if TYPE_CHECKING:
    from gateway.sim.ami.channel import SimChannel
    from gateway.sim.ami.world import World

log = logging.getLogger("gateway.sim.ami")

FASTAGI_PORT = 4573
# Seconds a connection to the gateway may take, in real time: the TCP connect runs over
# real sockets, so scaling it with the simulated clock would fail a busy but live
# gateway at high speeds (30 ms at 100×) and send callers past the IVR.
CONNECT_TIMEOUT = 3.0
DEAD = AgiResult("511 Command Not Permitted on a dead channel or intercepted channel\n", 511)


async def run_fast_agi(world: World, chan: SimChannel, url: str) -> bool:
    """Run one FastAGI session for ``chan``; True when the call ended (hang-up)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or FASTAGI_PORT
    script = parts.path.lstrip("/")
    chan.app, chan.appdata = "AGI", url
    chan.last_app, chan.last_data = "AGI", url
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        log.info("FastAGI %s unreachable for %s: %s", url, chan.name, exc)
        world.set_var(chan, "AGISTATUS", "FAILURE")
        return chan.hangup_requested
    env = agi_env(world, chan).replace("agi_request: async\n", f"agi_request: {url}\n", 1)
    writer.write(f"agi_network: yes\nagi_network_script: {script}\n{env}".encode())
    status = "SUCCESS"
    told_hangup = False
    try:
        while True:
            line = await _next_line(reader, chan, told_hangup)
            if line is None:  # the caller hung up: tell the server, as res_agi does
                told_hangup = True
                status = "HANGUP"
                writer.write(b"HANGUP\n")
                continue
            if not line:
                break  # the server closed: back to the dialplan
            command = line.decode("utf-8", "replace").strip()
            if not command:
                continue
            result = (
                DEAD if chan.hangup_requested or chan.gone else await _run(world, chan, command)
            )
            writer.write(result.line.encode())
            await writer.drain()
            if result.control == "hangup":
                status = "HANGUP"
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    if not chan.gone:
        world.set_var(chan, "AGISTATUS", status)
    return chan.hangup_requested


async def _next_line(
    reader: asyncio.StreamReader, chan: SimChannel, told_hangup: bool
) -> bytes | None:
    """The server's next line; None when the caller hung up first (and was not told yet)."""
    if told_hangup:
        return await reader.readline()
    line = asyncio.ensure_future(reader.readline())
    hung = asyncio.ensure_future(chan.hungup.wait())
    try:
        await asyncio.wait({line, hung}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hung.cancel()
    if line.done():
        return line.result()
    line.cancel()
    await asyncio.gather(line, return_exceptions=True)
    return None


async def _run(world: World, chan: SimChannel, command: str) -> AgiResult:
    world.chan_event(n.EV_AGI_EXEC_START, PRIV_AGI, chan, (n.H_COMMAND, command))
    try:
        result = await execute(world, chan, command)
    except Exception:
        log.exception("AGI command %r failed in the simulator", command)
        result = AgiResult("200 result=-1\n")
    if not chan.gone:
        world.chan_event(
            n.EV_AGI_EXEC_END,
            PRIV_AGI,
            chan,
            (n.H_COMMAND, command),
            ("ResultCode", str(result.code)),
            (n.H_RESULT, result.text),
        )
    return result
