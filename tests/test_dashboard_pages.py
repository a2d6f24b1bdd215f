"""The dashboard's pages: the day picker, the charts (server-side SVG), a case's timeline and
its recordings served only from inside the recordings folder, each filtered by the viewer's
units."""

from __future__ import annotations

import os
import re
import struct
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import config as config_module
from gateway.clock import ManualClock
from gateway.store import Store
from gateway.store.seed import demo_city, load_seed
from gateway.store.sms import NewText
from gateway.web.app import create_web_app
from gateway.web.dashboard import add_dashboard
from gateway.web.pages.cases import recording_file
from gateway.web.pages.routes import add_pages
from gateway.web.pages.svg import (
    Bar,
    Point,
    Series,
    Stack,
    bar_chart,
    line_chart,
    nice_top,
    stacked_bars,
)
from gateway.web.pages.view import MAX_DAYS_BACK
from gateway.web.scope import SCOPE, Scope
from tests.test_dashboard_store import record

TOKEN = "pages-token-81c2"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def wav(seconds: float = 1.0) -> bytes:
    """A real 8 kHz 16-bit mono WAV file of ``seconds`` of quiet."""
    samples = int(8000 * seconds)
    data = b"\x00\x00" * samples
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    return header + b"data" + struct.pack("<I", len(data)) + data


def _scoped(unit_ids: frozenset[int] | None) -> web.middleware:  # type: ignore[valid-type]
    """Gives every request a chosen scope, as the accounts' sign-in does."""

    @web.middleware
    async def middleware(request: web.Request, handler: object) -> web.StreamResponse:
        if unit_ids is not None:
            request[SCOPE] = Scope("chief", "chief", unit_ids, hotline=False)
        return await handler(request)  # type: ignore[operator,no-any-return]

    return middleware


class Site:
    def __init__(self, store: Store, clock: ManualClock, data_dir: Path) -> None:
        self.store, self.clock, self.data_dir = store, clock, data_dir
        self.messages = data_dir / "messages"

    def app(
        self, unit_ids: frozenset[int] | None = None, monitor: Path | None = None
    ) -> web.Application:
        env = {"GATEWAY_WEB_API_TOKEN": TOKEN}
        if monitor is not None:
            env["GATEWAY_PBX_MAIN_MONITOR_DIR"] = str(monitor)
        config = config_module.load(env=env, overrides=[f"gateway.data_dir={self.data_dir}"])
        app = create_web_app(
            config, clock=self.clock, store=self.store, features=[add_dashboard, add_pages]
        )
        app.middlewares.append(_scoped(unit_ids))
        return app


@pytest.fixture
async def site(store: Store, clock: ManualClock, tmp_path: Path) -> Site:
    """The demo city's units over the test store, and a data folder with a recordings folder."""
    await load_seed(store.units, demo_city(), "demo-city.toml")
    (tmp_path / "data" / "messages").mkdir(parents=True)
    return Site(store, clock, tmp_path / "data")


@pytest.fixture
async def http(site: Site) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A client of the leaders' view (all units)."""
    async with TestClient(TestServer(site.app())) as client:
        yield client


async def _unit_id(store: Store, code: str) -> int:
    unit = await store.units.unit_by_code(code)
    assert unit is not None
    return unit.id


# -- the SVG renderer --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "top"),
    [(0, 4), (1, 4), (4, 4), (7, 8), (12, 20), (24, 40), (96, 100), (101, 200), (0.5, 4)],
)
def test_nice_top_gives_four_whole_round_steps(value: float, top: float) -> None:
    """A scale's top is four steps of 1, 2 or 5 times a power of ten (25 from 25 up): every
    tick is a whole number."""
    assert nice_top(value) == top


