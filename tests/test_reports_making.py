"""Making the reports: files, the store's "made" marker and the leaders' texts exactly
once; the once-a-day loop on time, after a restart and after days away; and the
`gateway report` commands, with their refusals as one line."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import config as config_module
from gateway.cli import main
from gateway.clock import ManualClock
from gateway.config import Config
from gateway.reports.errors import OutOfScope, ReportRefused
from gateway.reports.making import ReportMaker, ReportSchedule, catalogue_names
from gateway.reports.pages import agenda_page, daily_page, weekly_page
from gateway.reports.web import add_report_routes
from gateway.sms.service import SmsService
from gateway.store import Store
from gateway.store.fake import FakePlan, build_fake_store
from gateway.store.reports import ReportQueries
from gateway.web.app import create_web_app
from tests.test_reports import font_or_skip

END = date(2026, 12, 1)
MEETING_UNITS = ("LZ-DC", "LZ-KFQ", "LZ-LH", "LZ-QS", "LZ-XC")
# 07:31 in Shanghai on Tuesday 2026-12-01.
MORNING = datetime(2026, 11, 30, 23, 31, tzinfo=UTC)


@pytest.fixture(autouse=True)
def cjk_font() -> Path:
    """Every report here makes its PDF: the CJK font must be there (or, off CI, skip)."""
    return font_or_skip()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four days of traffic at a twentieth of the bureau's volume, built once."""
    path = tmp_path_factory.mktemp("made") / "gateway.sqlite3"
    asyncio.run(build_fake_store(path, FakePlan(days=4, end=END, volume=0.05)))
    return path


@pytest.fixture
def data_dir(built: Path, tmp_path: Path) -> Path:
    """A data folder holding a copy of the built store."""
    shutil.copy(built, tmp_path / "gateway.sqlite3")
    return tmp_path


def _config(data_dir: Path, *overrides: str) -> Config:
    return config_module.load(
        overrides=[f"gateway.data_dir={data_dir}", "sms.from_number=+8610690000", *overrides]
    )


@pytest.fixture
def clock() -> ManualClock:
    """07:31 local on Tuesday 2026-12-01, just after the daily log is due."""
    return ManualClock(MORNING)


@pytest.fixture
async def opened(data_dir: Path, clock: ManualClock) -> AsyncIterator[Store]:
    async with Store.open(data_dir / "gateway.sqlite3", clock) as store:
        yield store


def _maker(store: Store, clock: ManualClock, config: Config) -> ReportMaker:
    sms = SmsService.from_config(store.sms, config, clock)
    return ReportMaker(store, clock, config, sms, catalogue_names())


async def _texts(store: Store, template: str) -> list[tuple[str, str]]:
    rows = await store.db.fetchall(
        "SELECT to_number, body FROM sms_messages WHERE template = ? ORDER BY id", (template,)
    )
    return [(r[0], r[1]) for r in rows]


async def _runs(store: Store) -> list[tuple[str, str, str]]:
    rows = await store.db.fetchall("SELECT kind, key, made_by FROM report_runs ORDER BY kind, key")
    return [(r[0], r[1], r[2]) for r in rows]


async def test_daily_log_is_made_and_texted_once(
    opened: Store, clock: ManualClock, data_dir: Path
) -> None:
    """Made twice, the log's files are rewritten but each leader gets one text with a link."""
    config = _config(data_dir)
    maker = _maker(opened, clock, config)
    first = await maker.daily(date(2026, 11, 30), made_by="command")
    assert first.recorded and first.texts == 1
    assert first.html.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert first.pdf.read_bytes().startswith(b"%PDF-")
    assert first.html == data_dir / "reports" / "daily" / "2026-11-30.html"
    again = await maker.daily(date(2026, 11, 30), made_by="command")
    assert not again.recorded and again.texts == 0
    texts = await _texts(opened, "report_daily")
    assert len(texts) == 1
    number, body = texts[0]
    assert number == "+8613301815908"  # J00001, the demo city's leader
    assert "2026-11-30民生诉求日志" in body
    assert "http://127.0.0.1:8080/reports/daily/2026-11-30" in body
    assert f"满意率{first.figures['satisfaction']}" in body
    assert await _runs(opened) == [("daily", "2026-11-30", "command")]


async def test_todays_log_so_far_is_not_marked_made_and_texted_once(
    opened: Store, clock: ManualClock, data_dir: Path
) -> None:
    """Today's log on demand covers the day so far, texts each leader once that day, and
    leaves the marker to the next morning's whole-day log (which texts again)."""
    maker = _maker(opened, clock, _config(data_dir))
    today = date(2026, 12, 1)
    first = await maker.daily(today, made_by="command")
    assert first.so_far and not first.recorded and first.texts == 1
    assert "截至 07:31，当日未结束" in first.html.read_text(encoding="utf-8")
    await maker.daily(today, made_by="command")
    assert len(await _texts(opened, "report_daily")) == 1
    assert await _runs(opened) == []
    clock.advance(timedelta(days=1))
    made = await ReportSchedule(maker).tick()
    assert ("daily", "2026-12-01", 1) in [(m.kind, m.key, m.texts) for m in made]
    assert len(await _texts(opened, "report_daily")) == 2


