"""Saying variable things from recorded pieces: numbers, digits, dates, names.

Pure functions from a value to a list of prompt names. The pieces they use are
listed in :data:`PIECES` and must all be in the prompt catalogue (the flow
loader checks it). Names that come from the store at run time (a unit, a kind of
business, a status) are looked up in the catalogue when said; a name that has no
recording falls back to a generic prompt and is logged, since a name cannot be
spelled out from pieces.
"""

from __future__ import annotations

import logging
from collections.abc import Container
from datetime import date

log = logging.getLogger("gateway.ivr.say")

DIGIT_PROMPTS = tuple(f"digits/{d}" for d in "0123456789")
# Inside a code (case or booking number) 1 is said 幺, as operators do.
CODE_DIGIT_PROMPTS = ("digits/0", "digits/yao", *DIGIT_PROMPTS[2:])
DASH = "pieces/dash"
LETTER_PROMPTS = tuple(f"letters/{c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
SHI, BAI, QIAN = "pieces/shi", "pieces/bai", "pieces/qian"
NIAN, YUE, RI, HAO = "pieces/nian", "pieces/yue", "pieces/ri", "pieces/hao"

# Prefix of the prompt for each kind of name, and what to say when it has no recording.
NAMED = {
    "unit": ("unit/", "unit/generic"),
    "kind": ("kind/", "kind/generic"),
    "status": ("status/", "status/unknown"),
}

PIECES: tuple[str, ...] = (
    *DIGIT_PROMPTS,
    "digits/yao",
    DASH,
    *LETTER_PROMPTS,
    SHI,
    BAI,
    QIAN,
    NIAN,
    YUE,
    RI,
    HAO,
    *(fallback for _, fallback in NAMED.values()),
)

# What a flow's ``say:`` may ask for.
SAY_KINDS = ("digits", "number", "date", "day", *NAMED)


class SayError(ValueError):
    """The value cannot be said as asked (not a number, not a date …)."""


def digits(text: str) -> list[str]:
    """Read a code one character at a time: ``TS-17`` → T, S, 杠, 幺, 七.

    Digits (1 as 幺) and Latin letters are said, ``-`` as 杠; spaces are skipped.
    """
    pieces: list[str] = []
    for char in text.strip().upper():
        if "0" <= char <= "9":
            pieces.append(CODE_DIGIT_PROMPTS[int(char)])
        elif "A" <= char <= "Z":
            pieces.append(LETTER_PROMPTS[ord(char) - ord("A")])
        elif char == "-":
            pieces.append(DASH)
        elif char == " ":
            continue
        else:
            raise SayError(f"cannot read {char!r} in {text!r} aloud")
    if not pieces:
        raise SayError(f"nothing to read aloud in {text!r}")
    return pieces


def number(value: int) -> list[str]:
    """An integer from 0 to 9999 in Chinese: 12 → 十二, 23 → 二十三, 105 → 一百零五."""
    if not 0 <= value <= 9999:
        raise SayError(f"cannot say {value} as a number (0 to 9999)")
    if value == 0:
        return [DIGIT_PROMPTS[0]]
    pieces: list[str] = []
    units = ((1000, QIAN), (100, BAI), (10, SHI), (1, None))
    pending_zero = False
    for size, unit in units:
        digit = value // size % 10
        if digit == 0:
            if pieces:
                pending_zero = True
            continue
        if pending_zero:
            pieces.append(DIGIT_PROMPTS[0])
            pending_zero = False
        # 10–19 are said 十, 十一 … not 一十, 一十一.
        if not (unit == SHI and digit == 1 and not pieces):
            pieces.append(DIGIT_PROMPTS[digit])
        if unit is not None:
            pieces.append(unit)
    return pieces


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise SayError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def day(when: date) -> list[str]:
    """Month and day, as said in speech: 11月30号 (十一月三十号)."""
    return [*number(when.month), YUE, *number(when.day), HAO]


def full_date(when: date) -> list[str]:
    """Year, month and day: 2026年11月30日 (二零二六年十一月三十日)."""
    year = [DIGIT_PROMPTS[int(c)] for c in f"{when.year:04d}"]
    return [*year, NIAN, *number(when.month), YUE, *number(when.day), RI]


def named(kind: str, code: str, catalogue: Container[str]) -> list[str]:
    """The recording of a unit, kind of business or status; a generic one if none."""
    prefix, fallback = NAMED[kind]
    name = prefix + code
    if code and name in catalogue:
        return [name]
    log.warning("no recording for %s %r: saying %s instead", kind, code, fallback)
    return [fallback]


def say(kind: str, value: str, catalogue: Container[str]) -> list[str]:
    """Dispatch on a flow's ``say:`` kind; raise :class:`SayError` for a value it cannot say."""
    if kind == "digits":
        return digits(value)
    if kind == "number":
        try:
            return number(int(value))
        except ValueError:
            raise SayError(f"{value!r} is not a whole number") from None
    if kind == "date":
        return full_date(parse_date(value))
    if kind == "day":
        return day(parse_date(value))
    if kind in NAMED:
        return named(kind, value, catalogue)
    raise SayError(f"unknown say kind {kind!r} (known: {', '.join(SAY_KINDS)})")