def test_bar_chart_draws_one_bar_per_item_to_scale_and_escapes_labels() -> None:
    """Bars are as high as their values on a 0..top scale; labels are escaped; no script."""
    svg = bar_chart([Bar("<b>", 10), Bar("b", 5), Bar("c", 0)], title="来电 <x>", unit="通")
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert heights[0] == pytest.approx(2 * heights[1]) and heights[2] == 0
    assert re.findall(r'data-value="([\d.]+)"', svg) == ["10", "5", "0"]
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "来电 &lt;x&gt;" in svg
    assert "<script" not in svg and svg.startswith("<svg ")


def test_empty_charts_say_so() -> None:
    """A chart with nothing to draw says 暂无数据 instead of a blank scale."""
    assert "暂无数据" in bar_chart([Bar("a", 0)], title="t")
    assert "暂无数据" in line_chart([Point("a", None)], title="t", percent=True)
    assert "暂无数据" in stacked_bars([], [Series("a", "A", "#000")], title="t")


def test_line_chart_breaks_at_days_without_a_value() -> None:
    """A day with no rating leaves a gap: two runs of the line, a dot per valued day."""
    svg = line_chart(
        [Point("1", 0.9), Point("2", 0.95), Point("3", None), Point("4", 1.0), Point("5", 0.8)],
        title="满意率",
        percent=True,
    )
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 4
    assert 'data-value="95.0%"' in svg and "100%" in svg


def test_stacked_bars_split_each_unit_by_series_with_a_legend() -> None:
    """Each unit's bar is split by category in order; only categories used are in the legend."""
    series = [Series("a", "投诉", "#f00"), Series("b", "咨询", "#0f0"), Series("c", "求助", "#00f")]
    stacks = [Stack("一所", {"a": 2, "b": 1}), Stack("二所", {"b": 4})]
    svg = stacked_bars(stacks, series, title="t")
    parts = re.findall(r'data-label="([^"]+)" data-series="(\w)" data-value="(\d+)"', svg)
    assert parts == [("一所", "a", "2"), ("一所", "b", "1"), ("二所", "b", "4")]
    assert "投诉" in svg and "咨询" in svg and "求助" not in svg


# -- the day and the charts --------------------------------------------------------


async def _rate(store: Store, unit: str, reference: str, score: int, when_days_ago: int) -> None:
    unit_id = await _unit_id(store, unit)
    now = store.clock.now()
    item = await store.callbacks.add_item(
        reference=reference,
        kind_code="minor_injury_case",
        unit_id=unit_id,
        officer_code=None,
        citizen_number="+8613912345678",
        citizen_name=None,
        served_at=now - timedelta(days=4),
        due_at=now,
    )
    clock = store.clock
    assert isinstance(clock, ManualClock)
    clock.advance(-timedelta(days=when_days_ago))
    try:
        await store.callbacks.add_rating(
            item_id=item.id, round_=1, attempt_id=None, channel="phone", score=score
        )
    finally:
        clock.advance(timedelta(days=when_days_ago))


