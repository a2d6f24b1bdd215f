"""The leaders' reports: three colours with reasons, the daily log's figures against the
raw rows, the agenda, the six rates by unit and kind, the PDF's embedded font, the Excel
file, and every refusal of a day, week, range or unit."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway import config as config_module
from gateway.config import ConfigError
from gateway.reports.agenda import Agenda, agenda_document, build_agenda, meeting_unit
from gateway.reports.board import (
    DEFAULT_THRESHOLDS,
    UnitColour,
    UnitFigures,
    colour_of,
    unit_board,
)
from gateway.reports.document import Document, Part, Table, render_html
from gateway.reports.errors import FontMissing, ReportRefused
from gateway.reports.logs import ActivityLog, build_log, log_document, render_daily_html
from gateway.reports.making import catalogue_names
from gateway.reports.pdf import find_font, render_pdf
from gateway.reports.period import PeriodReport, build_period, period_xlsx
from gateway.reports.periods import (
    agenda_day,
    daily_span,
    parse_day,
    parse_week,
    range_span,
    weekly_span,
)
from gateway.store.fake import FakePlan, build_fake_store
from gateway.store.reader import ReadConnection
from tests.test_query_plans import scans_of_big_tables

TZ = ZoneInfo("Asia/Shanghai")
# The fake store's traffic ends at 2026-12-01 00:00 UTC; "now" is 10:00 local that day.
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
TODAY = date(2026, 12, 1)
DAY = date(2026, 11, 29)


@pytest.fixture(scope="module")
def fake_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four days of the bureau's traffic at a tenth of its volume."""
    path = tmp_path_factory.mktemp("reports") / "gateway.sqlite3"
    asyncio.run(build_fake_store(path, FakePlan(days=4, end=TODAY, volume=0.1)))
    return path


