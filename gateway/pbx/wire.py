"""The session's fast path over :class:`gateway.ami.frames.FrameParser`.

A busy PBX sends thousands of events a second, nearly all well-formed
``Key: Value\\r\\n`` frames ended by ``\\r\\n\\r\\n``. For those, this parser
decodes each TCP read's complete frames in one go (cutting only at frame ends,
which are ASCII, so a multi-byte character split across reads stays whole in
the buffer) and builds each frame with one loop. Anything unusual — the banner,
lone-LF or ``\\r\\n\\n`` endings, repeated keys, lines without ``": "``, bytes
that are not UTF-8, an oversized frame — takes :class:`FrameParser`'s general
path, so both give the same frames and the same errors.

``keep`` names the events anyone wants (None: all). An event not named there
and carrying no ``ActionID`` is dropped after reading its first line, before
any parsing: a busy PBX's VarSet/CEL/Newexten floods cost almost nothing.
"""

from __future__ import annotations

from gateway.ami.frames import Frame, FrameError, FrameParser, parse_frame

_new_frame = Frame.__new__


def parse_fast(text: str) -> Frame | None:
    """One frame's text (CRLF lines, no final blank line) to a Frame, or None
    when it needs the general parser (no ``": "`` on a line, a repeated key)."""
    lines = text.split("\r\n")
    frame = _new_frame(Frame)
    frame.repeated = None
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            return None
        frame[key] = value
    if len(frame) != len(lines):
        return None
    if "Event" not in frame and "Response" not in frame and "Action" not in frame:
        return None
    return frame


class FastFrameParser(FrameParser):
    """:class:`FrameParser` with a fast path for well-formed CRLF streams."""

    def __init__(self, *, keep: frozenset[str] | None = None, expect_banner: bool = True) -> None:
        super().__init__(expect_banner=expect_banner)
        self.keep = keep
        self.skipped = 0  # events dropped unparsed because nobody wants them

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        if self._expect_banner or self._skipping:
            return super().feed(data)
        buffer = self._buffer + data if self._buffer else data
        if b"\n\n" in buffer:
            return super().feed(data)
        end = buffer.rfind(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > self._max:
                return super().feed(data)
            self._buffer = buffer
            return []
        rest = buffer[end + 4 :]
        if len(rest) > self._max:
            return super().feed(data)
        try:
            text = buffer[:end].decode("utf-8")
        except UnicodeDecodeError:
            return super().feed(data)
        self._buffer = rest
        out: list[Frame | FrameError] = []
        append = out.append
        keep = self.keep
        for piece in text.split("\r\n\r\n"):
            if not piece:
                continue
            if keep is not None and piece.startswith("Event: "):
                eol = piece.find("\r\n")
                name = piece[7:eol] if eol >= 0 else piece[7:]
                if name not in keep and "\r\nActionID: " not in piece:
                    self.skipped += 1
                    continue
            frame = parse_fast(piece)
            append(frame if frame is not None else parse_frame(piece.encode("utf-8")))
        return out