async def test_charts_show_the_chosen_day_and_filter_by_unit(
    site: Site, clock: ManualClock
) -> None:
    """Satisfaction by day, calls by hour and categories by unit match the store; a chief's
    charts hold only his units and no hotline figures."""
    store = site.store
    now = clock.now()  # 10:00 in Shanghai
    await store.calls.upsert(
        [
            record("c.1", now, queue="hotline", agent="Local/8001"),
            record("c.2", now + timedelta(minutes=5), disposition="ABANDONED"),
            record("c.3", now - timedelta(hours=1)),
            record("c.4", now - timedelta(days=1)),
        ]
    )
    await _rate(store, "LZ-DC-01", "S-1", 1, 0)
    await _rate(store, "LZ-DC-01", "S-2", 3, 0)
    await _rate(store, "LZ-DC-02", "S-3", 1, 2)
    await store.cases.open_case(
        channel="web", category="complaint", actor="t", owner_unit="LZ-DC-01"
    )
    await store.cases.open_case(channel="web", category="help", actor="t", owner_unit="LZ-DC-02")
    await store.cases.open_case(channel="web", category="help", actor="t")
    async with TestClient(TestServer(site.app())) as leader:
        data = await (await leader.get("/dashboard/charts.json", headers=AUTH)).json()
        assert data["day"] == "2026-11-30"
        days = {d["day"]: d for d in data["satisfaction_by_day"]}
        assert len(days) == 14 and days["2026-11-30"]["rate"] == 0.5
        assert days["2026-11-28"]["rate"] == 1.0 and days["2026-11-29"]["rate"] is None
        hours = {h["hour"]: (h["total"], h["abandoned"]) for h in data["calls_by_hour"]}
        assert hours[10] == (2, 1) and hours[9] == (1, 0) and sum(t for t, _ in hours.values()) == 3
        units = {u["unit"]: u["counts"] for u in data["categories_by_unit"]}
        assert units == {None: {"help": 1}, "LZ-DC-01": {"complaint": 1}, "LZ-DC-02": {"help": 1}}
        yesterday = await (
            await leader.get("/dashboard/charts.json?day=2026-11-29", headers=AUTH)
        ).json()
        assert sum(h["total"] for h in yesterday["calls_by_hour"]) == 1
        page = await (await leader.get("/dashboard?day=2026-11-30", headers=AUTH)).text()
        assert page.count('<svg xmlns="http://www.w3.org/2000/svg"') == 3
        assert 'name="day" type="date" value="2026-11-30"' in page
    chief_units = frozenset({await _unit_id(store, "LZ-DC-02")})
    async with TestClient(TestServer(site.app(chief_units))) as chief:
        data = await (await chief.get("/dashboard/charts.json", headers=AUTH)).json()
        days = {d["day"]: d for d in data["satisfaction_by_day"]}
        assert days["2026-11-30"]["rate"] is None and days["2026-11-28"]["rate"] == 1.0
        assert data["calls_by_hour"] is None
        assert [u["unit"] for u in data["categories_by_unit"]] == ["LZ-DC-02"]
        page = await (await chief.get("/dashboard", headers=AUTH)).text()
        assert 'id="chart-calls"' not in page and 'id="chart-categories"' in page


async def test_without_data_today_the_latest_day_is_shown(site: Site, clock: ManualClock) -> None:
    """The day after the demo, the page still opens on the demo's day, and says so."""
    await site.store.calls.upsert([record("d.1", clock.now())])
    clock.advance(timedelta(days=2))
    async with TestClient(TestServer(site.app())) as leader:
        data = await (await leader.get("/dashboard/charts.json", headers=AUTH)).json()
        assert data["day"] == "2026-11-30"
        page = await (await leader.get("/dashboard", headers=AUTH)).text()
        assert 'value="2026-11-30"' in page and "今日（2026-12-02）暂无数据" in page
        figures = await (await leader.get("/dashboard/data.json", headers=AUTH)).json()
        assert figures["day"] == "2026-11-30" and figures["hotline"]["total"] == 1


@pytest.mark.parametrize(
    ("day", "says"),
    [
        ("2026-13-01", "not a date on the calendar"),
        ("30/11/2026", "YYYY-MM-DD"),
        ("2026-12-01", "in the future"),
        ("2020-01-01", f"more than {MAX_DAYS_BACK} days back"),
    ],
)
async def test_a_bad_day_is_one_clear_line(
    http: TestClient[web.Request, web.Application], day: str, says: str
) -> None:
    """A malformed, impossible, future or too-old day is a 400 naming the mistake, on the page
    and in the JSON; never a 500."""
    for data in ("/dashboard/charts.json", "/dashboard/data.json", "/dashboard/board.json"):
        response = await http.get(f"{data}?day={day}", headers=AUTH)
        assert response.status == 400 and says in (await response.json())["message"]
    for path in ("/dashboard", "/dashboard/board", "/dashboard/units/LZ-DC-01"):
        page = await http.get(f"{path}?day={day}", headers=AUTH)
        text = await page.text()
        assert page.status == 400 and says in text and "查询条件有误" in text