@pytest.fixture(scope="module")
def raw(fake_store: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection for independent counts."""
    conn = sqlite3.connect(fake_store)
    yield conn
    conn.close()


def _local_day(day: date) -> tuple[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=TZ).astimezone(UTC)
    end = start + timedelta(days=1)
    return start.strftime("%Y-%m-%dT%H:%M:%S"), end.strftime("%Y-%m-%dT%H:%M:%S")


# -- the colour rule -------------------------------------------------------------


def test_red_for_low_satisfaction_names_the_rate_and_the_line() -> None:
    """Satisfaction under the red line is red, in words: 满意率 89.2%，低于 90%."""
    figures = UnitFigures(satisfied=800, basically=92, dissatisfied=108, overdue_orders=2)
    colour, reasons = colour_of(figures, DEFAULT_THRESHOLDS)
    assert colour == "red"
    assert reasons[0] == "满意率 89.2%，低于 90%"
    assert "超期工单 2 件" in reasons


def test_yellow_between_the_lines_and_for_one_overdue_case() -> None:
    """Between red and green satisfaction is yellow; one overdue case alone is yellow."""
    colour, reasons = colour_of(UnitFigures(satisfied=93, dissatisfied=7), DEFAULT_THRESHOLDS)
    assert (colour, reasons) == ("yellow", ["满意率 93.0%，低于 95%", "不满意 7 件"])
    colour, reasons = colour_of(UnitFigures(satisfied=100, overdue_cases=1), DEFAULT_THRESHOLDS)
    assert (colour, reasons) == ("yellow", ["超期诉求 1 件"])


def test_green_has_a_reason_too() -> None:
    """A green unit says why it is green; one nobody rated says so."""
    assert colour_of(
        UnitFigures(satisfied=97, basically=2, dissatisfied=1), DEFAULT_THRESHOLDS
    ) == (
        "green",
        ["满意率 99.0%，不低于 95%；无超期工单和诉求"],
    )
    colour, reasons = colour_of(UnitFigures(), DEFAULT_THRESHOLDS)
    assert colour == "green" and reasons == ["近30天无回访评价，无超期工单和诉求"]


def test_count_lines_are_configurable_and_zero_turns_them_off() -> None:
    """Overdue orders at the red line are red; with the rule at 0 they do not count."""
    figures = UnitFigures(satisfied=100, overdue_orders=3)
    assert colour_of(figures, DEFAULT_THRESHOLDS)[0] == "red"
    off = replace(DEFAULT_THRESHOLDS, red_overdue_orders=0, yellow_overdue_orders=0)
    assert colour_of(figures, off)[0] == "green"


def test_reports_configuration_is_checked() -> None:
    """A bad time, weekday or a red line above the green one stops the start in one line."""
    with pytest.raises(ConfigError, match=r"reports\.daily_at"):
        config_module.load(overrides=["reports.daily_at=7:3"])
    with pytest.raises(ConfigError, match=r"reports\.meeting_weekdays"):
        config_module.load(overrides=["reports.meeting_weekdays=2,8"])
    with pytest.raises(ConfigError, match="red_satisfaction"):
        config_module.load(overrides=["reports.red_satisfaction=0.97"])
    config = config_module.load(overrides=["reports.window_days=7", "reports.leaders=J00001"])
    assert config.reports.window_days == 7 and config.reports.leaders == ("J00001",)


# -- refusals ---------------------------------------------------------------------


def test_days_weeks_and_ranges_are_refused_with_one_line() -> None:
    """The future, a backwards or over-long range, a bad week: each one clear line."""
    assert daily_span(TODAY, TODAY, TZ).key == "2026-12-01"  # today so far, on demand
    with pytest.raises(ReportRefused, match="in the future"):
        daily_span(TODAY + timedelta(days=3), TODAY, TZ)
    with pytest.raises(ReportRefused, match="before it starts"):
        range_span(date(2026, 11, 30), date(2026, 11, 1), TODAY, TZ)
    with pytest.raises(ReportRefused, match="at most 366"):
        range_span(date(2025, 1, 1), date(2026, 11, 1), TODAY, TZ)
    with pytest.raises(ReportRefused, match="future"):
        range_span(date(2026, 11, 1), date(2026, 12, 2), TODAY, TZ)
    with pytest.raises(ReportRefused, match="not a date"):
        parse_day("2026-13-01")
    with pytest.raises(ReportRefused, match="does not exist"):
        parse_week("2026-W60")
    with pytest.raises(ReportRefused, match="not over yet"):
        weekly_span(parse_week("2026-W49"), TODAY, TZ)
    assert parse_week("2026-W48") == parse_week("2026-11-26") == date(2026, 11, 23)
    assert range_span(date(2025, 12, 1), date(2026, 11, 30), TODAY, TZ).days == 365


def test_agenda_only_on_meeting_days_and_for_meeting_units(fake_store: Path) -> None:
    """Wednesday is no meeting day; an unknown unit or a station holds no meeting."""
    with pytest.raises(ReportRefused, match="Wednesday, not a meeting day"):
        agenda_day(date(2026, 12, 2), TODAY, (2, 4, 6))
    assert agenda_day(date(2026, 12, 3), TODAY, (2, 4, 6)) == date(2026, 12, 3)

    async def check() -> None:
        async with ReadConnection.open(fake_store) as reads:
            with pytest.raises(ReportRefused, match="no unit 'LZ-NOPE'"):
                await meeting_unit(reads, "LZ-NOPE")
            with pytest.raises(ReportRefused, match="station"):
                await meeting_unit(reads, "LZ-DC-01")

    asyncio.run(check())


# -- the board on a store -------------------------------------------------------------


def test_board_rolls_stations_up_and_keeps_to_the_scope(
    fake_store: Path, raw: sqlite3.Connection
) -> None:
    """A sub-bureau counts its stations' ratings; a station chief's scope sees his station only."""

    async def boards() -> tuple[list[UnitColour], list[UnitColour]]:
        async with ReadConnection.open(fake_store) as reads:
            everyone = await unit_board(reads, day=DAY, scope_units=None, now=NOW)
            station = next(u for u in everyone if u.unit_code == "LZ-DC-01")
            scope = frozenset({station.unit_id})
            own = await unit_board(reads, day=DAY, scope_units=scope, now=NOW)
            return everyone, own

    everyone, own = asyncio.run(boards())
    by_code = {u.unit_code: u for u in everyone}
    assert [u.unit_code for u in own] == ["LZ-DC-01"]
    since, _ = _local_day(DAY - timedelta(days=29))
    _, until = _local_day(DAY)
    counts = dict(
        raw.execute(
            "SELECT u.code, SUM(r.score = 3) FROM ratings r JOIN served_items i ON i.id = r.item_id"
            " JOIN units u ON u.id = i.unit_id WHERE r.round = 1 AND r.rated_at >= ?"
            " AND r.rated_at < ? GROUP BY u.code",
            (since, until),
        ).fetchall()
    )
    stations = [code for code in counts if code.startswith("LZ-DC-")]
    assert by_code["LZ-DC"].dissatisfied == sum(counts[c] for c in stations)
    for code, unit in by_code.items():
        assert unit.colour in ("red", "yellow", "green") and unit.reasons, code
        if code in counts:
            assert unit.dissatisfied >= counts[code]
    ranks = [("red", "yellow", "green").index(u.colour) for u in everyone]
    assert ranks == sorted(ranks)


# -- the daily log --------------------------------------------------------------------


def _build(fake_store: Path, day: date = DAY) -> ActivityLog:
    async def run() -> ActivityLog:
        async with ReadConnection.open(fake_store) as reads:
            return await build_log(
                reads,
                daily_span(day, TODAY, TZ),
                now=NOW,
                tz=TZ,
                thresholds=DEFAULT_THRESHOLDS,
                kind_names=catalogue_names(),
            )

    return asyncio.run(run())


def test_daily_log_counts_agree_with_the_raw_rows(
    fake_store: Path, raw: sqlite3.Connection
) -> None:
    """Hotline, cases, dissatisfied ratings and category shares equal independent counts."""
    log = _build(fake_store)
    start, end = _local_day(DAY)
    total, queued, answered, fast, abandoned = raw.execute(
        "SELECT COUNT(*), SUM(queue IS NOT NULL), SUM(queue IS NOT NULL AND agent IS NOT NULL),"
        " SUM(queue IS NOT NULL AND agent IS NOT NULL AND queue_wait_s <= 15),"
        " SUM(queue IS NOT NULL AND agent IS NULL) FROM call_records"
        " WHERE direction = 'inbound' AND started_at >= ? AND started_at < ?",
        (start, end),
    ).fetchone()
    assert total > 50
    h = log.hotline
    figures = (h.total, h.queued, h.answered, h.answered_15s, h.abandoned)
    assert figures == (total, queued, answered, fast, abandoned)
    cases = raw.execute(
        "SELECT COUNT(*) FROM cases WHERE created_at >= ? AND created_at < ?", (start, end)
    ).fetchone()[0]
    assert log.cases_new == cases == sum(sum(c.values()) for c in log.shares.values())
    dissatisfied = raw.execute(
        "SELECT COUNT(*) FROM ratings WHERE score = 3 AND rated_at >= ? AND rated_at < ?",
        (start, end),
    ).fetchone()[0]
    assert len(log.dissatisfied) == dissatisfied > 0
    assert all(d.reason for d in log.dissatisfied)
    assert log.scores.rated > 0


def test_daily_log_page_names_slow_cases_and_reasons(fake_store: Path) -> None:
    """The page lists each dissatisfied item's reason and each slow case's owner and chief."""
    log = _build(fake_store)
    page = render_daily_html(log)
    assert page.startswith("<!doctype html>") and "民生诉求日志 · 2026年11月29日" in page
    assert "四、不满意件" in page and "办理缓慢的诉求" in page
    reasons = ("服务态度差", "办事拖拉", "处理结果不公", "问题未解决", "其他原因")
    assert any(reason in page for reason in reasons)
    if log.slow:
        first = log.slow[0]
        assert first.number in page
        assert log.chief_of(first.owner_unit_id) in page
    assert "<script" not in page


def test_a_day_without_data_is_an_honest_empty_log(fake_store: Path) -> None:
    """A day before any traffic gives zeros and "无" lines, not an error."""
    log = _build(fake_store, date(2026, 10, 1))
    assert log.hotline.total == 0 and log.cases_new == 0 and not log.dissatisfied
    assert "本时段无不满意评价" in render_daily_html(log)


def test_html_escapes_what_it_shows() -> None:
    """A subject with markup is shown as text."""
    page = render_html(
        Document("标题", "副", [Part("一", tables=[Table(("事项",), [("<b>x</b>",)])])])
    )
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


def font_or_skip() -> Path:
    """The CJK font the PDFs embed; without one (scripts/test installs it as root) fail on
    CI, else skip."""
    try:
        return find_font()
    except FontMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the reports' PDFs cannot be tested on CI: {exc}")
        pytest.skip(str(exc))


def _streams(pdf: bytes) -> list[bytes]:
    found = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            found.append(zlib.decompress(match.group(1)))
        except zlib.error:
            found.append(match.group(1))
    return found


def test_pdf_embeds_the_chinese_font(fake_store: Path) -> None:
    """The PDF carries the CJK font's glyphs and maps them back to the Chinese text."""
    font = font_or_skip()
    document = log_document(_build(fake_store), "民生诉求日志")
    pdf = render_pdf(document, font)
    assert pdf.startswith(b"%PDF-")
    assert re.search(rb"/FontFile[23]? \d+ 0 R", pdf), "no embedded font program"
    assert b"/ToUnicode" in pdf
    cmaps = b"".join(s for s in _streams(pdf) if b"beginbfchar" in s or b"beginbfrange" in s)
    for char in "民生诉求日志满意率":
        assert f"<{ord(char):04X}>".encode() in cmaps, char


def test_a_missing_font_is_one_clear_line(tmp_path: Path) -> None:
    """A configured font that is not there is refused, naming it."""
    with pytest.raises(FontMissing, match=r"reports\.pdf_font"):
        find_font(str(tmp_path / "none.ttf"))


# -- the agenda ----------------------------------------------------------------------


def test_agenda_lists_the_subtrees_open_cases_with_history(
    fake_store: Path, raw: sqlite3.Connection
) -> None:
    """A sub-bureau's agenda holds every unresolved case of its stations, with history."""

    async def run() -> Agenda:
        async with ReadConnection.open(fake_store) as reads:
            unit = await meeting_unit(reads, "LZ-DC")
            return await build_agenda(
                reads, unit, date(2026, 12, 1), now=NOW, tz=TZ, kind_names=catalogue_names()
            )

    agenda = asyncio.run(run())
    expected = raw.execute(
        "SELECT COUNT(*) FROM cases c JOIN units u ON u.id = c.owner_unit_id"
        " WHERE u.code LIKE 'LZ-DC-%' AND c.status IN ('open', 'assigned', 'in_progress')"
        " AND c.merged_into IS NULL"
    ).fetchone()[0]
    assert len(agenda.cases) == expected > 0
    assert all(agenda.case_history[c.id] for c in agenda.cases)
    orders = raw.execute(
        "SELECT COUNT(*) FROM rectification_orders o JOIN served_items i ON i.id = o.item_id"
        " JOIN units u ON u.id = i.unit_id WHERE u.code LIKE 'LZ-DC-%'"
        " AND o.status IN ('open', 'reported')"
    ).fetchone()[0]
    assert len(agenda.orders) == orders
    page = render_html(agenda_document(agenda))
    assert "东城分局调度会议程" in page and "星期二" in page
    assert agenda.cases[0].number in page and "立案" in page


# -- period reports ---------------------------------------------------------------------


def _period(fake_store: Path, unit: str | None = None) -> PeriodReport:
    async def run() -> PeriodReport:
        async with ReadConnection.open(fake_store) as reads:
            return await build_period(
                reads,
                range_span(date(2026, 11, 27), date(2026, 11, 30), TODAY, TZ),
                now=NOW,
                unit_code=unit,
                kind_names=catalogue_names(),
            )

    return asyncio.run(run())


def test_period_rates_follow_their_definitions(fake_store: Path, raw: sqlite3.Connection) -> None:
    """回访率, 满意率 and 整改按期率 of each unit equal the README's definitions on raw rows."""
    report = _period(fake_store)
    start, _ = _local_day(date(2026, 11, 27))
    _, end = _local_day(date(2026, 11, 30))
    for row in report.by_unit:
        rated, settled = raw.execute(
            "SELECT SUM(i.status = 'rated'), COUNT(*) FROM served_items i JOIN units u"
            " ON u.id = i.unit_id WHERE u.code = ? AND i.status IN ('rated', 'unreachable')"
            " AND i.served_at >= ? AND i.served_at < ?",
            (row.key, start, end),
        ).fetchone()
        assert row.callback_rate == (rated / settled if settled else None), row.key
        good, all_ = raw.execute(
            "SELECT SUM(r.score IN (1, 2)), COUNT(*) FROM ratings r JOIN served_items i"
            " ON i.id = r.item_id JOIN units u ON u.id = i.unit_id WHERE u.code = ?"
            " AND r.round = 1 AND r.rated_at >= ? AND r.rated_at < ?",
            (row.key, start, end),
        ).fetchone()
        assert row.satisfaction == (good / all_ if all_ else None), row.key
        on_time, due = raw.execute(
            "SELECT SUM(o.level = 1 AND o.reported_at IS NOT NULL AND o.reported_at <="
            " o.deadline_at), COUNT(*) FROM rectification_orders o JOIN served_items i"
            " ON i.id = o.item_id JOIN units u ON u.id = i.unit_id WHERE u.code = ?"
            " AND o.created_at >= ? AND o.created_at < ? AND (o.reported_at IS NOT NULL"
            " OR o.deadline_at <= ? OR o.level > 1)",
            (row.key, start, end, "2026-12-01T02:00:00"),
        ).fetchone()
        assert (row.orders, row.orders_on_time) == (due, on_time or 0), row.key
    assert report.answer_rate is not None and 0 < report.answer_rate < 1
    total = report.total
    assert total.rated_items == sum(r.rated_items for r in report.by_unit)


def test_period_of_one_unit_counts_its_subtree_by_kind(fake_store: Path) -> None:
    """--unit LZ-DC keeps its stations' rows, and the kinds add up to the same items."""
    report = _period(fake_store, "LZ-DC")
    assert report.by_unit and all(r.key.startswith("LZ-DC") for r in report.by_unit)
    assert sum(r.rated_items for r in report.by_kind) == report.total.rated_items
    rated = sum(r.satisfied + r.basically + r.dissatisfied for r in report.by_kind)
    assert rated == sum(r.satisfied + r.basically + r.dissatisfied for r in report.by_unit)
    with pytest.raises(ReportRefused, match="no unit 'LZ-NOPE'"):
        _period(fake_store, "LZ-NOPE")


def test_excel_file_holds_the_rates_and_their_definitions(fake_store: Path) -> None:
    """The .xlsx has the summary, unit, kind and definition sheets with the figures."""
    report = _period(fake_store)
    data = period_xlsx(report)
    with zipfile.ZipFile(BytesIO(data)) as book:
        names = book.namelist()
        workbook = book.read("xl/workbook.xml").decode()
        strings = book.read("xl/sharedStrings.xml").decode()
        units_sheet = book.read("xl/worksheets/sheet2.xml").decode()
        styles = book.read("xl/styles.xml").decode()
    assert "xl/worksheets/sheet4.xml" in names
    for sheet in ("汇总", "按单位", "按业务", "口径说明"):
        assert f'name="{sheet}"' in workbook
    for word in ("接通率", "15秒接通率", "放弃率", "回访率", "满意率", "整改按期率", "东关派出所"):
        assert word in strings
    first = report.by_unit[0]
    assert f"<v>{first.rated_items}</v>" in units_sheet
    assert 'formatCode="0.0%"' in styles


def test_no_report_query_scans_a_big_table(fake_store: Path) -> None:
    """Every statement the board, the logs, the agenda and the period reports run searches
    an index (``EXPLAIN QUERY PLAN``), so their cost follows the period, not the store."""
    statements: list[str] = []

    async def run() -> None:
        async with ReadConnection.open(fake_store) as reads:
            await reads.trace(statements.append)
            await unit_board(reads, day=DAY, scope_units=None, now=NOW)
            for span in (
                daily_span(DAY, TODAY, TZ),
                weekly_span(parse_week("2026-W48"), TODAY, TZ),
            ):
                await build_log(
                    reads, span, now=NOW, tz=TZ, thresholds=DEFAULT_THRESHOLDS, kind_names={}
                )
            unit = await meeting_unit(reads, "LZ-DC")
            await build_agenda(reads, unit, TODAY, now=NOW, tz=TZ, kind_names={})
            whole = range_span(date(2026, 11, 1), date(2026, 11, 30), TODAY, TZ)
            for code in (None, "LZ-DC"):
                await build_period(reads, whole, now=NOW, unit_code=code, kind_names={})
            await reads.trace(None)

    asyncio.run(run())
    assert len(statements) > 20
    found = scans_of_big_tables(fake_store, statements)
    assert found == [], "\n".join(found)
