"""A synthetic store at the bureau's volume, for benchmarks and query-plan tests.

    counts = build_fake_store(path, FakePlan(days=730, seed=2026, end=date(2026, 12, 1)))

The store's schema comes from the project's own migrations and its units and
officers from the demo city; :func:`fill` then adds, day by day and seeded (the
same plan gives the same rows), what two years of the real bureau leave behind:
about 1,370 hotline calls a day in the demo's caller mix, the cases they open,
about 1,370 served items a day of the catalogue's kinds with their callback
attempts, ratings at the demo's satisfaction (86 / 8 / 6), rectification orders
at every level with their events and texts, and the rating requests texted to
citizens no call reached. Nothing happens at or after the plan's end (midnight
UTC), so the last days are still in progress (items waiting,
orders open), as in a running gateway.

Rows go in with ``executemany``, one transaction per batch of days, so two years
build in minutes; the planner's statistics are gathered at the end. A store that
already holds calls or served items is refused.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from gateway.callbacks.catalogue import load_catalogue
from gateway.clock import ManualClock, utc_iso
from gateway.store import Store
from gateway.store.cases import CATEGORY_PREFIX
from gateway.store.db import StoreError
from gateway.store.seed import demo_city, load_seed

# The bureau's daily volume (two years: about 1 M calls and 1 M served items).
CALLS_PER_DAY = 1370
ITEMS_PER_DAY = 1370
BATCH_DAYS = 30
# Items and orders younger than this are still in progress.
IN_PROGRESS_DAYS = 2
OPEN_ORDER_DAYS = 7

_SCALE = re.compile(r"^(\d+(?:\.\d+)?)([dwmy])$")
_UNIT_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}

# The hotline's caller mix of the demo (gateway/demo/traffic.py): share, what happens.
# (share, key pressed, agent took it, abandoned in queue, case category, dtmf)
_BRANCHES: tuple[tuple[float, str, bool, bool, str | None, str], ...] = (
    (0.20, "consult", True, False, None, "1"),
    (0.17, "complaint", False, False, "complaint", "2#"),
    (0.08, "suggestion", False, False, "suggestion", "3#"),
    (0.08, "status", False, False, None, "4{case}#9"),
    (0.04, "status_unknown", False, False, None, "4209901019999#"),
    (0.12, "agent", True, False, None, "0"),
    (0.06, "wrong_key", True, False, None, "91"),
    (0.05, "no_key", True, False, None, ""),
    (0.07, "menu_hangup", False, False, None, ""),
    (0.04, "message_hangup", False, False, None, "2"),
    (0.09, "queue_abandoned", False, True, None, "0"),
)
_BRANCH_WEIGHTS = [b[0] for b in _BRANCHES]
# A callback call's outcome (per attempt), the citizen's score when rated.
_OUTCOMES = ("rated", "no_rating", "busy", "no_answer", "no_such_number", "failed")
_OUTCOME_WEIGHTS = (62, 3, 14, 16, 3, 2)
_SCORES = (1, 2, 3)
_SCORE_WEIGHTS = (86, 8, 6)
_MAX_CALLS = 3
# The level a rectification order ended at.
_LEVEL_WEIGHTS = (70, 18, 8, 4)
_REASONS = ("attitude", "slow", "unfair", "unsolved", "other")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀英华平"


@dataclass(frozen=True)
class FakePlan:
    days: int
    seed: int = 2026
    end: date = date(2026, 12, 1)  # the first day not generated (UTC)
    volume: float = 1.0  # multiplies the daily volume


@dataclass
class FakeCounts:
    calls: int = 0
    cases: int = 0
    items: int = 0
    attempts: int = 0
    ratings: int = 0
    orders: int = 0
    texts: int = 0
    per_table: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"calls={self.calls} cases={self.cases} items={self.items} attempts={self.attempts}"
            f" ratings={self.ratings} orders={self.orders} texts={self.texts}"
        )


def parse_scale(text: str) -> int:
    """Days in a scale such as ``1w``, ``30d``, ``6m``, ``2y`` or ``3.5y``."""
    match = _SCALE.match(text.strip().lower())
    if not match:
        raise ValueError(f"scale {text!r}: give a number and d, w, m or y (e.g. 1w, 2y)")
    days = round(float(match.group(1)) * _UNIT_DAYS[match.group(2)])
    if days < 1:
        raise ValueError(f"scale {text!r} is less than a day")
    return days


async def build_fake_store(path: Path, plan: FakePlan) -> FakeCounts:
    """Migrate and seed the store at ``path`` with the demo city, then :func:`fill` it."""
    await asyncio.to_thread(_refuse_if_busy, path)
    start = datetime.combine(plan.end, datetime.min.time(), UTC) - timedelta(days=plan.days)
    async with Store.open(path, ManualClock(start - timedelta(days=1))) as store:
        await load_seed(store.units, demo_city(), "demo-city.toml")
    return await asyncio.to_thread(fill, path, plan)


def fill(path: Path, plan: FakePlan) -> FakeCounts:
    """Add ``plan``'s rows to a migrated, seeded and otherwise empty store."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        _refuse_if_busy(path, conn)
        counts = _Filler(conn, plan).run()
        # What the running gateway's daily PRAGMA optimize would have left behind.
        conn.execute("PRAGMA analysis_limit=1000")
        conn.execute("ANALYZE")
        return counts
    finally:
        conn.close()