# -- a case's timeline and its recordings ------------------------------------------


async def _case_with_everything(site: Site) -> tuple[str, int]:
    """A hotline case of LZ-DC-01 with its voice message, its call (recorded), a callback
    rated dissatisfied with a recorded reason, its order and texts; (number, call id)."""
    store = site.store
    day_folder = site.messages / "2026" / "11" / "30"
    day_folder.mkdir(parents=True)
    (day_folder / "1.7-message-1.wav").write_bytes(wav(2.0))
    (day_folder / "9.7-reason-1.wav").write_bytes(wav(1.0))
    case = await store.cases.open_case(
        channel="hotline",
        category="complaint",
        actor="ivr",
        citizen_number="+8613912345678",
        subject="热线留言",
        content="语音留言",
        recording=str(day_folder / "1.7-message-1"),
        owner_unit="LZ-DC-01",
        call_pbx="main",
        call_linkedid="1.7",
    )
    await store.calls.upsert(
        [
            record(
                "1.7",
                site.clock.now(),
                recording=str(day_folder / "1.7-message-1"),
                case_id=case.id,
            )
        ]
    )
    item = await store.callbacks.add_item(
        reference=case.number,
        kind_code="minor_injury_case",
        unit_id=await _unit_id(store, "LZ-DC-01"),
        officer_code=None,
        citizen_number="+8613912345678",
        citizen_name=None,
        served_at=site.clock.now(),
        due_at=site.clock.now(),
    )
    rating, _ = await store.callbacks.add_rating(
        item_id=item.id, round_=1, attempt_id=None, channel="phone", score=3
    )
    await store.callbacks.set_rating_reason(
        item.id, 1, "slow", recording=str(day_folder / "9.7-reason-1")
    )
    order, _ = await store.callbacks.create_order(
        item_id=item.id,
        rating_id=rating.id,
        level=1,
        deadline_at=site.clock.now() + timedelta(hours=72),
    )
    for key, to, purpose in (
        (f"rating:{item.id}:round:1", "+8613912345678", "rating_request"),
        (f"order:{order.id}:level:1:J00010", "+8613900000010", "rectification_order"),
        ("rating:999:round:1", "+8613700000000", "rating_request"),  # another citizen's
    ):
        await store.sms.insert_or_get(_text(key, to, purpose, site.clock.now()))
    calls = await store.calls.find()
    return case.number, calls[0].id


def _text(key: str, to: str, purpose: str, when: datetime) -> NewText:
    audience = "officer" if purpose == "rectification_order" else "citizen"
    return NewText(
        purpose=purpose,
        audience=audience,
        to=to,
        sender="+8610690000001",
        template=purpose,
        variables={},
        body=f"【鲁州公安】{purpose}",
        encoding="UCS-2",
        segments=1,
        idempotency_key=key,
        next_attempt_at=when,
    )


