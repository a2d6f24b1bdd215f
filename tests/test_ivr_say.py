"""Numbers, codes, dates and names said from recorded pieces; working hours in local time."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gateway.clock import LOCAL_TZ
from gateway.ivr import say
from gateway.ivr.hours import HoursError, WorkingHours


def spoken(pieces: list[str]) -> str:
    """The pieces as the caller hears them, for readable tables."""
    words = {f"digits/{d}": c for d, c in zip("0123456789", "零一二三四五六七八九", strict=True)}
    words.update(
        {
            "digits/yao": "幺",
            "pieces/dash": "杠",
            "pieces/shi": "十",
            "pieces/bai": "百",
            "pieces/qian": "千",
            "pieces/nian": "年",
            "pieces/yue": "月",
            "pieces/ri": "日",
            "pieces/hao": "号",
        }
    )
    return "".join(words.get(p, p.removeprefix("letters/")) for p in pieces)


@pytest.mark.parametrize(
    ("value", "heard"),
    [
        (0, "零"),
        (7, "七"),
        (10, "十"),
        (12, "十二"),
        (20, "二十"),
        (23, "二十三"),
        (30, "三十"),
        (100, "一百"),
        (105, "一百零五"),
        (110, "一百一十"),
        (1001, "一千零一"),
        (2026, "二千零二十六"),
        (9999, "九千九百九十九"),
    ],
)
def test_numbers_are_said_the_chinese_way(value, heard):
    """Integers read as a Chinese speaker says them: 十二, not 一十二; 一百零五 with its 零."""
    assert spoken(say.number(value)) == heard


@pytest.mark.parametrize("value", [-1, 10000])
def test_numbers_out_of_range_are_refused(value):
    """Numbers the pieces cannot say raise a SayError naming the value."""
    with pytest.raises(say.SayError, match=str(value)):
        say.number(value)


def test_a_case_number_is_read_character_by_character():
    """TS20261130-0017 is read T S 二零二六幺幺三零 杠 零零幺七, 1 as 幺."""
    assert spoken(say.digits("TS20261130-0017")) == "TS二零二六幺幺三零杠零零幺七"
    assert spoken(say.digits(" ab 12 ")) == "AB幺二"


@pytest.mark.parametrize("text", ["", "  ", "12?3", "１２"])
def test_codes_that_cannot_be_read_are_refused(text):
    """Empty codes and characters without a piece raise SayError instead of saying nonsense."""
    with pytest.raises(say.SayError):
        say.digits(text)


def test_dates_are_said_with_year_month_and_day():
    """A full date is 二零二六年十一月三十日; a day in speech is 十一月三十号."""
    assert spoken(say.full_date(date(2026, 11, 30))) == "二零二六年十一月三十日"
    assert spoken(say.day(date(2026, 1, 5))) == "一月五号"
    assert spoken(say.say("day", "2026-11-28T09:30:00+08:00", ())) == "十一月二十八号"


def test_a_bad_date_is_refused():
    """Text that is not a date raises SayError naming it."""
    with pytest.raises(say.SayError, match="yesterday"):
        say.say("date", "yesterday", ())


def test_names_use_their_recording_or_a_generic_one(caplog):
    """A unit with a recording is said by name; one without falls back and is logged."""
    catalogue = {"unit/LZ-DC-01", "kind/id_card"}
    assert say.say("unit", "LZ-DC-01", catalogue) == ["unit/LZ-DC-01"]
    assert say.say("kind", "id_card", catalogue) == ["kind/id_card"]
    assert say.say("unit", "LZ-XX-99", catalogue) == ["unit/generic"]
    assert say.say("status", "", catalogue) == ["status/unknown"]
    assert "no recording for unit 'LZ-XX-99'" in caplog.text


def test_say_refuses_unknown_kinds_and_non_numbers():
    """An unknown say kind or a non-number for 'number' is a SayError."""
    with pytest.raises(say.SayError, match="unknown say kind"):
        say.say("colour", "red", ())
    with pytest.raises(say.SayError, match="not a whole number"):
        say.say("number", "twelve", ())


def test_every_piece_is_in_the_shipped_catalogue():
    """The pieces say.py can produce all have a recording or a catalogue entry."""
    from pathlib import Path

    from gateway.ivr.prompts import load_catalogue

    root = Path(__file__).resolve().parent.parent
    catalogue = load_catalogue(root / "recordings" / "prompts.yaml")
    assert [p for p in say.PIECES if p not in catalogue] == []


# --------------------------------------------------------------------------- working hours


def at(hour: int, minute: int = 0, day: int = 30) -> datetime:
    """A time given in Shanghai local time, turned to UTC as the clock gives it."""
    return datetime(2026, 11, day, hour, minute, tzinfo=LOCAL_TZ).astimezone(UTC)


def test_working_hours_are_in_local_time():
    """08:30-17:30 local: open at 08:30, closed at 08:29 and at 17:30 (UTC 00:30-09:30)."""
    hours = WorkingHours.parse("08:30-17:30")
    assert hours.is_open(at(8, 30)) and hours.is_open(at(17, 29))
    assert not hours.is_open(at(8, 29)) and not hours.is_open(at(17, 30))
    assert not hours.is_open(at(3))


def test_working_hours_with_a_lunch_break_weekends_and_holidays():
    """Several spans, working days and holidays are all honoured."""
    hours = WorkingHours.parse("08:30-12:00,13:30-17:30", (1, 2, 3, 4, 5, 6), ("2026-12-01",))
    assert hours.is_open(at(11)) and not hours.is_open(at(12, 30))
    assert hours.is_open(at(10, day=28))  # Saturday is a working day here
    assert not hours.is_open(at(10, day=29))  # Sunday
    assert not hours.is_open(datetime(2026, 12, 1, 2, tzinfo=UTC))  # holiday, 10:00 local


@pytest.mark.parametrize(
    ("spans", "days", "holidays", "reason"),
    [
        ("8-17", (1,), (), "HH:MM-HH:MM"),
        ("17:30-08:30", (1,), (), "start must precede end"),
        ("08:30", (1,), (), "HH:MM-HH:MM"),
        ("08:30-17:30", (0, 8), (), "weekdays 1"),
        ("08:30-17:30", (), (), "weekdays 1"),
        ("08:30-17:30", (1,), ("12/25",), "YYYY-MM-DD"),
    ],
)
def test_bad_working_hours_are_refused(spans, days, holidays, reason):
    """A malformed working-hours setting is refused with what is expected."""
    with pytest.raises(HoursError, match=reason):
        WorkingHours.parse(spans, days, holidays)


def test_a_round_the_clock_hotline_is_open_at_every_minute():
    """The span 00:00-24:00 is accepted and is open from 00:00 through 23:59:59, 7 days a week."""
    hours = WorkingHours.parse("00:00-24:00", range(1, 8))
    last_second = datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=LOCAL_TZ)
    assert hours.is_open(at(0)) and hours.is_open(at(23, 59)) and hours.is_open(last_second)
    assert hours.is_open(at(12, day=29))  # Sunday
    evening = WorkingHours.parse("08:30-12:00,18:00-24:00")
    assert evening.is_open(at(23, 59)) and not evening.is_open(at(0, 0, day=1))


def test_24_00_can_only_end_a_span():
    """24:00 starts no span, and no other hour past 23 is read."""
    for spans in ("24:00-24:00", "08:00-24:01", "08:00-25:00"):
        with pytest.raises(HoursError):
            WorkingHours.parse(spans)