def _refuse_if_busy(path: Path, conn: sqlite3.Connection | None = None) -> None:
    """Raise if the store at ``path`` already holds calls or served items."""
    if conn is None and not path.exists():
        return
    own = conn is None
    conn = conn or sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if {"call_records", "served_items"} <= tables:
            busy = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM call_records) OR EXISTS (SELECT 1 FROM served_items)"
            ).fetchone()[0]
            if busy:
                raise StoreError(
                    f"{path} already holds calls or served items: fake data needs a new store"
                )
    finally:
        if own:
            conn.close()


class _Filler:
    def __init__(self, conn: sqlite3.Connection, plan: FakePlan) -> None:
        self.conn = conn
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.counts = FakeCounts()
        self.end = datetime.combine(plan.end, datetime.min.time(), UTC)
        self.start = self.end - timedelta(days=plan.days)
        catalogue = load_catalogue()
        self.kinds = [k.code for k in catalogue]
        self.called_back = {k.code for k in catalogue.called_back()}
        units = conn.execute("SELECT id, code, kind FROM units ORDER BY id").fetchall()
        self.stations = [u[0] for u in units if u[2] == "station"]
        self.units_served = self.stations + [u[0] for u in units if u[2] == "department"]
        officers = conn.execute(
            "SELECT code, unit_id, mobile FROM officers WHERE role IN ('chief', 'leader', 'deputy')"
        ).fetchall()
        self.chief_mobile = {u: m for _c, u, m in officers if m}
        self.agents = [f"A{n:04d}" for n in range(1, 41)]
        self.ids = {"case": 0, "item": 0, "attempt": 0, "rating": 0, "order": 0, "sms": 0}
        self.case_digits: list[str] = []
        self.order_seq: dict[str, int] = {}
        self.case_seq: dict[str, int] = {}
        self.sid = 0

    def _next(self, name: str) -> int:
        self.ids[name] += 1
        return self.ids[name]

    def run(self) -> FakeCounts:
        day = 0
        while day < self.plan.days:
            chunk = range(day, min(day + BATCH_DAYS, self.plan.days))
            rows: dict[str, list[tuple[Any, ...]]] = {}
            for d in chunk:
                self._calls(d, rows)
                self._items(d, rows)
            self._write(rows)
            day = chunk.stop
        return self.counts

    # -- writing ------------------------------------------------------------

    _INSERTS: ClassVar[dict[str, str]] = {
        "cases": "INSERT INTO cases (id, number, number_digits, channel, category, subject,"
        " content, citizen_number, citizen_name, owner_unit_id, status, deadline, call_pbx,"
        " call_linkedid, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        "case_history": "INSERT INTO case_history (case_id, at, actor, action, note)"
        " VALUES (?,?,?,?,?)",
        "call_records": "INSERT INTO call_records (pbx, linkedid, uniqueid, direction,"
        " caller_number, caller_name, dialled_number, started_at, answered_at, ended_at,"
        " duration_s, billable_s, disposition, hangup_cause, hangup_cause_text, ivr_path, queue,"
        " queue_wait_s, agent, case_id, dtmf, complete, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        "served_items": "INSERT INTO served_items (id, reference, kind_code, unit_id,"
        " officer_code, citizen_number, citizen_name, served_at, source, status, round,"
        " attempts, next_attempt_at, sms_expires_at, created_at, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        "callback_attempts": "INSERT INTO callback_attempts (id, item_id, round, attempt,"
        " channel, outcome, pbx, action_id, uniqueid, started_at, ended_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        "ratings": "INSERT INTO ratings (id, item_id, attempt_id, round, channel, score, reason,"
        " rated_at) VALUES (?,?,?,?,?,?,?,?)",
        "rectification_orders": "INSERT INTO rectification_orders (id, ref, item_id, rating_id,"
        " level, status, deadline_at, reported_at, reported_by, report_note, closed_at,"
        " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        "order_events": "INSERT INTO order_events (order_id, at, level, action, actor, note)"
        " VALUES (?,?,?,?,?,?)",
        "sms_messages": "INSERT INTO sms_messages (id, purpose, audience, to_number, sender,"
        " template, variables, body, encoding, segments, idempotency_key, status, attempts,"
        " next_attempt_at, claimed_at, provider_sid, created_at, updated_at, sent_at, final_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        "sms_events": "INSERT INTO sms_events (message_id, provider_sid, kind, status, detail,"
        " at) VALUES (?,?,?,?,?,?)",
    }

    def _write(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        self.conn.execute("BEGIN")
        try:
            for table, sql in self._INSERTS.items():
                batch = rows.get(table)
                if batch:
                    self.conn.executemany(sql, batch)
                    self.counts.per_table[table] = self.counts.per_table.get(table, 0) + len(batch)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        t = self.counts.per_table
        self.counts.calls = t.get("call_records", 0)
        self.counts.cases = t.get("cases", 0)
        self.counts.items = t.get("served_items", 0)
        self.counts.attempts = t.get("callback_attempts", 0)
        self.counts.ratings = t.get("ratings", 0)
        self.counts.orders = t.get("rectification_orders", 0)
        self.counts.texts = t.get("sms_messages", 0)

    # -- helpers ------------------------------------------------------------

    def _count(self, per_day: int) -> int:
        mean = per_day * self.plan.volume
        return max(0, round(self.rng.gauss(mean, mean * 0.08)))

    def _moment(self, d: int) -> datetime:
        # Local 08:00-24:00 (Asia/Shanghai) is 00:00-16:00 UTC.
        return self.start + timedelta(days=d, seconds=self.rng.uniform(0, 16 * 3600))

    def _mobile(self) -> str:
        return f"+861{self.rng.choice('3578')}{self.rng.randrange(10**9):09d}"

    def _name(self) -> str:
        return self.rng.choice(_SURNAMES) + self.rng.choice(_GIVEN)

    def _provider_sid(self) -> str:
        self.sid += 1
        return f"SM{self.plan.seed:08x}{self.sid:024x}"

    def _recent(self, when: datetime, days: int) -> bool:
        return when >= self.end - timedelta(days=days)

    # -- hotline calls and the cases they open ------------------------------

    def _calls(self, d: int, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        rng = self.rng
        for n in range(self._count(CALLS_PER_DAY)):
            started = self._moment(d)
            branch = rng.choices(_BRANCHES, weights=_BRANCH_WEIGHTS)[0]
            _share, _label, agent, abandoned, category, dtmf = branch
            caller = self._mobile()
            name = self._name()
            menu_s = rng.uniform(4, 15)
            wait = rng.uniform(3, 90) if agent or abandoned else None
            talk = rng.uniform(30, 400) if agent else rng.uniform(0, 40)
            duration = menu_s + (wait or 0) + talk
            ended = started + timedelta(seconds=duration)
            path = ["main_menu"] + ([f"key:{dtmf[0]}"] if dtmf else [])
            if "{case}" in dtmf:
                digits = rng.choice(self.case_digits) if self.case_digits else "202611300001"
                dtmf = dtmf.replace("{case}", digits)
            linkedid = f"{int(started.timestamp())}.{d * 10000 + n}"
            case_id = None
            if category is not None:
                case_id = self._case(started, category, caller, name, linkedid, rows)
            rows.setdefault("call_records", []).append(
                (
                    "main",
                    linkedid,
                    linkedid,
                    "inbound",
                    caller,
                    name,
                    "12345",
                    utc_iso(started),
                    utc_iso(started + timedelta(seconds=1)),
                    utc_iso(ended),
                    round(duration, 3),
                    round(duration - 1, 3),
                    "ABANDONED" if abandoned else "ANSWERED",
                    16,
                    "Normal Clearing",
                    json.dumps(path),
                    "hotline" if wait is not None else None,
                    None if wait is None else round(wait, 3),
                    rng.choice(self.agents) if agent else None,
                    case_id,
                    dtmf,
                    1,
                    utc_iso(ended),
                )
            )

    def _case(
        self,
        at: datetime,
        category: str,
        caller: str,
        name: str,
        linkedid: str,
        rows: dict[str, list[tuple[Any, ...]]],
    ) -> int:
        rng = self.rng
        case_id = self._next("case")
        day = (at + timedelta(hours=8)).strftime("%Y%m%d")
        seq = self.case_seq[day] = self.case_seq.get(day, 0) + 1
        number = f"{CATEGORY_PREFIX[category]}{day}-{seq:04d}"
        digits = f"{day}{seq:04d}"
        self.case_digits.append(digits)
        if len(self.case_digits) > 5000:
            del self.case_digits[:1000]
        if self._recent(at, 10):
            status = rng.choice(("open", "assigned", "in_progress", "resolved"))
        else:
            status = "closed"
        deadline = at + timedelta(days=7)
        rows.setdefault("cases", []).append(
            (
                case_id,
                number,
                digits,
                "hotline",
                category,
                "热线留言",
                "",
                caller,
                name,
                rng.choice(self.stations),
                status,
                utc_iso(deadline),
                "main",
                linkedid,
                utc_iso(at),
                utc_iso(at if status == "open" else at + timedelta(days=rng.uniform(0.1, 6))),
            )
        )
        rows.setdefault("case_history", []).append((case_id, utc_iso(at), "ivr", "opened", ""))
        if status != "open":
            rows["case_history"].append(
                (case_id, utc_iso(at + timedelta(hours=2)), "system", "assigned", "")
            )
        return case_id

    # -- served items, callbacks, ratings, orders, texts --------------------

    def _items(self, d: int, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        rng = self.rng
        for n in range(self._count(ITEMS_PER_DAY)):
            served = self._moment(d)
            kind = rng.choice(self.kinds)
            unit = rng.choice(self.units_served)
            item_id = self._next("item")
            citizen = self._mobile()
            reference = f"FAKE-{served:%Y%m%d}-{n + 1:05d}"
            first_call = served + timedelta(hours=24)
            next_at: datetime | None = first_call
            sms_expires: datetime | None = None
            status, round_, calls = "pending", 1, 0
            updated = served
            if kind not in self.called_back:
                status, next_at = "skipped", None
            elif first_call < self.end and (
                first_call < self.end - timedelta(days=IN_PROGRESS_DAYS) or rng.random() < 0.5
            ):
                status, round_, calls, next_at, sms_expires, updated = self._callback(
                    item_id, unit, citizen, first_call, rows
                )
            rows.setdefault("served_items", []).append(
                (
                    item_id,
                    reference,
                    kind,
                    unit,
                    f"J{rng.randrange(1, 999):05d}",
                    citizen,
                    self._name(),
                    utc_iso(served),
                    "api",
                    status,
                    round_,
                    calls,
                    utc_iso(next_at) if next_at else None,
                    utc_iso(sms_expires) if sms_expires else None,
                    utc_iso(served),
                    utc_iso(updated),
                )
            )

    def _callback(
        self,
        item_id: int,
        unit: int,
        citizen: str,
        first_call: datetime,
        rows: dict[str, list[tuple[Any, ...]]],
    ) -> tuple[str, int, int, datetime | None, datetime | None, datetime]:
        """Play an item's first round of calls; (status, round, calls, next, sms expiry, at)."""
        rng = self.rng
        at = first_call
        for attempt in range(1, _MAX_CALLS + 1):
            if at >= self.end:  # the next call is still to come
                return "pending", 1, attempt - 1, at, None, at
            outcome = rng.choices(_OUTCOMES, weights=_OUTCOME_WEIGHTS)[0]
            attempt_id = self._attempt(item_id, 1, attempt, "call", outcome, at, rows)
            if outcome == "rated":
                score = rng.choices(_SCORES, weights=_SCORE_WEIGHTS)[0]
                rating_id = self._rating(item_id, attempt_id, 1, "phone", score, at, rows)
                if score == 3:
                    return self._order(item_id, unit, rating_id, citizen, at, rows)
                return "rated", 1, attempt, None, None, at
            if outcome == "no_such_number":
                break
            at += timedelta(hours=rng.choice((2, 4, 24)))
        if at >= self.end:
            return "pending", 1, attempt, at, None, at
        # No call reached the citizen: a rating request by text.
        self._attempt(item_id, 1, attempt + 1, "sms", "sent", at, rows)
        self._text("rating_request", "citizen", citizen, f"rating-request:{item_id}:1", at, rows)
        expires = at + timedelta(hours=48)
        if expires > self.end:
            return "sms", 1, attempt, None, expires, at
        if rng.random() < 0.35:
            score = rng.choices(_SCORES, weights=(80, 12, 8))[0]
            rated_at = at + timedelta(hours=3)
            rating_id = self._rating(item_id, None, 1, "sms", score, rated_at, rows)
            if score == 3:  # a 3 by text opens an order as one by phone does
                return self._order(item_id, unit, rating_id, citizen, rated_at, rows)
            return "rated", 1, attempt, None, None, rated_at
        return "unreachable", 1, attempt, None, None, expires

    def _attempt(
        self,
        item_id: int,
        round_: int,
        attempt: int,
        channel: str,
        outcome: str,
        at: datetime,
        rows: dict[str, list[tuple[Any, ...]]],
    ) -> int:
        attempt_id = self._next("attempt")
        call = channel == "call"
        rows.setdefault("callback_attempts", []).append(
            (
                attempt_id,
                item_id,
                round_,
                attempt,
                channel,
                outcome,
                "main" if call else None,
                f"cb-{attempt_id}" if call else None,
                f"{int(at.timestamp())}.{attempt_id}" if call else None,
                utc_iso(at),
                utc_iso(at + timedelta(seconds=40)),
            )
        )
        return attempt_id

    def _rating(
        self,
        item_id: int,
        attempt_id: int | None,
        round_: int,
        channel: str,
        score: int,
        at: datetime,
        rows: dict[str, list[tuple[Any, ...]]],
    ) -> int:
        rating_id = self._next("rating")
        reason = self.rng.choice(_REASONS) if score == 3 else None
        rows.setdefault("ratings", []).append(
            (rating_id, item_id, attempt_id, round_, channel, score, reason, utc_iso(at))
        )
        return rating_id

    def _order(
        self,
        item_id: int,
        unit: int,
        rating_id: int,
        citizen: str,
        at: datetime,
        rows: dict[str, list[tuple[Any, ...]]],
    ) -> tuple[str, int, int, datetime | None, datetime | None, datetime]:
        rng = self.rng
        order_id = self._next("order")
        day = (at + timedelta(hours=8)).strftime("%Y%m%d")
        seq = self.order_seq[day] = self.order_seq.get(day, 0) + 1
        ref = f"ZG{day}-{seq:04d}"
        level = rng.choices((1, 2, 3, 4), weights=_LEVEL_WEIGHTS)[0]
        events = rows.setdefault("order_events", [])
        events.append((order_id, utc_iso(at), 1, "created", "system", None))
        moment = at
        for lv in range(1, level + 1):
            if lv > 1:
                later = moment + timedelta(hours=rng.uniform(20, 72))
                if later >= self.end:  # not escalated yet
                    level = lv - 1
                    break
                moment = later
                events.append((order_id, utc_iso(moment), lv, "escalated", "system", "超期未反馈"))
            events.append((order_id, utc_iso(moment), lv, "notified", "system", None))
            mobile = self.chief_mobile.get(unit) or "+8613900000000"
            self._text("rectification_order", "officer", mobile, f"order:{ref}:{lv}", moment, rows)
        deadline = moment + timedelta(hours=72)
        status = "closed"
        if self._recent(at, OPEN_ORDER_DAYS):
            status = rng.choice(("open", "open", "reported"))
        reported: datetime = moment + timedelta(hours=rng.uniform(4, 60))
        closing = reported + timedelta(hours=rng.uniform(20, 30))
        if status == "closed" and closing >= self.end:
            status = "reported"
        if status == "reported" and reported >= self.end:
            status = "open"
        reported_at: datetime | None = None if status == "open" else reported
        closed_at: datetime | None = closing if status == "closed" else None
        if reported_at is not None:
            events.append((order_id, utc_iso(reported_at), level, "reported", "J00013", "已整改"))
        item_status, round_, next_at, updated = "rated", 1, None, at
        if closed_at is not None:
            events.append((order_id, utc_iso(closed_at), level, "closed", "system", None))
            # The recall: the citizen is called again and rates the rectification.
            attempt_id = self._attempt(item_id, 2, 1, "call", "rated", closed_at, rows)
            self._rating(item_id, attempt_id, 2, "phone", 1, closed_at, rows)
            round_, updated = 2, closed_at
        elif reported_at is not None:
            item_status, round_, next_at, updated = "pending", 2, reported_at, reported_at
        rows.setdefault("rectification_orders", []).append(
            (
                order_id,
                ref,
                item_id,
                rating_id,
                level,
                status,
                utc_iso(deadline),
                utc_iso(reported_at) if reported_at else None,
                "J00013" if reported_at else None,
                "已整改" if reported_at else None,
                utc_iso(closed_at) if closed_at else None,
                utc_iso(at),
                utc_iso(closed_at or reported_at or moment),
            )
        )
        return item_status, round_, 0 if round_ == 2 else 1, next_at, None, updated

    def _text(
        self,
        purpose: str,
        audience: str,
        to: str,
        key: str,
        at: datetime,
        rows: dict[str, list[tuple[Any, ...]]],
    ) -> None:
        message_id = self._next("sms")
        sid = self._provider_sid()
        body = "【鲁州公安】请回复1满意，2基本满意，3不满意。回复TD退订"
        if purpose == "rectification_order":
            body = "【鲁州公安】整改工单：群众不满意，请于期限内整改并回复工单号。"
        sent = at + timedelta(seconds=2)
        final = at + timedelta(seconds=9)
        rows.setdefault("sms_messages", []).append(
            (
                message_id,
                purpose,
                audience,
                to,
                "+8610690000",
                purpose,
                "{}",
                body,
                "UCS-2",
                1,
                key,
                "delivered",
                1,
                utc_iso(at),
                utc_iso(at),
                sid,
                utc_iso(at),
                utc_iso(final),
                utc_iso(sent),
                utc_iso(final),
            )
        )
        events = rows.setdefault("sms_events", [])
        events.append((message_id, None, "enqueued", "queued", "", utc_iso(at)))
        events.append((message_id, None, "claimed", "sending", "", utc_iso(at)))
        events.append((message_id, sid, "accepted", "sent", "", utc_iso(sent)))
        events.append((message_id, sid, "status", "delivered", "", utc_iso(final)))