async def test_case_page_shows_the_whole_timeline_with_players(
    site: Site, http: TestClient[web.Request, web.Application]
) -> None:
    """The case page lists its history, call, callback, rating and order in time order, with
    an audio player for the voice message, the call and the rating's reason."""
    number, call_id = await _case_with_everything(site)
    data = await (await http.get(f"/dashboard/cases/{number}/timeline.json", headers=AUTH)).json()
    kinds = [e["kind"] for e in data["timeline"]]
    assert {"history", "call", "item", "rating", "order"} <= set(kinds)
    texts = sorted(e["title"] for e in data["timeline"] if e["kind"] == "text")
    assert texts == ["短信（整改通知）发给民警：待发送", "短信（评价请求）发给群众：待发送"]
    assert re.fullmatch(r"/dashboard/recordings/case/\d+", data["case"]["recording"])
    rating = next(e for e in data["timeline"] if e["kind"] == "rating")
    assert rating["title"] == "群众评价：不满意" and "办事拖拉" in rating["detail"]
    call = next(e for e in data["timeline"] if e["kind"] == "call")
    assert call["recording"] == f"/dashboard/recordings/call/{call_id}"
    assert call["detail"].endswith("交换机 main")  # the PBX that carried it
    stamps = [e["at"] for e in data["timeline"]]
    assert stamps == sorted(stamps)
    page = await (await http.get(f"/dashboard/cases/{number}", headers=AUTH)).text()
    assert page.count("<audio controls") == 3 and "整改工单 ZG" in page
    for url in re.findall(r'<audio controls preload="metadata" src="([^"]+)"', page):
        audio = await http.get(url, headers=AUTH)
        body = await audio.read()
        assert audio.status == 200 and audio.content_type == "audio/wav"
        assert body[:4] == b"RIFF" and body[8:12] == b"WAVE"
    ranged = await http.get(call["recording"], headers={**AUTH, "Range": "bytes=0-99"})
    assert ranged.status == 206 and len(await ranged.read()) == 100
    garbled = await http.get(call["recording"], headers={**AUTH, "Range": "bytes=x-y"})
    assert garbled.status in (200, 416)


async def test_a_chief_cannot_reach_another_stations_case_or_recording(
    site: Site, http: TestClient[web.Request, web.Application]
) -> None:
    """To a chief of another station the case, its timeline and its recordings are simply not
    found, by page and by JSON, as a case that does not exist."""
    number, call_id = await _case_with_everything(site)
    other = frozenset({await _unit_id(site.store, "LZ-DC-02")})
    own = frozenset({await _unit_id(site.store, "LZ-DC-01")})
    async with TestClient(TestServer(site.app(other))) as chief:
        page = await chief.get(f"/dashboard/cases/{number}", headers=AUTH)
        assert page.status == 404 and "无权查看" in await page.text()
        data = await chief.get(f"/dashboard/cases/{number}/timeline.json", headers=AUTH)
        assert data.status == 404 and (await data.json())["error"] == "no_such_case"
        for kind, row_id in (("case", 1), ("call", call_id), ("rating", 1)):
            audio = await chief.get(f"/dashboard/recordings/{kind}/{row_id}", headers=AUTH)
            assert audio.status == 404
    async with TestClient(TestServer(site.app(own))) as chief:
        assert (await chief.get(f"/dashboard/cases/{number}", headers=AUTH)).status == 200
        audio = await chief.get(f"/dashboard/recordings/call/{call_id}", headers=AUTH)
        assert audio.status == 200


async def test_recordings_outside_the_folder_are_not_served(
    site: Site, http: TestClient[web.Request, web.Application], tmp_path: Path
) -> None:
    """A stored path outside the recordings folder, with '..' into it and out, or a symbolic link
    inside it leading out, is a 404; a link that stays inside is served."""
    secret = tmp_path / "secret.wav"
    secret.write_bytes(wav(0.5))
    (site.messages / "escape.wav").symlink_to(secret)
    (site.messages / "inside.wav").write_bytes(wav(0.5))
    (site.messages / "alias.wav").symlink_to(site.messages / "inside.wav")
    stored = {
        "outside": str(secret.with_suffix("")),
        "dotdot": str(site.messages / ".." / ".." / "secret"),
        "link-out": str(site.messages / "escape"),
        "link-in": str(site.messages / "alias"),
        "relative-out": "../../secret",
        "missing": str(site.messages / "nothing"),
    }
    served = {}
    for name, path in stored.items():
        case = await site.store.cases.open_case(
            channel="hotline", category="help", actor="t", recording=path
        )
        response = await http.get(f"/dashboard/recordings/case/{case.id}", headers=AUTH)
        served[name] = response.status
    assert served == {
        "outside": 404,
        "dotdot": 404,
        "link-out": 404,
        "link-in": 200,
        "relative-out": 404,
        "missing": 404,
    }
    assert recording_file(site.messages, str(site.messages / "inside")) is not None
    unknown = await http.get("/dashboard/recordings/passwd/1", headers=AUTH)
    huge = await http.get(f"/dashboard/recordings/case/{2**70}", headers=AUTH)
    assert unknown.status == 404 and huge.status == 404


