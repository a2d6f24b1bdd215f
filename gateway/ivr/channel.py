"""What the flow engine needs of a live call: the AsyncAGI channel interface.

``gateway.pbx`` implements it over AMI (``AgiChannel``); the flow engine only
sees this protocol. Every method raises :class:`gateway.pbx.exceptions.ChannelHungUp`
once the caller has hung up: the engine catches that one type at one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# File extensions Asterisk gives the formats whose extension is not the format's name.
_EXTENSIONS = {"wav49": "WAV"}


@dataclass(frozen=True)
class RecordResult:
    """The outcome of ``RECORD FILE``: where it went, how it ended, its length.

    ``ended_by`` is "dtmf", "timeout", "silence", "hangup", or "failed": the PBX
    could not write the file (``(writefile)``), so nothing was recorded.
    """

    path: str  # without extension, as given to RECORD FILE
    ended_by: str
    digit: str | None
    duration_ms: int
    fmt: str = "wav"

    @property
    def file(self) -> str:
        """The file the PBX wrote: the path with its format's extension."""
        return f"{self.path}.{_EXTENSIONS.get(self.fmt, self.fmt)}"

    @property
    def failed(self) -> bool:
        return self.ended_by == "failed"


class Channel(Protocol):
    @property
    def name(self) -> str: ...  # Asterisk channel name, e.g. PJSIP/trunk-00000001

    @property
    def uniqueid(self) -> str: ...

    @property
    def linkedid(self) -> str: ...

    @property
    def caller_number(self) -> str: ...  # agi_callerid as received

    @property
    def caller_name(self) -> str: ...

    @property
    def dialled_number(self) -> str: ...  # agi_dnid or agi_extension

    def variable(self, name: str) -> str | None:
        """A channel variable passed at originate time (outbound calls), if any."""
        ...

    async def answer(self) -> None: ...

    async def stream_file(self, prompt: str, escape_digits: str = "") -> str | None:
        """Play ``prompt``; return the escape digit that interrupted it, else None."""
        ...

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
        """Play ``prompt`` and collect up to ``max_digits``; return (digits, timed_out)."""
        ...

    async def read_digits(
        self, prompts: Sequence[str], timeout_ms: int, max_digits: int
    ) -> tuple[str, bool]:
        """Like ``get_data`` for several prompts played as one command, each interruptible
        by any key; return (digits, timed_out)."""
        ...

    async def wait_for_digit(self, timeout_ms: int) -> str | None: ...

    async def record_file(
        self,
        path: str,
        fmt: str = "wav",
        escape_digits: str = "#",
        timeout_ms: int = 60000,
        beep: bool = True,
        silence_s: int | None = 5,
    ) -> RecordResult: ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def exec(self, application: str, options: str = "") -> int:
        """Run a dialplan application (``Queue``, ``Playback`` …); return its result code."""
        ...

    async def play(self, prompts: Sequence[str]) -> None:
        """Play several prompts as one command, without gaps, not interruptible."""
        ...

    async def hangup(self) -> None:
        """End the call, saying the gateway ended it (cause 16, hang-up source ``gateway``)."""
        ...
