"""The few Asterisk CLI commands the simulator answers through ``Action: Command``."""

from __future__ import annotations

import platform
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.sim.ami.world import World


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def run_cli(world: World, command: str) -> tuple[bool, list[str]]:
    """(success, output lines) for one CLI command line."""
    words = command.split()
    lowered = [w.lower() for w in words]
    if lowered == ["core", "show", "version"]:
        built = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(world.booted_at))
        return True, [
            f"Asterisk {world.config.version} built by sim @ gateway on a "
            f"{platform.machine() or 'x86_64'} running Linux on {built} UTC"
        ]
    if lowered[:3] == ["core", "show", "channels"] and len(words) <= 4:
        header = (
            f"{'Channel':<64.64} {'Location':<32.32} {'State':<7.7} {'Application(Data)':<30.30}"
        )
        lines = [header]
        for chan in world.channels.values():
            location = f"{chan.exten}@{chan.context}:{chan.priority}"
            app = f"{chan.app}({chan.appdata})"
            lines.append(
                f"{chan.name:<64.64} {location:<32.32} {chan.state_desc:<7.7} {app:<30.30}"
            )
        linked = {c.linkedid for c in world.channels.values()}
        lines.append(f"{_plural(len(world.channels), 'active channel')}")
        lines.append(f"{_plural(len(linked), 'active call')}")
        lines.append(f"{_plural(world.calls_processed, 'call')} processed")
        return True, lines
    if lowered[:2] == ["queue", "show"]:
        wanted = words[2] if len(words) > 2 else None
        lines = []
        for queue in world.queues.values():
            if wanted and queue.name != wanted:
                continue
            lines.append(
                f"{queue.name} has {len(queue.waiting)} calls (max unlimited) "
                f"in 'ringall' strategy "
                f"({queue.holdtime}s holdtime, {queue.talktime}s talktime), W:0, "
                f"C:{queue.completed}, A:{queue.abandoned}, SL:0.0%, SL2:0.0% within 0s"
            )
            if queue.seats:
                lines.append("   Members: ")
                for seat in queue.seats:
                    state = "Ringing" if seat.ringing else ("In use" if seat.busy else "Not in use")
                    taken = (
                        f"has taken {seat.calls_taken} calls (last was "
                        f"{int(world.sim_now()) - seat.last_call} secs ago)"
                        if seat.calls_taken
                        else "has taken no calls yet"
                    )
                    paused = " (paused)" if seat.paused else ""
                    lines.append(
                        f"      {seat.member_name} ({seat.interface}) ({seat.membership})"
                        f" (ringinuse disabled){paused} ({state}) {taken}"
                    )
            else:
                lines.append("   No Members")
            if queue.waiting:
                lines.append("   Callers: ")
                for pos, entry in enumerate(queue.waiting, start=1):
                    wait = int(world.sim(world.loop_time() - entry.joined))
                    lines.append(
                        f"      {pos}. {entry.channel.name} "
                        f"(wait: {wait // 60}:{wait % 60:02d}, prio: 0)"
                    )
            else:
                lines.append("   No Callers")
            lines.append("")
        if wanted and not lines:
            return False, [f"No such queue: {wanted}."]
        return True, lines or ["No queues."]
    return False, [
        f"No such command '{command}' (type 'core show help {command}' for other possible commands)"
    ]
