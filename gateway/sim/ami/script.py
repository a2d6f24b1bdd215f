"""What simulated people do: callers' scripts, citizens' behaviours, and what came of a call.

A :class:`CallerScript` is a list of steps a simulated caller follows in order::

    CallerScript(caller="+8613912345678", caller_name="张三", dialled="9600110",
                 steps=[WaitForPrompt(), Press("2"), WaitForPrompt(input=True),
                        Speak(3.0), Press("#"), WaitForAgent(), Silence(10), HangUp()])

When the steps run out the caller stays on the line until the PBX side ends the call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DTMF_DIGITS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True)
class WaitForPrompt:
    """Wait until the PBX plays a prompt.

    ``name`` waits for that prompt (file name without folder or extension);
    ``nth`` waits until that many prompts have been heard since the call began;
    ``input`` waits for anything that listens for the caller (GET DATA, WAIT FOR
    DIGIT, STREAM FILE with escape digits, RECORD FILE); with no argument, the next
    prompt of any kind. ``timeout`` (simulated seconds) gives up and goes on.
    """

    name: str | None = None
    nth: int | None = None
    input: bool = False
    timeout: float | None = None


@dataclass(frozen=True)
class Press:
    """Press keys, ``gap`` simulated seconds apart (each key sounds ``duration_ms``)."""

    digits: str
    gap: float = 0.3
    duration_ms: int = 100

    def __post_init__(self) -> None:
        if not self.digits:
            raise ValueError("Press needs at least one digit")
        bad = [d for d in self.digits if d not in DTMF_DIGITS]
        if bad:
            raise ValueError(f"not DTMF digits: {''.join(bad)!r} in {self.digits!r}")


@dataclass(frozen=True)
class Silence:
    """Stay silent on the line for ``seconds`` (simulated)."""

    seconds: float


@dataclass(frozen=True)
class Speak:
    """Talk for ``seconds`` (what a RECORD FILE running meanwhile records)."""

    seconds: float


@dataclass(frozen=True)
class HangUp:
    """Hang up now."""


@dataclass(frozen=True)
class WaitForAgent:
    """Wait until a queue agent answers (``timeout`` simulated seconds, then go on)."""

    timeout: float | None = None


Step = WaitForPrompt | Press | Silence | Speak | HangUp | WaitForAgent


@dataclass(frozen=True)
class CallerScript:
    """An inbound call to the hotline and what the caller does on it."""

    caller: str
    caller_name: str = ""
    dialled: str = "s"
    steps: tuple[Step, ...] | list[Step] = ()
    language: str = "en"

    def __post_init__(self) -> None:
        if not self.caller:
            raise ValueError("a caller number is required")
        object.__setattr__(self, "steps", tuple(self.steps))


# Citizens reached by an outbound Originate.


@dataclass(frozen=True)
class Answer:
    """Pick up after ``ring_seconds`` and follow ``steps`` (the survey flow runs by AsyncAGI)."""

    steps: tuple[Step, ...] | list[Step] = ()
    ring_seconds: float = 2.0
    caller_name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))


@dataclass(frozen=True)
class Busy:
    """The line is busy (OriginateResponse Reason 5)."""

    ring_seconds: float = 0.5


@dataclass(frozen=True)
class NoAnswer:
    """Rings until the Originate's Timeout (Reason 3); ``ringing=False``: never rings (Reason 1)."""

    ringing: bool = True


@dataclass(frozen=True)
class Unreachable:
    """The network gives up: congestion (Reason 8), or ``no_such_number`` (Reason 0)."""

    no_such_number: bool = False


CitizenBehaviour = Answer | Busy | NoAnswer | Unreachable


@dataclass
class CallOutcome:
    """What happened on one simulated call, seen from the citizen's side."""

    channel: str
    uniqueid: str
    linkedid: str
    direction: str  # "inbound" (citizen called the hotline) or "outbound" (callback)
    number: str
    prompts: list[str] = field(default_factory=list)
    keys: str = ""  # every key pressed, in order, heard or not
    ended_by: str = ""  # "caller" (the citizen hung up) or "pbx"
    cause: int = 0
    answered: bool = False
    queue: str | None = None
    agent: str | None = None  # the MemberName that took the call
    abandoned: bool = False
    recordings: list[str] = field(default_factory=list)  # files RECORD FILE wrote
    reason: int | None = None  # OriginateResponse Reason, for outbound calls
