"""``gateway bookings list`` and ``gateway bookings cancel`` on a data folder."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from gateway import config as config_module
from gateway.bookings.service import BookingInput, BookingService
from gateway.cli import main
from gateway.clock import Clock
from gateway.sms.service import SmsService
from gateway.store import Store

pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.fixture
def booked(tmp_path: Path) -> str:
    """One exit-entry booking the day after tomorrow, made on real time; its slot (local)."""
    clock = Clock()
    slot = (clock.local() + timedelta(days=2)).replace(hour=9, minute=30, second=0, microsecond=0)

    async def go() -> None:
        config = config_module.load()
        async with Store.open(tmp_path / "gateway.sqlite3", clock) as store:
            sms = SmsService.from_config(store.sms, config, clock, sender="+8610690000")
            service = BookingService(store, clock, config.bookings, sms, sms.quiet)
            await service.book(
                BookingInput(
                    reference="WX-77",
                    kind="household",
                    citizen_number="13912345678",
                    slot=slot.isoformat(),
                    place="东城派出所户籍窗口",
                    citizen_name="王芳",
                )
            )

    asyncio.run(go())
    return slot.strftime("%Y-%m-%d %H:%M")


def run(tmp_path: Path, *args: str) -> int:
    return main(["--data-dir", str(tmp_path), "bookings", *args])


def test_the_list_shows_bookings_for_people_and_for_tools(
    tmp_path: Path, booked: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table shows the business, the slot, the masked number; --json the full one."""
    assert run(tmp_path, "list") == 0
    table = capsys.readouterr().out
    for part in ("户籍业务办理", booked, "东城派出所户籍窗口", "+86139****5678", "已预约", "WX-77"):
        assert part in table
    assert "13912345678" not in table
    assert run(tmp_path, "list", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["citizen_number"], row["status"]) == ("+8613912345678", "booked")
    assert run(tmp_path, "list", "--status", "cancelled") == 0
    assert "没有符合条件的预约" in capsys.readouterr().out


def test_cancel_texts_the_citizen_once_and_a_second_cancel_is_one_line(
    tmp_path: Path, booked: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cancelled: the cancellation text waits in the outbox; again: exit 1, one line."""
    assert run(tmp_path, "cancel", "WX-77", "--reason", "来电取消") == 0
    assert "已取消" in capsys.readouterr().out
    assert run(tmp_path, "cancel", "WX-77") == 1
    err = capsys.readouterr().err.strip()
    assert "already cancelled" in err and len(err.splitlines()) == 1

    async def texts() -> list[str]:
        async with Store.open(tmp_path / "gateway.sqlite3", Clock()) as store:
            return [m.template for m in await store.sms.recent()]

    assert sorted(asyncio.run(texts())) == ["booking_cancelled", "booking_confirmation"]


def test_cancelling_an_unknown_booking_is_one_line(
    tmp_path: Path, booked: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reference never booked: exit 1 naming it."""
    assert run(tmp_path, "cancel", "NOPE") == 1
    assert "no booking 'NOPE'" in capsys.readouterr().err
