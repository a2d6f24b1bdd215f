"""Segment counting as carriers count: GSM-7 160/153, UCS-2 70/67."""

from __future__ import annotations

import pytest

from gateway.sms.segments import Encoding, count_segments, encoding_of


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts"),
    [
        ("", Encoding.GSM7, 0, 0),
        ("a" * 160, Encoding.GSM7, 160, 1),
        ("a" * 161, Encoding.GSM7, 161, 2),
        ("a" * 306, Encoding.GSM7, 306, 2),
        ("a" * 307, Encoding.GSM7, 307, 3),
        ("€" * 80, Encoding.GSM7, 160, 1),
        ("€" * 81, Encoding.GSM7, 162, 2),
        ("中" * 70, Encoding.UCS2, 70, 1),
        ("中" * 71, Encoding.UCS2, 71, 2),
        ("中" * 134, Encoding.UCS2, 134, 2),
        ("中" * 135, Encoding.UCS2, 135, 3),
        ("a" * 69 + "中", Encoding.UCS2, 70, 1),
    ],
)
def test_count_table(text: str, encoding: Encoding, units: int, parts: int) -> None:
    """Encoding, units and parts match the carrier rules at each boundary."""
    count = count_segments(text)
    assert (count.encoding, count.units, count.parts) == (encoding, units, parts)


def test_escape_pair_is_not_split_across_parts() -> None:
    """A two-septet extension character that would straddle a part boundary starts a new part."""
    text = "a" * 152 + "€" + "a" * 152  # 152+2 > 153: the euro opens part two
    assert count_segments(text).parts == 3


def test_surrogate_pair_is_not_split_across_parts() -> None:
    """An emoji (two UTF-16 units) that would straddle a part boundary starts a new part."""
    text = "中" * 66 + "😀" + "中" * 66  # 66+2 > 67
    count = count_segments(text)
    assert count.units == 134
    assert count.parts == 3


def test_one_chinese_character_makes_the_whole_text_ucs2() -> None:
    """Any character outside GSM 03.38 switches the text to UCS-2."""
    assert encoding_of("Hello 你") is Encoding.UCS2
    assert encoding_of("Hello @£$") is Encoding.GSM7
