"""Settings of the simulated PBX, and its manager users as ``manager.conf`` defines them."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path

# manager.c's permission classes (read=, write=, the Events mask).
CLASSES = frozenset(
    {
        "system",
        "call",
        "log",
        "verbose",
        "command",
        "agent",
        "user",
        "config",
        "dtmf",
        "reporting",
        "cdr",
        "dialplan",
        "originate",
        "agi",
        "cc",
        "aoc",
        "test",
        "security",
        "message",
    }
)


def classes(text: str) -> frozenset[str]:
    """A ``read=``/``write=`` value to its classes (``all`` is every class)."""
    words = {w.strip().lower() for w in text.split(",") if w.strip()}
    if "all" in words:
        return CLASSES
    unknown = words - CLASSES
    if unknown:
        raise ValueError(f"unknown permission class {sorted(unknown)[0]!r}")
    return frozenset(words)


@dataclass(frozen=True)
class ManagerUser:
    """One ``[user]`` of manager.conf: its secret, read and write classes, event filters
    (``!`` excludes; otherwise only matching events pass) and ``writetimeout`` (ms)."""

    name: str
    secret: str
    read: frozenset[str] = CLASSES
    write: frozenset[str] = CLASSES
    eventfilters: tuple[str, ...] = ()
    writetimeout_ms: int = 100  # Asterisk's default

    def __post_init__(self) -> None:
        for pattern in self.eventfilters:
            re.compile(pattern.removeprefix("!"))  # re.error for a bad filter
        if self.writetimeout_ms <= 0:
            raise ValueError(f"writetimeout must be positive, got {self.writetimeout_ms}")

    def wants(self, event_text: str) -> bool:
        """Asterisk's legacy eventfilter: an event matching a ``!`` filter is dropped;
        when there are including filters, an event must match one of them."""
        include = [f for f in self.eventfilters if not f.startswith("!")]
        if any(re.search(f[1:], event_text) for f in self.eventfilters if f.startswith("!")):
            return False
        return not include or any(re.search(f, event_text) for f in include)


def shipped_gateway_user(secret: str, name: str = "gateway") -> ManagerUser:
    """The ``[gateway]`` user of the shipped ``asterisk/manager.conf`` (least privilege:
    no dialplan or system events, VarSet, RTCP and CEL filtered), with the given secret."""
    return ManagerUser(
        name=name,
        secret=secret,
        read=classes("call,agent,agi,dtmf,reporting,cdr,user"),
        write=classes("call,originate,agent,command,reporting,agi"),
        eventfilters=("!Event: RTCP*", "!Event: VarSet", "!Event: CEL"),
        writetimeout_ms=500,
    )


def parse_manager_conf(text: str) -> tuple[ManagerUser, ...]:
    """The users of a manager.conf-style text (``[general]`` and unknown keys ignored)."""
    users: list[ManagerUser] = []
    current: dict[str, list[str]] | None = None
    name = ""

    def finish() -> None:
        if current is None or name.lower() == "general":
            return
        one = {key: values[-1] for key, values in current.items()}
        users.append(
            ManagerUser(
                name=name,
                secret=one.get("secret", ""),
                read=classes(one["read"]) if "read" in one else frozenset(),
                write=classes(one["write"]) if "write" in one else frozenset(),
                eventfilters=tuple(current.get("eventfilter", [])),
                writetimeout_ms=int(one.get("writetimeout", "100")),
            )
        )

    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            finish()
            name, current = line[1:-1].strip(), {}
            continue
        key, sep, value = line.partition("=")
        if not sep or current is None:
            raise ValueError(f"not a manager.conf line: {raw!r}")
        current.setdefault(key.strip().lstrip(">").strip().lower(), []).append(value.strip())
    finish()
    return tuple(users)


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
    # Manager users as manager.conf defines them; empty: one user, ``username`` with
    # ``secret``, reading and writing every class.
    users: tuple[ManagerUser, ...] = field(default=())
    # manager.conf's authtimeout: a connection not logged in by then is closed (scaled).
    auth_timeout: float = 30.0
    # What the hotline and callback contexts run: AGI(agi:async), or FastAGI at
    # agi://host:port/script.
    agi_url: str = "agi:async"

    def __post_init__(self) -> None:
        codecs.lookup(self.charset)  # LookupError for an unknown charset
        if self.agi_url != "agi:async" and not self.agi_url.startswith("agi://"):
            raise ValueError(f"agi_url must be agi:async or agi://…, got {self.agi_url!r}")
        if not self.auth_timeout > 0:
            raise ValueError(f"auth_timeout must be positive, got {self.auth_timeout!r}")
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

    def user(self, name: str) -> ManagerUser | None:
        """The manager user called ``name`` (case-insensitive, as Asterisk matches it)."""
        users = self.users or (ManagerUser(self.username, self.secret),)
        for user in users:
            if user.name.lower() == name.lower():
                return user
        return None
