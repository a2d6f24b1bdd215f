"""A lean AMI frame parser and serialiser.

AMI is text: ``Key: Value`` lines ended by CRLF, a frame ended by an empty line.
The parser keeps raw bytes until a whole frame has arrived and only then decodes
it as UTF-8, so a Chinese ``CallerIDName`` split across TCP reads is never
damaged (panoramisk 1.4 decodes each read by itself and drops the broken bytes).

It accepts what real Asterisk builds send: the banner line with no blank line
after it, frames ended by ``\\r\\n\\n`` or a lone ``\\n\\n``, empty values,
repeated keys (``Output:``, ``Variable:``). A malformed frame or an oversized
one is reported as a :class:`FrameError` in the output and the parser goes on
with the next frame: one bad frame never costs the session.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

BANNER_PREFIX = b"Asterisk Call Manager/"
MAX_FRAME_BYTES = 1 << 20  # a frame larger than 1 MiB is refused

# End of a frame: an empty line, whatever line endings surround it.
_FRAME_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(r"\r?\n")
# Header names are case-insensitive to Asterisk: "action: Ping" is an action.
_KINDS = frozenset({"event", "response", "action"})


class Frame(dict[str, str]):
    """One AMI message: its headers, first value per key, in arrival order.

    Keys keep Asterisk's spelling (``CommandId`` in ``AsyncAGIExec``,
    ``CommandID`` in the client's action). A key that repeats keeps every value in
    :attr:`repeated`; ``frame[key]`` is the first one and :meth:`getall` all of them.
    """

    __slots__ = ("repeated",)

    def __init__(self, *args: object, **kwargs: str) -> None:
        super().__init__(*args, **kwargs)
        self.repeated: dict[str, list[str]] | None = None

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action(self) -> str | None:
        return self.get("Action")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def getall(self, key: str) -> list[str]:
        if self.repeated is not None and key in self.repeated:
            return list(self.repeated[key])
        value = self.get(key)
        return [] if value is None else [value]

    def getall_ci(self, key: str) -> list[str]:
        """Every value of ``key`` in any spelling (``Variable`` and ``variable`` lines)."""
        lowered = key.lower()
        out: list[str] = []
        for name in self:
            if name.lower() == lowered:
                out.extend(self.getall(name))
        return out

    def get_ci(self, key: str, default: str | None = None) -> str | None:
        """Look a key up ignoring case (for the few headers builds spell differently)."""
        value = self.get(key)
        if value is not None:
            return value
        lowered = key.lower()
        for name, value in self.items():
            if name.lower() == lowered:
                return value
        return default

    def __repr__(self) -> str:
        kind = self.event or self.response or self.action or "?"
        return f"<Frame {kind} {dict.__repr__(self)}>"


@dataclass(frozen=True)
class FrameError:
    """A frame the parser could not accept; ``raw`` holds its first bytes."""

    reason: str
    raw: bytes


class FrameParser:
    """Feed it bytes as they arrive; it yields :class:`Frame` and :class:`FrameError`.

    ``banner`` is set once the server's banner line has been read.
    """

    def __init__(
        self,
        *,
        expect_banner: bool = True,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        charset: str = "utf-8",
    ) -> None:
        self.charset = charset
        self.lossy = 0  # frames not valid in ``charset``, read with replacement characters
        self._buffer = b""
        self._expect_banner = expect_banner
        self._max = max_frame_bytes
        self._skipping = False  # inside an oversized frame, dropping bytes until its end
        self.banner: str | None = None

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        buffer = self._buffer + data if self._buffer else data
        out: list[Frame | FrameError] = []
        if self._expect_banner:
            newline = buffer.find(b"\n")
            if newline < 0:
                if len(buffer) > self._max:
                    self._expect_banner = False
                    out.append(FrameError("no banner line", buffer[:200]))
                    self._buffer = b""
                    return out
                self._buffer = buffer
                return out
            self._expect_banner = False
            if buffer.startswith(BANNER_PREFIX):
                self.banner = buffer[:newline].rstrip(b"\r").decode("utf-8", "replace")
                buffer = buffer[newline + 1 :]
        start = 0
        for match in _FRAME_END.finditer(buffer):
            end = match.start()
            chunk = buffer[start:end]
            start = match.end()
            if self._skipping:
                self._skipping = False
                continue
            if chunk:
                out.append(self.parse(chunk))
        rest = buffer[start:]
        if len(rest) > self._max:
            if not self._skipping:
                out.append(FrameError(f"frame larger than {self._max} bytes", rest[:200]))
            self._skipping = True
            # keep the tail, in case the frame's end is split across reads
            rest = rest[-3:]
        self._buffer = rest
        return out

    def parse(self, chunk: bytes) -> Frame | FrameError:
        """One frame's bytes, decoded in the parser's charset (counted in ``lossy`` when
        they are not valid in it)."""
        try:
            text = chunk.decode(self.charset)
        except UnicodeDecodeError:
            self.lossy += 1
            text = chunk.decode(self.charset, "replace")
        return parse_text(text, chunk)

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a whole frame."""
        return len(self._buffer)


