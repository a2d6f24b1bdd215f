"""A case shows every channel it came from, exactly: a 12345 transfer as 12345 (though
its case is of the hotline kind), a call to the hotline's IVR as the hotline, also
after merges."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.appeals.service import AppealService, SubmissionInput
from gateway.cli import main
from gateway.clock import ManualClock
from gateway.config import AppealsSection
from gateway.store import Store
from gateway.store.cases import Case

NOISE = "楼下烧烤摊每天晚上营业到凌晨两点，噪音太大，孩子无法睡觉，请派出所管一管。"
NOISE_AGAIN = "楼下烧烤摊天天营业到凌晨两点，噪音很大孩子睡不着，希望派出所处理。"
BIKE = "我的电动车上周在幸福小区车棚被盗，报案后一直没有消息，想问问进展。"
CITIZEN = "13912345678"


def appeal(
    channel: str, reference: str, text: str = NOISE, citizen: str = CITIZEN
) -> SubmissionInput:
    return SubmissionInput(channel, reference, citizen, "complaint", text)


async def hotline_call(store: Store, linkedid: str) -> Case:
    """A case as the hotline's IVR opens it: a voice message, no appeals terms."""
    return await store.cases.open_case(
        channel="hotline",
        category="complaint",
        actor="ivr",
        citizen_number=CITIZEN,
        subject="热线留言",
        content="语音留言",
        recording=f"messages/{linkedid}.wav",
        call_linkedid=linkedid,
    )


@pytest.fixture
async def appeals(store: Store, clock: ManualClock) -> AsyncIterator[AppealService]:
    yield AppealService(store, clock, AppealsSection())


async def test_a_12345_transfer_shows_as_12345_not_as_the_hotline(
    appeals: AppealService,
) -> None:
    """The case of a 12345 transfer is of the hotline kind but came from 12345, once."""
    intake = await appeals.submit(appeal("12345", "GD-1"))
    assert intake.case.channel == "hotline"
    assert (await appeals.case_file(intake.case.number)).channels == {"12345": 1}


async def test_a_hotline_call_counts_as_the_hotline(appeals: AppealService, store: Store) -> None:
    """A case the IVR opened (no appeals terms) came from the hotline, once."""
    called = await hotline_call(store, "1764561600.1")
    assert (await appeals.case_file(called.number)).channels == {"hotline": 1}


async def test_a_hotline_call_counts_even_once_its_case_has_terms(
    appeals: AppealService, store: Store
) -> None:
    """A hotline case given deadlines later (terms) still came from the hotline."""
    called = await hotline_call(store, "1764561600.1")
    async with store.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO appeal_terms (case_id, owner_source, accept_by, answer_by)"
            " VALUES (?, 'none', ?, ?)",
            (called.id, "2026-12-01T16:00:00.000000+00:00", "2026-12-04T16:00:00.000000+00:00"),
        )
    assert (await appeals.case_file(called.number)).channels == {"hotline": 1}


async def test_merges_keep_every_channel_of_every_case(
    appeals: AppealService, store: Store
) -> None:
    """Merged in either direction and in chains, the hotline call and each submission count."""
    web = await appeals.submit(appeal("web", "W1"))
    again = await appeals.submit(appeal("12345", "GD-2", NOISE_AGAIN))
    assert again.repeat
    first_call = await hotline_call(store, "1764561600.1")
    second_call = await hotline_call(store, "1764561900.7")
    # A call merged into the web case, then that case into another call's case.
    await appeals.merge(first_call.number, web.case.number, actor="J00013")
    merged = await appeals.merge(web.case.number, second_call.number, actor="J00013")
    assert merged.channels == {"hotline": 2, "web": 1, "12345": 1}
    assert list(merged.channels) == ["hotline", "web", "12345"]
    gone = await appeals.case_file(web.case.number)
    assert gone.channels == {"hotline": 1}  # its submissions moved; the first call stays
    bike = await appeals.submit(appeal("visit", "V1", BIKE))
    shown = await appeals.channels([second_call.id, web.case.id, bike.case.id])
    assert shown == {
        second_call.id: {"hotline": 2, "web": 1, "12345": 1},
        web.case.id: {"hotline": 1},
        bike.case.id: {"visit": 1},
    }


@pytest.mark.usefixtures("restore_logging")
def test_the_case_list_and_view_name_the_exact_channels(
    tmp_path: Path, clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway cases` says 12345转办 for a transfer, and `cases show` every channel counted."""

    async def fill() -> tuple[str, str]:
        async with Store.open(tmp_path / "gateway.sqlite3", clock) as store:
            service = AppealService(store, clock, AppealsSection())
            transfer = await service.submit(appeal("12345", "GD-1"))
            await service.submit(appeal("wechat", "X1", NOISE_AGAIN))
            called = await hotline_call(store, "1764561600.1")
            await service.merge(called.number, transfer.case.number, actor="J00013")
            bike = await service.submit(appeal("visit", "V1", BIKE, citizen="13800138000"))
            again = await service.submit(appeal("web", "W9", BIKE, citizen="13700137000"))
            await service.merge(again.case.number, bike.case.number, actor="J00013")
            return transfer.case.number, bike.case.number, again.case.number

    transfer, bike, merged = asyncio.run(fill())
    assert main(["--data-dir", str(tmp_path), "cases"]) == 0
    listed = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert listed[transfer][1] == "热线电话、微信、12345转办"
    assert listed[bike][1] == "网站、来访"
    assert listed[merged][1] == "—"  # its submission went with it to the case it joined
    assert main(["--data-dir", str(tmp_path), "cases", "show", transfer]) == 0
    assert "渠道      热线电话 1 件、微信 1 件、12345转办 1 件" in capsys.readouterr().out
    assert main(["--data-dir", str(tmp_path), "cases", "--json"]) == 0
    by_number = {c["number"]: c for c in json.loads(capsys.readouterr().out)}
    assert by_number[transfer]["channels"] == {"hotline": 1, "wechat": 1, "12345": 1}


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
