"""Making the reports: their files, the "made" marker and the leaders' texts; and the
once-a-day loop that makes them on time.

:class:`ReportMaker` makes one report: it reads the figures on the read connection,
writes the HTML page and the PDF into ``<data_dir>/<reports.folder>/<kind>/`` (each
file written aside and renamed, so a reader never sees half a file), then, in one
write transaction, records the report as made (``report_runs``) and queues the
leaders' texts through the outbox (idempotency key per report and leader). Killed
before that transaction, the report is made again, files overwritten; after it, it is
never repeated, and its texts are in the outbox. The command line and the loop both
go through here, so a report made on demand is not made (nor texted) again by the loop.

:class:`ReportSchedule` is a supervised loop that, every minute, makes what is due:
the daily log of yesterday from ``reports.daily_at`` on (and of the days before it
back to the last one made, at most :data:`CATCH_UP_DAYS`, texting only the newest);
the weekly report of the last week from ``reports.weekly_weekday`` at ``daily_at`` on
(late, not never, when the gateway was away that day); each sub-bureau's and county
bureau's agenda from ``reports.agenda_at`` on the evening before a meeting day (or on
the meeting day itself, until ``agenda_at``, when the evening was missed).
What it has made lives in the store, so a restart neither skips nor repeats.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, time, timedelta
from pathlib import Path

from gateway.callbacks.catalogue import load_catalogue
from gateway.clock import Clock
from gateway.config import Config
from gateway.phone import InvalidPhoneNumber, Use, mask, to_e164
from gateway.reports.agenda import MEETING_KINDS, agenda_document, build_agenda, meeting_unit
from gateway.reports.board import Thresholds
from gateway.reports.document import Document, render_html
from gateway.reports.logs import ActivityLog, build_log, headline, log_document
from gateway.reports.pdf import find_font, render_pdf
from gateway.reports.periods import Span, agenda_day, daily_span, week_key, weekly_span
from gateway.sms.service import SmsService, TextOrder
from gateway.store import Store
from gateway.store.figures import Reads
from gateway.store.reports import ReportQueries, ReportRuns
from gateway.supervise import Body, Supervisor

log = logging.getLogger(__name__)

CATCH_UP_DAYS = 7
TICK_SECONDS = 60.0
TEMPLATES = {"daily": "report_daily", "weekly": "report_weekly"}


@dataclass(frozen=True)
class Made:
    """One report made: its files, whether this call recorded it, the texts queued (a
    text already queued for the same report and leader is not queued again)."""

    kind: str
    key: str
    html: Path
    pdf: Path
    recorded: bool
    texts: int
    figures: Mapping[str, str]
    so_far: bool = False  # today's log on demand: not marked made, the morning's replaces it


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.part")
    aside.write_bytes(data)
    os.replace(aside, path)


class ReportMaker:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        config: Config,
        sms: SmsService | None,
        kind_names: Mapping[str, str],
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.section = config.reports
        self.sms = sms
        self.kind_names = dict(kind_names)
        self.thresholds = Thresholds.from_config(config.reports)
        self.runs = ReportRuns(store.db)
        folder = Path(self.section.folder)
        self.folder = folder if folder.is_absolute() else config.gateway.data_dir / folder

    @property
    def reads(self) -> Reads:
        return self.store.reads or self.store.db

    def today(self) -> date:
        return self.clock.local().date()

    def link(self, kind: str, key: str) -> str:
        return f"{self.config.web.public_url.rstrip('/')}/reports/{kind}/{key}"

    # -- the reports ------------------------------------------------------------

    async def build_log(self, span: Span) -> ActivityLog:
        return await build_log(
            self.reads,
            span,
            now=self.clock.now(),
            tz=self.clock.tz,
            thresholds=self.thresholds,
            kind_names=self.kind_names,
        )

    async def daily(self, day: date, *, made_by: str, text: bool = True) -> Made:
        """The daily log of ``day`` (a past day), its files, marker and texts.

        Today's log, asked for on demand, covers the day so far: its files are those the
        next morning's log replaces, it is not marked made (the morning makes the whole
        day's), and its texts are keyed apart (a leader gets one such text a day)."""
        span = daily_span(day, self.today(), self.clock.tz)
        activity = await self.build_log(span)
        title = f"民生诉求日志 · {span.label}"
        so_far = day >= self.today()
        if so_far:
            title += f"（截至 {self.clock.local():%H:%M}，当日未结束）"
        document = log_document(activity, title)
        variables = {"date": span.key, **headline(activity)}
        return await self._make(
            "daily", span.key, document, variables, made_by, text, record=not so_far
        )

    async def weekly(self, monday: date, *, made_by: str, text: bool = True) -> Made:
        """The weekly report of the ISO week beginning ``monday`` (a past week)."""
        span = weekly_span(monday, self.today(), self.clock.tz)
        activity = await self.build_log(span)
        document = log_document(activity, f"民生警务周报 · {span.key}（{span.label}）")
        variables = {"week": span.key, **headline(activity)}
        return await self._make("weekly", span.key, document, variables, made_by, text)

    async def agenda(self, unit_code: str, day: date, *, made_by: str) -> Made:
        """The agenda of ``unit_code``'s meeting on ``day`` (a meeting day)."""
        agenda_day(day, self.today(), self.section.meeting_weekdays)
        unit = await meeting_unit(self.reads, unit_code)
        agenda = await build_agenda(
            self.reads,
            unit,
            day,
            now=self.clock.now(),
            tz=self.clock.tz,
            kind_names=self.kind_names,
        )
        figures = {"open_cases": str(len(agenda.cases)), "orders": str(len(agenda.orders))}
        key = f"{day.isoformat()}/{unit.code}"
        return await self._make("agenda", key, agenda_document(agenda), figures, made_by, False)

    async def _make(
        self,
        kind: str,
        key: str,
        document: Document,
        variables: Mapping[str, str],
        made_by: str,
        text: bool,
        *,
        record: bool = True,
    ) -> Made:
        font = find_font(self.section.pdf_font)
        html = render_html(document).encode()
        pdf = await asyncio.to_thread(render_pdf, document, font)
        stem = self.folder / kind / key.replace("/", "-")
        html_path, pdf_path = stem.with_suffix(".html"), stem.with_suffix(".pdf")
        await asyncio.to_thread(_write, html_path, html)
        await asyncio.to_thread(_write, pdf_path, pdf)
        tag = kind if record else f"{kind}-so-far"
        wanted = text and kind in TEMPLATES
        orders = await self._texts(kind, tag, key, variables) if wanted else []
        async with self.store.db.transaction() as conn:
            recorded = record and await ReportRuns.record(
                conn, kind, key, at=self.clock.now(), made_by=made_by, texts=len(orders)
            )
            if (recorded or not record) and orders and self.sms is not None:
                await self.sms.enqueue_many(orders, conn=conn)
        texts = len(orders) if recorded or not record else 0
        if recorded or not record:
            log.info("report %s %s made (%s), %d text(s) queued", kind, key, made_by, texts)
        return Made(kind, key, html_path, pdf_path, recorded, texts, dict(variables), not record)

    async def _texts(
        self, kind: str, tag: str, key: str, variables: Mapping[str, str]
    ) -> list[TextOrder]:
        """One text per leader with a mobile that can take texts (others are logged)."""
        if self.sms is None:
            return []
        queries = ReportQueries(self.store.db)
        if self.section.leaders:
            found = await queries.officers_by_code(self.section.leaders)
            for code in self.section.leaders:
                if code not in found:
                    log.warning("reports.leaders: no officer %s on file: not texted", code)
            leaders = [(code, *found[code]) for code in self.section.leaders if code in found]
        else:
            leaders = await queries.leaders()
        orders = []
        for code, _name, mobile in leaders:
            if not mobile:
                log.warning("leader %s has no mobile on file: not texted the %s report", code, kind)
                continue
            try:
                number = to_e164(mobile, use=Use.TEXT)
            except InvalidPhoneNumber:
                log.warning("leader %s: %s cannot take texts: not texted", code, mask(mobile))
                continue
            orders.append(
                TextOrder(
                    to=number,
                    template=TEMPLATES[kind],
                    variables={**variables, "link": self.link(kind, key)},
                    idempotency_key=f"report:{tag}:{key}:{code}",
                )
            )
        return orders


