"""Settings of the simulated PBX."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SimConfig:
    """What the simulated Asterisk listens on, who may log in, and how its world behaves.

    ``time_scale`` compresses every simulated delay: 1.0 is real time, 0.01 runs a
    hundred times faster. Durations reported on the wire (``HoldTime``, ``TalkTime``,
    ``Cdr`` ``Duration``, ``endpos``) are in simulated seconds, as a real PBX would
    report them.
    """

    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "gateway"
    secret: str = "s3cret"
    agents: int = 20
    time_scale: float = 1.0
    recordings_dir: Path | None = None
    # A missing prompt file fails like Asterisk (result=-1) instead of playing by name.
    strict_sounds: bool = False
    trunk: str = "trunk"  # the PJSIP endpoint inbound calls arrive on and Originate dials out by
    hotline_context: str = "hotline"
    hotline_queue: str = "hotline"
    queues: tuple[str, ...] = ("hotline",)
    ring_seconds: tuple[float, float] = (1.0, 4.0)  # an agent's phone rings this long
    talk_seconds: tuple[float, float] = (30.0, 180.0)  # an agent talks this long
    seed: int = 0
    version: str = "22.10.1"
    # The PBX's wall clock at start (epoch seconds; None: the real time now) and its
    # timezone, in which Cdr times are written (Asterisk uses the server's local time).
    epoch: float | None = None
    timezone: str = "UTC"
    # Send CEL events (class ``call``), as a site whose cel.conf feeds the manager does.
    cel: bool = False
    # Asterisk sleeps a second before refusing a login; scaled by time_scale.
    login_failure_delay: float = 1.0
    # How the PBX writes text on the wire: an old site's Asterisk may send GBK caller names.
    charset: str = "utf-8"

    def __post_init__(self) -> None:
        codecs.lookup(self.charset)  # LookupError for an unknown charset
        if not self.time_scale > 0:
            raise ValueError(f"time_scale must be positive, got {self.time_scale!r}")
        if self.agents < 0:
            raise ValueError(f"agents must be zero or more, got {self.agents!r}")
        if not self.username or not self.secret:
            raise ValueError("username and secret must not be empty")
        for name, (low, high) in (
            ("ring_seconds", self.ring_seconds),
            ("talk_seconds", self.talk_seconds),
        ):
            if low < 0 or high < low:
                raise ValueError(f"{name} must be a (low, high) range, got {(low, high)!r}")
        if self.hotline_queue not in self.queues:
            raise ValueError(
                f"hotline_queue {self.hotline_queue!r} is not in queues {self.queues!r}"
            )
