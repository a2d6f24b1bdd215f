"""How many parts a text takes, counted the way carriers count.

GSM-7 (the GSM 03.38 default alphabet): 160 septets in one message, 153 per part
of a concatenated one; characters of the extension table (``^{}\\[~]|€`` and form
feed) take two septets and an escape pair is never split across parts.
Anything outside that alphabet — every Chinese text — goes as UCS-2: 70 UTF-16
code units in one message, 67 per part; a surrogate pair (an emoji) takes two
units and is never split.

Pure functions; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = "^{}\\[~]|€\f"
_GSM_BASIC_SET = frozenset(_GSM_BASIC) - {"\x1b"}
_GSM_EXTENSION_SET = frozenset(_GSM_EXTENSION)


class Encoding(Enum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True)
class SegmentCount:
    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    parts: int

    @property
    def single_limit(self) -> int:
        return 160 if self.encoding is Encoding.GSM7 else 70

    @property
    def part_limit(self) -> int:
        return 153 if self.encoding is Encoding.GSM7 else 67


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM 03.38 tables, else UCS-2."""
    for ch in text:
        if ch not in _GSM_BASIC_SET and ch not in _GSM_EXTENSION_SET:
            return Encoding.UCS2
    return Encoding.GSM7


def _unit_sizes(text: str, encoding: Encoding) -> list[int]:
    if encoding is Encoding.GSM7:
        return [2 if ch in _GSM_EXTENSION_SET else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def count_segments(text: str) -> SegmentCount:
    """Encoding, size in units, and number of parts of ``text`` (0 parts when empty)."""
    encoding = encoding_of(text)
    sizes = _unit_sizes(text, encoding)
    units = sum(sizes)
    single, per_part = (160, 153) if encoding is Encoding.GSM7 else (70, 67)
    if units == 0:
        return SegmentCount(encoding, 0, 0)
    if units <= single:
        return SegmentCount(encoding, units, 1)
    # Pack greedily: a character (escape pair, surrogate pair) never straddles parts.
    parts, used = 1, 0
    for size in sizes:
        if used + size > per_part:
            parts += 1
            used = 0
        used += size
    return SegmentCount(encoding, units, parts)