class ReportSchedule:
    """The once-a-day loop (see the module docstring)."""

    def __init__(self, maker: ReportMaker) -> None:
        self.maker = maker
        self.section = maker.section
        self.supervisor = Supervisor("reports")

    def start(self, gate: Callable[[Body], Body] | None = None) -> None:
        """Run the loop; ``gate`` wraps its round (the leadership: one gateway at a time)."""
        body: Body = self.tick
        self.supervisor.loop("schedule", gate(body) if gate else body, every=TICK_SECONDS)

    def check(self) -> None:
        self.supervisor.check()

    async def aclose(self) -> None:
        await self.supervisor.aclose()

    async def tick(self) -> list[Made]:
        """Make every report that is due and not made yet; what was made."""
        now = self.maker.clock.local()
        today = now.date()
        made: list[Made] = []
        if now.time() >= _hhmm(self.section.daily_at):
            made.extend(await self._dailies(today))
        monday = self._due_week(now.date(), now.time())
        if not await self.maker.runs.made("weekly", week_key(monday)):
            made.append(await self.maker.weekly(monday, made_by="schedule"))
        for day in self._meeting_days(today, now.time()):
            for unit in await ReportQueries(self.maker.reads).units():
                if unit.kind not in MEETING_KINDS:
                    continue
                key = f"{day.isoformat()}/{unit.code}"
                if not await self.maker.runs.made("agenda", key):
                    made.append(await self.maker.agenda(unit.code, day, made_by="schedule"))
        return made

    def _due_week(self, today: date, at: time) -> date:
        """The Monday of the last week whose report is due: the week before this one from
        ``weekly_weekday`` at ``daily_at`` on, else the week before that (so a gateway
        that was away on the day makes it late rather than never)."""
        this_monday = today - timedelta(days=today.isoweekday() - 1)
        due = (today.isoweekday(), at) >= (
            self.section.weekly_weekday,
            _hhmm(self.section.daily_at),
        )
        return this_monday - timedelta(days=7 if due else 14)

    def _meeting_days(self, today: date, at: time) -> list[date]:
        """Meeting days whose agendas are due: tomorrow's from ``agenda_at`` on, and
        today's until then (made late when the gateway was away the evening before)."""
        days = []
        meetings = self.section.meeting_weekdays
        evening = at >= _hhmm(self.section.agenda_at)
        if today.isoweekday() in meetings and not evening:
            days.append(today)
        tomorrow = today + timedelta(days=1)
        if evening and tomorrow.isoweekday() in meetings:
            days.append(tomorrow)
        return days

    async def _dailies(self, today: date) -> list[Made]:
        """Yesterday's log, and the days since the last one made (at most a week back);
        only yesterday's is texted."""
        yesterday = today - timedelta(days=1)
        last = await self.maker.runs.last("daily")
        first = yesterday
        if last is not None:
            first = max(date.fromisoformat(last) + timedelta(days=1), yesterday - timedelta(
                days=CATCH_UP_DAYS - 1))  # fmt: skip
        made = []
        day = first
        while day <= yesterday:
            if not await self.maker.runs.made("daily", day.isoformat()):
                made.append(await self.maker.daily(day, made_by="schedule", text=day == yesterday))
            day += timedelta(days=1)
        return made


def _hhmm(text: str) -> time:
    hours, minutes = text.strip().split(":")
    return time(int(hours), int(minutes))


def catalogue_names() -> dict[str, str]:
    """Kind code → its Chinese name, from the catalogue."""
    return {kind.code: kind.name for kind in load_catalogue()}
