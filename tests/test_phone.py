"""Phone numbers enter as strings and leave as E.164: table tests of gateway.phone."""

from __future__ import annotations

import pytest

from gateway.phone import InvalidPhoneNumber, Use, mask, to_e164


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13912345678", "+8613912345678"),
        ("139 1234 5678", "+8613912345678"),
        ("139-1234-5678", "+8613912345678"),
        ("+86 139 1234 5678", "+8613912345678"),
        ("+8613912345678", "+8613912345678"),
        ("0086 139 1234 5678", "+8613912345678"),
        ("008613800138000", "+8613800138000"),
        (" 15005311234 ", "+8615005311234"),
        ("18653312345", "+8618653312345"),
        ("17712345678", "+8617712345678"),
    ],
)
def test_mobiles_take_texts(raw: str, e164: str) -> None:
    """Chinese mobiles in every usual spelling parse to the same E.164 and can take a text."""
    assert to_e164(raw, use=Use.TEXT) == e164


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("0531-88123456", "+8653188123456"),
        ("(0531) 8812 3456", "+8653188123456"),
        ("+86 10 6552 9988", "+861065529988"),
        ("010-65529988", "+861065529988"),
    ],
)
def test_landlines_can_be_called(raw: str, e164: str) -> None:
    """Landlines with an area code parse for calls."""
    assert to_e164(raw, use=Use.CALL) == e164


@pytest.mark.parametrize("raw", ["0531-88123456", "+86 10 6552 9988", "010-65529988"])
def test_landlines_cannot_take_texts(raw: str) -> None:
    """A fixed line is refused for a text, with that reason."""
    with pytest.raises(InvalidPhoneNumber) as info:
        to_e164(raw, use=Use.TEXT)
    assert "fixed line" in info.value.reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("hello", "not a phone number"),
        ("1391234567", "no such number"),
        ("139123456789", "no such number"),
        ("12345678901", "no such number"),
        ("+86 999", "no such number"),
    ],
)
def test_invalid_numbers_are_refused_with_a_reason(raw: str, reason: str) -> None:
    """Empty, non-numeric, too short/long and impossible numbers are refused, naming why."""
    with pytest.raises(InvalidPhoneNumber) as info:
        to_e164(raw, use=Use.TEXT)
    assert reason in info.value.reason


def test_refusal_message_masks_the_number() -> None:
    """The error message does not show the whole number it refused."""
    with pytest.raises(InvalidPhoneNumber) as info:
        to_e164("05318812345678", use=Use.TEXT)
    assert "05318812345678" not in str(info.value)


@pytest.mark.parametrize(
    ("number", "masked"),
    [("+8613912345678", "+86139****5678"), ("", ""), ("12345", "12***")],
)
def test_mask(number: str, masked: str) -> None:
    """mask keeps the ends of a number and hides its middle."""
    assert mask(number) == masked