async def test_case_pages_need_a_login(http: TestClient[web.Request, web.Application]) -> None:
    """Without a session the case page and a recording go to /login; the JSON answers 401."""
    page = await http.get("/dashboard/cases/TS20261130-0001", allow_redirects=False)
    assert page.status == 302 and page.headers["Location"] == "/login"
    data = await http.get("/dashboard/cases/TS20261130-0001/timeline.json")
    audio = await http.get("/dashboard/recordings/case/1", allow_redirects=False)
    assert data.status == 401 and audio.status == 302
    missing = await http.get("/dashboard/cases/nonsense", headers=AUTH)
    assert missing.status == 404


def test_recording_file_needs_the_folder_to_exist(tmp_path: Path) -> None:
    """With no recordings folder nothing is served (not even a path that exists elsewhere)."""
    target = tmp_path / "a.wav"
    target.write_bytes(wav(0.1))
    assert recording_file(tmp_path / "absent", str(target.with_suffix(""))) is None
    assert os.path.exists(target)


# -- the board, a unit, the reports ------------------------------------------------


async def test_board_shows_colours_with_reasons_and_a_red_unit_opens(
    site: Site, http: TestClient[web.Request, web.Application]
) -> None:
    """A unit rated badly is red with its reasons in words; its page shows them and its case;
    a chief of another station neither sees it on the board nor opens it."""
    store = site.store
    for n in range(4):
        await _rate(store, "LZ-DC-01", f"B-{n}", 3 if n else 1, 0)
    await _rate(store, "LZ-DC-02", "B-9", 1, 0)
    case = await store.cases.open_case(
        channel="web", category="complaint", actor="t", subject="噪音扰民", owner_unit="LZ-DC-01"
    )
    board = await (await http.get("/dashboard/board.json", headers=AUTH)).json()
    units = {u["unit"]: u for u in board["units"]}
    red = units["LZ-DC-01"]
    assert red["colour"] == "red" and red["satisfaction_pct"] == 25.0
    assert any("满意率 25.0%" in r for r in red["reasons"])
    assert units["LZ-DC-02"]["colour"] == "green"
    page = await (await http.get("/dashboard/board", headers=AUTH)).text()
    assert '<tr data-unit="LZ-DC-01" data-colour="red">' in page and "满意率 25.0%" in page
    unit = await http.get("/dashboard/units/LZ-DC-01", headers=AUTH)
    text = await unit.text()
    assert unit.status == 200 and 'id="unit-colour">红' in text
    assert f'href="/dashboard/cases/{case.number}"' in text and "噪音扰民" in text
    chief_units = frozenset({await _unit_id(store, "LZ-DC-02")})
    async with TestClient(TestServer(site.app(chief_units))) as chief:
        board = await (await chief.get("/dashboard/board.json", headers=AUTH)).json()
        assert [u["unit"] for u in board["units"]] == ["LZ-DC-02"]
        assert (await chief.get("/dashboard/units/LZ-DC-01", headers=AUTH)).status == 404
        data = await chief.get("/dashboard/units/LZ-DC-01/data.json", headers=AUTH)
        assert data.status == 404
        assert (await chief.get("/dashboard/units/LZ-DC-02", headers=AUTH)).status == 200
        assert (await chief.get("/dashboard/wall", headers=AUTH)).status == 404  # no hotline
        assert (await chief.get("/dashboard/wall.json", headers=AUTH)).status == 404
    assert (await http.get("/dashboard/units/NO-SUCH", headers=AUTH)).status == 404


