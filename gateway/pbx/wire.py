"""The session's fast path over :class:`gateway.ami.frames.FrameParser`.

A busy PBX sends thousands of events a second, nearly all well-formed
``Key: Value\\r\\n`` frames ended by ``\\r\\n\\r\\n``. For those, this parser
works on each TCP read's complete frames as one region: it cuts the buffer at
the last frame end (ASCII, so a multi-byte character split across reads stays
whole in the buffer), decodes the region once, splits it into lines once and
builds every frame in one loop over the lines. Anything unusual — the banner,
lone-LF or ``\\r\\n\\n`` endings, repeated keys, lines without ``": "``, a frame
with no Event/Response/Action, bytes that are not UTF-8, an oversized frame —
takes the per-frame path or :class:`FrameParser`'s general path, so all give
the same frames and the same errors.

``keep`` names the events anyone wants (None: all). An event not named there
and carrying no ``ActionID`` is dropped after reading its first line, before
any parsing: a busy PBX's VarSet/CEL/Newexten floods cost almost nothing.
"""

from __future__ import annotations

from gateway.ami.frames import Frame, FrameError, FrameParser

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


def parse_lines(lines: list[str]) -> list[Frame | FrameError] | None:
    """A region's lines (frames separated by one empty line each) to its frames,
    or None when any frame needs the per-frame path.

    The loop only splits and stores: a line without ``": "`` is left out and a
    repeated key overwrites, and both show up in one count at the end (headers
    stored against non-empty lines), so the common case pays no check per line.
    """
    frames: list[Frame | FrameError] = []
    append = frames.append
    new, cls = _new_frame, Frame  # locals: looked up once per frame in the loop
    frame = new(cls)
    frame.repeated = None
    for line in lines:
        if line:
            key, sep, value = line.partition(": ")
            if sep:
                frame[key] = value
        else:
            if "Event" not in frame and "Response" not in frame and "Action" not in frame:
                return None  # also an empty frame: two blank lines in a row
            append(frame)
            frame = new(cls)
            frame.repeated = None
    if "Event" not in frame and "Response" not in frame and "Action" not in frame:
        return None
    append(frame)
    # Every non-empty line must have given one header of its own: len(lines)
    # counts one blank line per frame boundary, i.e. len(frames) - 1 of them.
    if sum(map(len, frames)) != len(lines) - len(frames) + 1:  # type: ignore[arg-type]
        return None
    return frames


class FastFrameParser(FrameParser):
    """:class:`FrameParser` with a fast path for well-formed CRLF streams."""

    def __init__(
        self,
        *,
        keep: frozenset[str] | None = None,
        expect_banner: bool = True,
        charset: str = "utf-8",
    ) -> None:
        super().__init__(expect_banner=expect_banner, charset=charset)
        self.keep = keep
        self.skipped = 0  # events dropped unparsed because nobody wants them

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        if self._expect_banner or self._skipping:
            return super().feed(data)
        buffer = self._buffer + data if self._buffer else data
        end = buffer.rfind(b"\r\n\r\n")
        # A \r\n\n or \n\n frame end after the last \r\n\r\n: the general path
        # finds those. Inside the region they show up as lone LFs, counted below,
        # so the whole read is never scanned for them.
        rest = buffer[end + 4 :] if end >= 0 else buffer
        if len(rest) > self._max or b"\n\n" in rest:
            return super().feed(data)
        if end < 0:
            self._buffer = buffer
            return []
        try:
            # One decode for the whole region: it ends on a frame boundary, so
            # no character is cut, and bulk decoding costs next to nothing.
            text = buffer[:end].decode(self.charset)
        except UnicodeDecodeError:
            return super().feed(data)
        if self.keep is None:
            lines = text.split("\r\n")
            # A lone LF (a \n\n or \r\n\n frame end too) is a line end to the
            # general parser: let it cut those.
            if text.count("\n") != len(lines) - 1:
                return super().feed(data)
            self._buffer = rest
            frames = parse_lines(lines)
            if frames is not None:
                return frames
            return self._parse_pieces(text)
        if text.count("\n") != text.count("\r\n"):  # a lone LF: see above
            return super().feed(data)
        self._buffer = rest
        return self._parse_pieces(text)

    def _parse_pieces(self, text: str) -> list[Frame | FrameError]:
        """The region frame by frame: unwanted events dropped on their first line,
        the rest by :func:`parse_fast`, or by :func:`parse_frame` if that declines."""
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
            append(frame if frame is not None else self.parse(piece.encode(self.charset)))
        return out
