"""Load a recorded gateway AMI session (``<epoch> << Header: value`` lines) for replay.

The format, one line per header: ``<epoch> << `` came from Asterisk, ``<epoch> >> ``
was sent; a bare ``<<``/``>>`` line ends a frame; ``!! new session`` marks a new
TCP connection (other ``!!`` lines are notes of the recorder). Each direction's
lines are turned back into the AMI byte stream and parsed by the gateway's own
:class:`FrameParser`, so a replay tests the parser and whatever is fed with its frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway.ami.frames import Frame, FrameParser

RECEIVED = "<<"
SENT = ">>"
NEW_SESSION = "!! new session"


@dataclass(frozen=True)
class Timed:
    """One parsed frame and the epoch its first line was recorded at."""

    at: float
    frame: Frame

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)


@dataclass
class RecordedSession:
    """One TCP connection: the banner, and the frames each way in recorded order."""

    opened_at: float
    banner: str = ""
    received: list[Timed] = field(default_factory=list)
    sent: list[Timed] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # other ``!!`` lines (a refused connect)


class _Direction:
    """Rebuilds one direction's byte stream frame by frame and parses it."""

    def __init__(self, *, banner: bool) -> None:
        self.parser = FrameParser(expect_banner=banner)
        self.first_at: float | None = None
        self.banner_seen = False

    def line(self, at: float, text: str) -> list[Timed]:
        if self.first_at is None:
            self.first_at = at
        out: list[Timed] = []
        for item in self.parser.feed(text.encode("utf-8") + b"\r\n"):
            if isinstance(item, Frame):
                out.append(Timed(self.first_at, item))
            else:
                raise ValueError(f"unparsable frame near epoch {at}: {item!r}")
        if not text or (self.parser.banner and not self.banner_seen):
            self.banner_seen = self.parser.banner is not None
            self.first_at = None
        return out


def load(path: Path) -> list[RecordedSession]:
    """Every session of a recorded transcript, in order."""
    sessions: list[RecordedSession] = []
    rx = tx = None
    current: RecordedSession | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stamp, _, rest = raw.partition(" ")
        try:
            at = float(stamp)
        except ValueError:
            raise ValueError(f"{path.name}:{number}: no epoch at the start of {raw!r}") from None
        if rest == NEW_SESSION:
            current = RecordedSession(opened_at=at)
            sessions.append(current)
            rx, tx = _Direction(banner=True), _Direction(banner=False)
            continue
        if current is None or rx is None or tx is None:
            raise ValueError(f"{path.name}:{number}: a line before the first session mark")
        if rest.startswith("!! "):
            current.notes.append(rest[3:])  # e.g. a refused reconnect while the PBX was down
            continue
        way, _, text = rest.partition(" ")
        if way == RECEIVED:
            frames = rx.line(at, text)
            if rx.parser.banner and not current.banner:
                current.banner = rx.parser.banner
            current.received.extend(frames)
        elif way == SENT:
            current.sent.extend(tx.line(at, text))
        else:
            raise ValueError(f"{path.name}:{number}: neither << nor >> in {raw!r}")
    return sessions