async def test_configured_leaders_only_and_unknown_codes_skipped(
    opened: Store, clock: ManualClock, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """reports.leaders names who is texted; a code not on file is logged, not texted."""
    config = _config(data_dir, "reports.leaders=J00002,J09999")
    made = await _maker(opened, clock, config).weekly(date(2026, 11, 23), made_by="command")
    assert made.texts == 1 and made.key == "2026-W48"
    [(number, body)] = await _texts(opened, "report_weekly")
    assert number == "+8613766131860" and "2026-W48民生警务周报" in body
    assert "J09999" in caplog.text


async def test_schedule_makes_each_report_once_across_a_restart(
    opened: Store, clock: ManualClock, data_dir: Path
) -> None:
    """At 07:29 on a meeting Tuesday: last week's report and the day's agendas (the evening
    before was missed); at 07:31 yesterday's log; a restarted loop makes nothing again."""
    config = _config(data_dir, "reports.meeting_weekdays=2")
    clock.advance(timedelta(minutes=-2))  # 07:29
    made = await ReportSchedule(_maker(opened, clock, config)).tick()
    assert [(m.kind, m.key, m.texts) for m in made] == [("weekly", "2026-W48", 1)] + [
        ("agenda", f"2026-12-01/{code}", 0) for code in MEETING_UNITS
    ]
    clock.advance(timedelta(minutes=2))
    made = await ReportSchedule(_maker(opened, clock, config)).tick()
    assert [(m.kind, m.key, m.texts) for m in made] == [("daily", "2026-11-30", 1)]
    assert await ReportSchedule(_maker(opened, clock, config)).tick() == []
    assert len(await _texts(opened, "report_daily")) == 1
    assert len(await _texts(opened, "report_weekly")) == 1


async def test_schedule_catches_up_texts_the_newest_and_makes_agendas(
    opened: Store, clock: ManualClock, data_dir: Path
) -> None:
    """Back after days away it makes each missed log (texting only yesterday's); the evening
    before a meeting day it makes every sub-bureau's and county bureau's agenda."""
    config = _config(data_dir, "reports.meeting_weekdays=6")
    schedule = ReportSchedule(_maker(opened, clock, config))
    made = await schedule.tick()
    assert sorted(m.kind for m in made) == ["daily", "weekly"]
    clock.advance(timedelta(days=2, minutes=30))  # Thursday 08:01
    made = await schedule.tick()
    assert [(m.key, m.texts) for m in made] == [("2026-12-01", 0), ("2026-12-02", 1)]
    clock.advance(timedelta(hours=10))  # Thursday 18:01: Friday is no meeting day
    assert await schedule.tick() == []
    clock.advance(timedelta(days=1))  # Friday 18:01: Saturday's meetings
    made = await schedule.tick()
    agendas = sorted(m.key for m in made if m.kind == "agenda")
    assert agendas == [f"2026-12-05/{code}" for code in MEETING_UNITS]
    assert all(m.pdf.is_file() for m in made)
    assert await schedule.tick() == []
    clock.advance(timedelta(hours=15))  # Saturday 09:01: Friday's log; the agendas are made
    assert [(m.kind, m.key) for m in await schedule.tick()] == [("daily", "2026-12-04")]


async def test_supervised_loop_makes_the_log_and_stops_cleanly(
    opened: Store, clock: ManualClock, data_dir: Path
) -> None:
    """The loop runs under the shared supervisor: it makes what is due, then closes."""
    schedule = ReportSchedule(_maker(opened, clock, _config(data_dir)))
    schedule.start()
    try:
        for _ in range(600):
            if await _runs(opened):
                break
            await asyncio.sleep(0.05)
        schedule.check()
    finally:
        await schedule.aclose()
    assert ("daily", "2026-11-30", "schedule") in await _runs(opened)


# -- the command line --------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["daily", "--date", "2099-01-01"], "in the future"),
        (["daily", "--date", "2026-02-30"], "is not a date"),
        (["weekly", "--week", "2026-W99"], "does not exist"),
        (["agenda", "--unit", "LZ-DC", "--date", "2026-12-02"], "not a meeting day"),
        (["agenda", "--unit", "LZ-NOPE", "--date", "2026-12-01"], "no unit 'LZ-NOPE'"),
        (["period", "--from", "2026-11-30", "--to", "2026-11-01"], "before it starts"),
        (["period", "--from", "2025-01-01", "--to", "2026-11-30"], "at most 366"),
        (["period", "--from", "2026-11-01", "--to", "2099-11-30"], "at most 366"),
        (["period", "--from", "2099-11-01", "--to", "2099-11-30"], "in the future"),
        (["period", "--from", "2026-11-01", "--to", "2026-11-30", "--unit", "X"], "no unit"),
        (["period", "--from", "2026-11-01", "--to", "2026-11-30", "--xlsx", "a.csv"], ".xlsx"),
        (["board", "--date", "2099-01-01"], "in the future"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    data_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """A day, week, range or unit a report cannot cover: one line on stderr, exit 1."""
    assert main(["--data-dir", str(data_dir), "report", *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gateway: ") and message in err[0], err


@pytest.mark.usefixtures("restore_logging")
def test_period_command_writes_the_excel_file(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway report period` prints the rates and writes the .xlsx it was asked for."""
    target = data_dir / "rates.xlsx"
    args = ["period", "--from", "2026-11-27", "--to", "2026-11-30", "--xlsx", str(target)]
    assert main(["--data-dir", str(data_dir), "report", *args]) == 0
    out = capsys.readouterr().out
    assert "接通率" in out and "整改按期率" in out and "东关派出所" in out
    assert target.read_bytes()[:2] == b"PK"


@pytest.mark.usefixtures("restore_logging")
def test_daily_and_board_commands(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gateway report daily` prints the headline and the files; `board` the reasons."""
    assert main(["--data-dir", str(data_dir), "report", "daily", "--date", "2026-11-29"]) == 0
    out = capsys.readouterr().out
    assert "民生诉求日志 2026-11-29" in out and "满意率：" in out
    assert "已通知领导：1 条短信已排队" in out
    assert (data_dir / "reports" / "daily" / "2026-11-29.pdf").is_file()
    assert main(["--data-dir", str(data_dir), "report", "daily", "--date", "2026-11-29"]) == 0
    assert "未重复发短信" in capsys.readouterr().out
    assert main(["--data-dir", str(data_dir), "report", "board", "--date", "2026-11-30"]) == 0
    out = capsys.readouterr().out
    assert "三色预警" in out and "东城分局" in out and "满意率 " in out


# -- the API and the pages -----------------------------------------------------------

API_TOKEN = "reports-token-5d2f9a"


@pytest.fixture
async def api(
    opened: Store, clock: ManualClock, data_dir: Path
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The reports' API over the copied store."""
    config = _config(data_dir, f"web.api_token={API_TOKEN}")
    app = create_web_app(config, clock=clock, store=opened, features=[add_report_routes])
    async with TestClient(TestServer(app)) as http:
        yield http


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-11-30&to=2026-11-01", "before it starts"),
        ("from=2025-01-01&to=2026-11-30", "at most 366"),
        ("from=2026-11-01&to=2026-12-09", "in the future"),
        ("from=2026-11-01&to=2026-11-30&unit=LZ-NOPE", "no unit 'LZ-NOPE'"),
        ("from=2026-11-01", "to is required"),
        ("from=2026-11-01&to=30.11.2026", "not a date"),
        ("from=2026-11-01&to=2026-11-30&format=pdf", "json or xlsx"),
    ],
)
async def test_period_api_refuses_bad_input_with_400(
    api: TestClient[web.Request, web.Application], query: str, message: str
) -> None:
    """A range backwards, over a year, in the future or of an unknown unit: 400 bad_report."""
    response = await api.get(f"/api/reports/period?{query}", headers=_auth())
    body = await response.json()
    assert response.status == 400 and body["error"] == "bad_report", body
    assert message in body["message"]


async def test_period_api_gives_rates_and_the_excel_file(
    api: TestClient[web.Request, web.Application],
) -> None:
    """The rates as JSON, the same as an .xlsx download; the board with its reasons."""
    query = "from=2026-11-27&to=2026-11-30&unit=LZ-DC"
    response = await api.get(f"/api/reports/period?{query}", headers=_auth())
    assert response.status == 200
    body = await response.json()
    assert body["unit"] == "LZ-DC" and body["by_unit"]
    assert 0 < body["total"]["satisfaction"] <= 1 and 0 < body["hotline"]["answer_rate"] < 1
    response = await api.get(f"/api/reports/period?{query}&format=xlsx", headers=_auth())
    assert response.status == 200 and (await response.read())[:2] == b"PK"
    assert "attachment" in response.headers["Content-Disposition"]
    response = await api.get("/api/reports/board?date=2026-11-30", headers=_auth())
    board = await response.json()
    assert response.status == 200 and all(u["reasons"] for u in board["units"])
    response = await api.get("/api/reports/board?date=2026-12-30", headers=_auth())
    assert response.status == 400 and "future" in (await response.json())["message"]
    assert (await api.get("/api/reports/board")).status == 401


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKEN}"}


async def test_pages_refuse_outside_scope_and_bad_days(opened: Store, clock: ManualClock) -> None:
    """The agenda page refuses a unit outside the viewer's scope; the daily page a future day."""
    section = _config(Path("unused")).reports
    reads = opened.reads
    assert reads is not None
    units = {u.code: u.id for u in await ReportQueries(reads).units()}
    with pytest.raises(OutOfScope):
        await agenda_page(
            reads, clock, section, "LZ-DC", "2026-12-01", {}, frozenset({units["LZ-DC-01"]})
        )
    page = await agenda_page(reads, clock, section, "LZ-DC", "2026-12-01", {}, None)
    assert "东城分局调度会议程" in page
    with pytest.raises(ReportRefused, match="in the future"):
        await daily_page(reads, clock, section, "2026-12-02", {})
    assert "民生警务周报 · 2026-W48" in await weekly_page(reads, clock, section, "2026-W48", {})