async def test_report_pages_for_the_city_and_for_a_meeting(
    site: Site, http: TestClient[web.Request, web.Application]
) -> None:
    """The daily log of a past day (and of today so far), the weekly report and an agenda open
    as pages with a strict policy; a day to come is a 400 saying so; a chief opens none of the
    city's reports nor another unit's agenda."""
    await _rate(site.store, "LZ-DC-01", "R-1", 3, 1)
    daily = await http.get("/reports/daily/2026-11-29", headers=AUTH)
    text = await daily.text()
    assert daily.status == 200 and "民生诉求日志" in text
    assert "style-src 'sha256-" in daily.headers["Content-Security-Policy"]
    latest = await http.get("/reports/daily", headers=AUTH, allow_redirects=False)
    assert latest.headers["Location"] == "/reports/daily/2026-11-29"
    weekly = await http.get("/reports/weekly/2026-W47", headers=AUTH)
    assert weekly.status == 200 and "民生警务周报" in await weekly.text()
    today = await http.get("/reports/daily/2026-11-30", headers=AUTH)
    assert today.status == 200 and "民生诉求日志" in await today.text()  # the day so far
    tomorrow = await http.get("/reports/daily/2026-12-01", headers=AUTH)
    assert tomorrow.status == 400 and "报告参数有误" in await tomorrow.text()
    bad = await http.get("/reports/daily/yesterday", headers=AUTH)
    assert bad.status == 400 and "报告参数有误" in await bad.text()
    agenda = await http.get("/reports/agenda/2026-12-01/LZ-DC", headers=AUTH)
    assert agenda.status == 200 and "调度会议程" in await agenda.text()
    monday = await http.get("/reports/agenda/2026-11-30/LZ-DC", headers=AUTH)
    assert monday.status == 400
    listing = await (await http.get("/reports/agenda", headers=AUTH)).text()
    assert "/reports/agenda/2026-12-01/LZ-DC" in listing
    chief_units = frozenset({await _unit_id(site.store, "LZ-DC-02")})
    async with TestClient(TestServer(site.app(chief_units))) as chief:
        assert (await chief.get("/reports/daily/2026-11-29", headers=AUTH)).status == 404
        assert (await chief.get("/reports/weekly/2026-W47", headers=AUTH)).status == 404
        other = await chief.get("/reports/agenda/2026-12-01/LZ-XC", headers=AUTH)
        assert other.status == 404
        assert "LZ-XC" not in await (await chief.get("/reports/agenda", headers=AUTH)).text()


async def test_call_recordings_come_from_their_pbxs_monitor_folder(
    site: Site, tmp_path: Path
) -> None:
    """A call's MixMonitor recording (a name relative to the PBX's monitor folder) plays from
    ``pbx.monitor_dir``; without that setting, or through a link out of it, it is a 404."""
    monitor = tmp_path / "monitor"
    (monitor / "hotline" / "2026" / "11" / "30").mkdir(parents=True)
    (monitor / "hotline" / "2026" / "11" / "30" / "5.1.wav").write_bytes(wav(1.0))
    (tmp_path / "elsewhere.wav").write_bytes(wav(1.0))
    (monitor / "hotline" / "out.wav").symlink_to(tmp_path / "elsewhere.wav")
    now = site.clock.now()
    await site.store.calls.upsert(
        [
            record("5.1", now, recording="hotline/2026/11/30/5.1.wav"),
            record("5.2", now, recording="hotline/out.wav"),
        ]
    )
    ids = {c.record.linkedid: c.id for c in await site.store.calls.find()}
    async with TestClient(TestServer(site.app(monitor=monitor))) as http:
        played = await http.get(f"/dashboard/recordings/call/{ids['5.1']}", headers=AUTH)
        assert played.status == 200 and (await played.read())[:4] == b"RIFF"
        linked = await http.get(f"/dashboard/recordings/call/{ids['5.2']}", headers=AUTH)
        assert linked.status == 404
    async with TestClient(TestServer(site.app())) as http:
        unset = await http.get(f"/dashboard/recordings/call/{ids['5.1']}", headers=AUTH)
        assert unset.status == 404


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