def parse_frame(chunk: bytes) -> Frame | FrameError:
    """Parse the bytes of one frame (without its terminating empty line), as UTF-8."""
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        text = chunk.decode("utf-8", "replace")
    return parse_text(text, chunk)


def parse_text(text: str, chunk: bytes) -> Frame | FrameError:
    """Parse one frame's decoded text; ``chunk`` (its bytes) goes into a FrameError."""
    lines = text.split("\r\n")
    if text.count("\n") != len(lines) - 1:  # lone LF line endings somewhere
        lines = _LINE_END.split(text)
    try:
        frame = Frame(line.split(": ", 1) for line in lines)
    except ValueError:
        return _parse_slow(lines, chunk)
    if len(frame) != len(lines):
        return _parse_slow(lines, chunk)
    if "Event" not in frame and "Response" not in frame and "Action" not in frame:
        if not _KINDS.intersection(key.lower() for key in frame):
            return FrameError("no Event, Response or Action header", chunk[:200])
    return frame


def _parse_slow(lines: list[str], chunk: bytes) -> Frame | FrameError:
    """Repeated keys, ``Key:`` with no space, leading blank lines, or garbage."""
    frame = Frame()
    for line in lines:
        if not line:
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
            if not sep or not key or " " in key:
                return FrameError(f"line without 'Key: Value': {line[:80]!r}", chunk[:200])
        if key in frame:
            if frame.repeated is None:
                frame.repeated = {}
            frame.repeated.setdefault(key, [frame[key]]).append(value)
        else:
            frame[key] = value
    if "Event" not in frame and "Response" not in frame and "Action" not in frame:
        if not _KINDS.intersection(key.lower() for key in frame):
            return FrameError("no Event, Response or Action header", chunk[:200])
    return frame


def serialize(headers: Iterable[tuple[str, str]] | dict[str, str | list[str]]) -> bytes:
    """Encode a frame: ``Key: Value`` CRLF lines and the empty line; lists repeat the key."""
    items = list(headers.items() if isinstance(headers, dict) else headers)
    # Fast path (a busy PBX serialises every event): plain strings need no cleaning unless
    # the finished text shows a CR or LF that is not a line end; then the careful path.
    parts: list[str] = []
    for key, value in items:
        if type(value) is not str:
            break
        parts.append(f"{key}: {value}\r\n")
    else:
        parts.append("\r\n")
        text = "".join(parts)
        if text.count("\n") == len(parts) and text.count("\r") == len(parts):
            return text.encode("utf-8")
    parts = []
    for key, value in items:
        if isinstance(value, list | tuple):
            parts.extend(f"{key}: {_clean(v)}\r\n" for v in value)
        else:
            parts.append(f"{key}: {_clean(value)}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def _clean(value: object) -> str:
    # A CR or LF inside a value would end the line (and could inject a header).
    text = str(value)
    if "\n" in text or "\r" in text:
        text = text.replace("\r", " ").replace("\n", " ")
    return text


def iter_frames(data: bytes, *, expect_banner: bool = True) -> Iterator[Frame | FrameError]:
    """Parse a whole recorded stream (a transcript) at once."""
    parser = FrameParser(expect_banner=expect_banner)
    yield from parser.feed(data)
    if parser.pending:
        # a recording may end without the last empty line
        yield parse_frame(parser._buffer.rstrip(b"\r\n"))
