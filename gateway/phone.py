"""Phone numbers enter as strings and leave as E.164, through this one helper.

Numbers are parsed with ``phonenumbers`` in the default region CN. ``mask`` is
what logs and texts to third parties show of a citizen's number.
"""

from __future__ import annotations

from enum import Enum

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from gateway.errors import GatewayError

DEFAULT_REGION = "CN"

_TEXTABLE = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


class InvalidPhoneNumber(GatewayError):
    """A number was refused; ``reason`` says why, ``raw`` what was given."""

    def __init__(self, raw: str, reason: str) -> None:
        super().__init__(f"invalid phone number {mask(raw)!r}: {reason}")
        self.raw = raw
        self.reason = reason


class Use(Enum):
    CALL = "call"
    TEXT = "text"


def to_e164(raw: str, *, use: Use = Use.CALL, region: str = DEFAULT_REGION) -> str:
    """Parse ``raw`` (spaces, dashes, ``+86``, ``0086`` allowed) to E.164.

    Raises :class:`InvalidPhoneNumber` when the number is not a valid number, or,
    with ``use=Use.TEXT``, when it cannot take a text (a fixed line).
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber(raw, "empty")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise InvalidPhoneNumber(raw, f"not a phone number ({exc._msg})") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(raw, "no such number in its numbering plan")
    if use is Use.TEXT and phonenumbers.number_type(number) not in _TEXTABLE:
        raise InvalidPhoneNumber(raw, "a fixed line cannot receive texts")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def dial_string(e164: str, region: str = DEFAULT_REGION) -> str:
    """The digits a trunk in ``region`` dials for ``e164``: the national form inside the
    region (``+8613912345678`` → ``13912345678``, ``+865398123456`` → ``05398123456``),
    the international form with ``00`` elsewhere."""
    number = phonenumbers.parse(e164, region)
    if phonenumbers.region_code_for_number(number) == region:
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        return "".join(ch for ch in national if ch.isdigit())
    return "00" + e164.lstrip("+")


def mask(number: str | None) -> str:
    """Hide the middle of a number: ``+8613912345678`` → ``+86139****5678``."""
    if not number:
        return ""
    digits = number.strip()
    if len(digits) <= 7:
        return digits[:2] + "*" * max(0, len(digits) - 2)
    return digits[: len(digits) - 8] + "****" + digits[-4:]
