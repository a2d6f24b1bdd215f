"""Cases: every appeal from every channel, one matter one case, with its history.

Case numbers are for people and phones: ``<prefix><YYYYMMDD>-<NNNN>``, e.g.
``TS20261130-0007``. The prefix names the category in pinyin initials:

======  ============  ======
prefix  category      中文
======  ============  ======
TS      complaint     投诉
JY      suggestion    建议
ZX      consultation  咨询
YY      booking       预约
JB      report        举报
QZ      help          求助
BY      praise        表扬
QT      other         其他
======  ============  ======

The date is the local (Asia/Shanghai) day the case was opened; the sequence
counts every case of that day whatever its category, so the twelve digits alone
(``202611300007``) name one case: that is what a caller keys in on the phone.
The sequence is allocated in the same write transaction as the case, so two
concurrent openings never share a number. Past 9999 cases a day it grows a digit.

Status goes ``open`` → ``assigned`` → ``in_progress`` → ``resolved`` →
``closed``; see :data:`TRANSITIONS` for the steps allowed (a resolved case may be
reopened when the citizen is not satisfied). Every change writes a history row.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.clock import Clock, parse_utc, utc_iso
from gateway.phone import to_e164
from gateway.store.db import Database, StoreError, in_units

CHANNELS = ("hotline", "web", "wechat", "sms", "letter", "visit", "email")
CHANNEL_NAMES: Mapping[str, str] = {
    "hotline": "热线电话",
    "web": "网站",
    "wechat": "微信",
    "sms": "短信",
    "letter": "信件",
    "visit": "来访",
    "email": "电子邮件",
}
CATEGORY_PREFIX: Mapping[str, str] = {
    "complaint": "TS",
    "suggestion": "JY",
    "consultation": "ZX",
    "booking": "YY",
    "report": "JB",
    "help": "QZ",
    "praise": "BY",
    "other": "QT",
}
CATEGORIES = tuple(CATEGORY_PREFIX)
CATEGORY_NAMES: Mapping[str, str] = {
    "complaint": "投诉",
    "suggestion": "建议",
    "consultation": "咨询",
    "booking": "预约",
    "report": "举报",
    "help": "求助",
    "praise": "表扬",
    "other": "其他",
}
STATUSES = ("open", "assigned", "in_progress", "resolved", "closed")
STATUS_NAMES: Mapping[str, str] = {
    "open": "待分派",
    "assigned": "已分派",
    "in_progress": "办理中",
    "resolved": "已办结",
    "closed": "已关闭",
}
OPEN_STATUSES = ("open", "assigned", "in_progress")
TRANSITIONS: Mapping[str, tuple[str, ...]] = {
    "open": ("assigned", "in_progress", "resolved", "closed"),
    "assigned": ("in_progress", "resolved", "closed"),
    "in_progress": ("resolved", "closed"),
    "resolved": ("closed", "in_progress"),
    "closed": (),
}
# Days to answer when the caller gives no deadline: a default an operator can override.
DEFAULT_DEADLINE_DAYS: Mapping[str, int] = {
    "complaint": 5,
    "suggestion": 15,
    "consultation": 2,
    "booking": 3,
    "report": 5,
    "help": 1,
    "praise": 15,
    "other": 7,
}

_NUMBER = re.compile(r"^([A-Z]{2})(\d{8})-(\d{4,})$")
_DIGITS = re.compile(r"^(\d{8})(\d{4,})$")

_SELECT = (
    "SELECT c.id, c.number, c.channel, c.category, c.subject, c.content, c.citizen_number,"
    " c.citizen_name, c.recording, c.owner_unit_id, u.code AS owner_unit_code,"
    " u.name AS owner_unit_name, c.status, c.deadline, c.merged_into,"
    " m.number AS merged_into_number,"
    " c.call_pbx, c.call_linkedid, c.created_at, c.updated_at"
    " FROM cases c LEFT JOIN units u ON u.id = c.owner_unit_id"
    " LEFT JOIN cases m ON m.id = c.merged_into"
)


@dataclass(frozen=True)
class Case:
    id: int
    number: str
    channel: str
    category: str
    subject: str
    content: str
    citizen_number: str | None
    citizen_name: str | None
    recording: str | None
    owner_unit_id: int | None
    owner_unit_code: str | None
    owner_unit_name: str | None
    status: str
    deadline: datetime | None
    merged_into: int | None
    merged_into_number: str | None
    call_pbx: str | None
    call_linkedid: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES and self.merged_into is None


@dataclass(frozen=True)
class CaseEvent:
    id: int
    case_id: int
    at: datetime
    actor: str
    action: str
    note: str


@dataclass(frozen=True)
class CaseAnswer:
    """The one answer of a case, and the served item that calls the citizen back on it."""

    case_id: int
    answer: str
    officer_code: str
    unit_id: int
    item_id: int | None
    answered_at: datetime


@dataclass(frozen=True)
class CasePin:
    """A case's status-query PIN (its hash only) and the wrong tries against it."""

    case_id: int
    pin_hash: str
    failures: int
    locked_until: datetime | None


class CaseChanged(StoreError):
    """A lifecycle step lost a race: the case is no longer as it was read."""

    def __init__(self, number: str) -> None:
        super().__init__(f"case {number}: changed meanwhile, try again")
        self.number = number


def answer_item_reference(number: str) -> str:
    """The reference of the served item that calls a case's citizen back on its answer."""
    return f"AP-{number}"


def normalise_number(text: str) -> str | None:
    """A case number as typed (any case, spaces) or keyed (digits only), in the digit form
    the store indexes; None if it cannot be a case number."""
    cleaned = re.sub(r"[\s]", "", text or "").upper()
    match = _NUMBER.match(cleaned)
    if match:
        return match.group(2) + match.group(3)
    if _DIGITS.match(cleaned):
        return cleaned
    return None


class CaseRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def open_case(
        self,
        *,
        channel: str,
        category: str,
        actor: str,
        citizen_number: str | None = None,
        citizen_name: str | None = None,
        subject: str = "",
        content: str = "",
        recording: str | None = None,
        owner_unit: str | None = None,
        deadline: datetime | None = None,
        call_pbx: str | None = None,
        call_linkedid: str | None = None,
    ) -> Case:
        """Open a case and give it the day's next number.

        ``citizen_number`` is parsed to E.164 (:class:`gateway.phone.InvalidPhoneNumber`
        if it is not a phone number); ``owner_unit`` is a unit code. ``deadline``
        defaults to :data:`DEFAULT_DEADLINE_DAYS` of the category. Nothing is
        written when any input is refused.
        """
        async with self._db.transaction() as conn:
            case_id = await self.insert_case(
                conn,
                channel=channel,
                category=category,
                actor=actor,
                citizen_number=citizen_number,
                citizen_name=citizen_name,
                subject=subject,
                content=content,
                recording=recording,
                owner_unit=owner_unit,
                deadline=deadline,
                call_pbx=call_pbx,
                call_linkedid=call_linkedid,
            )
        case = await self.by_id(case_id)
        assert case is not None
        return case

    async def insert_case(
        self,
        conn: Any,
        *,
        channel: str,
        category: str,
        actor: str,
        citizen_number: str | None = None,
        citizen_name: str | None = None,
        subject: str = "",
        content: str = "",
        recording: str | None = None,
        owner_unit: str | None = None,
        deadline: datetime | None = None,
        call_pbx: str | None = None,
        call_linkedid: str | None = None,
    ) -> int:
        """:meth:`open_case` inside the caller's write transaction ``conn``; the new id."""
        if channel not in CHANNELS:
            raise StoreError(f"case: unknown channel {channel!r} (known: {', '.join(CHANNELS)})")
        if category not in CATEGORY_PREFIX:
            raise StoreError(
                f"case: unknown category {category!r} (known: {', '.join(CATEGORIES)})"
            )
        if not actor:
            raise StoreError("case: the actor who opens it is missing")
        number = to_e164(citizen_number) if citizen_number else None
        unit_id = await _unit_id_in(conn, owner_unit) if owner_unit is not None else None
        now = self._clock.now()
        if deadline is None:
            deadline = now + timedelta(days=DEFAULT_DEADLINE_DAYS[category])
        elif deadline.tzinfo is None:
            raise StoreError("case: the deadline needs a timezone")
        day = self._clock.local(now).strftime("%Y%m%d")
        prefix = CATEGORY_PREFIX[category]
        cursor = await conn.execute(
            "INSERT INTO case_counters (day, last) VALUES (?, 1)"
            " ON CONFLICT (day) DO UPDATE SET last = case_counters.last + 1 RETURNING last",
            (day,),
        )
        row = await cursor.fetchone()
        assert row is not None
        seq = f"{int(row[0]):04d}"
        case_number = f"{prefix}{day}-{seq}"
        status = "assigned" if unit_id is not None else "open"
        cursor = await conn.execute(
            "INSERT INTO cases (number, number_digits, channel, category, subject, content,"
            " citizen_number, citizen_name, recording, owner_unit_id, status, deadline,"
            " call_pbx, call_linkedid, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                case_number,
                day + seq,
                channel,
                category,
                subject,
                content,
                number,
                citizen_name,
                recording,
                unit_id,
                status,
                utc_iso(deadline),
                call_pbx,
                call_linkedid,
                utc_iso(now),
                utc_iso(now),
            ),
        )
        inserted = await cursor.fetchone()
        assert inserted is not None
        case_id = int(inserted[0])
        note = f"{CATEGORY_NAMES[category]}，来自{CHANNEL_NAMES[channel]}"
        await _history(conn, case_id, now, actor, "opened", note)
        if unit_id is not None:
            await _history(conn, case_id, now, actor, "assigned", owner_unit or "")
        return case_id

    async def get(self, number: str) -> Case | None:
        """The case with this number (``TS20261130-0007`` or just ``202611300007``), else None."""
        digits = normalise_number(number)
        if digits is None:
            return None
        row = await self._db.fetchone(_SELECT + " WHERE c.number_digits = ?", (digits,))
        if row is None:
            return None
        case = _case(row)
        cleaned = number.strip().upper()
        if not cleaned[:1].isdigit() and case.number != cleaned:
            return None  # right digits, wrong prefix: not this case
        return case

    async def by_id(self, case_id: int) -> Case | None:
        row = await self._db.fetchone(_SELECT + " WHERE c.id = ?", (case_id,))
        return _case(row) if row is not None else None

    async def find(
        self,
        *,
        status: str | None = None,
        category: str | None = None,
        unit_code: str | None = None,
        citizen_number: str | None = None,
        limit: int = 50,
    ) -> list[Case]:
        """Newest first."""
        if status is not None and status not in STATUSES:
            raise StoreError(f"unknown status {status!r} (known: {', '.join(STATUSES)})")
        if category is not None and category not in CATEGORY_PREFIX:
            raise StoreError(f"unknown category {category!r} (known: {', '.join(CATEGORIES)})")
        if limit < 1:
            raise StoreError(f"limit must be at least 1, got {limit}")
        sql = _SELECT + " WHERE 1=1"
        params: list[Any] = []
        if status is not None:
            sql += " AND c.status = ?"
            params.append(status)
        if category is not None:
            sql += " AND c.category = ?"
            params.append(category)
        if unit_code is not None:
            params.append(await self._unit_id(unit_code))
            sql += " AND c.owner_unit_id = ?"
        if citizen_number is not None:
            sql += " AND c.citizen_number = ?"
            params.append(to_e164(citizen_number))
        sql += " ORDER BY c.created_at DESC, c.id DESC LIMIT ?"
        params.append(limit)
        return [_case(r) for r in await self._db.fetchall(sql, params)]

    async def history(self, case_id: int) -> list[CaseEvent]:
        rows = await self._db.fetchall(
            "SELECT id, case_id, at, actor, action, note FROM case_history"
            " WHERE case_id = ? ORDER BY id",
            (case_id,),
        )
        return [CaseEvent(r[0], r[1], parse_utc(r[2]), r[3], r[4], r[5]) for r in rows]

    async def add_history(self, number: str, actor: str, action: str, note: str = "") -> CaseEvent:
        """Add a line to a case's history (a call made, a note, a reply sent)."""
        case = await self._require(number)
        if not actor or not action:
            raise StoreError(f"case {case.number}: history needs an actor and an action")
        now = self._clock.now()
        async with self._db.transaction() as conn:
            event_id = await _history(conn, case.id, now, actor, action, note)
            await conn.execute(
                "UPDATE cases SET updated_at = ? WHERE id = ?", (utc_iso(now), case.id)
            )
        return CaseEvent(event_id, case.id, now, actor, action, note)

    async def set_status(self, number: str, status: str, *, actor: str, note: str = "") -> Case:
        """Move a case to ``status`` if :data:`TRANSITIONS` allows it from where it is."""
        if status not in STATUSES:
            raise StoreError(f"unknown status {status!r} (known: {', '.join(STATUSES)})")
        case = await self._require(number)
        if status not in TRANSITIONS[case.status]:
            allowed = ", ".join(TRANSITIONS[case.status]) or "none"
            raise StoreError(
                f"case {case.number}: cannot go from {case.status} to {status} (allowed: {allowed})"
            )
        now = self._clock.now()
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE cases SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
                (status, utc_iso(now), case.id, case.status),
            )
            if cursor.rowcount != 1:
                raise StoreError(f"case {case.number}: changed meanwhile, try again")
            text = f"{case.status} → {status}" + (f"：{note}" if note else "")
            await _history(conn, case.id, now, actor, "status", text)
        changed = await self.by_id(case.id)
        assert changed is not None
        return changed

    async def assign(
        self,
        number: str,
        unit_code: str,
        *,
        actor: str,
        deadline: datetime | None = None,
        note: str = "",
    ) -> Case:
        """Give a case an owner unit (and optionally a new deadline); it becomes ``assigned``."""
        case = await self._require(number)
        if not case.is_open:
            raise StoreError(f"case {case.number}: is {case.status}, cannot be assigned")
        unit_id = await self._unit_id(unit_code)
        now = self._clock.now()
        status = "assigned" if case.status == "open" else case.status
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE cases SET owner_unit_id = ?, status = ?, deadline = COALESCE(?, deadline),"
                " updated_at = ? WHERE id = ?",
                (unit_id, status, _iso(deadline), utc_iso(now), case.id),
            )
            await _history(
                conn, case.id, now, actor, "assigned", unit_code + (f"：{note}" if note else "")
            )
        changed = await self.by_id(case.id)
        assert changed is not None
        return changed

    # -- the lifecycle (assign, accept, answer, close): see gateway.appeals.lifecycle --

    async def move(
        self,
        conn: Any,
        case: Case,
        status: str,
        *,
        actor: str,
        action: str,
        note: str,
        owner_unit_id: int | None = None,
    ) -> None:
        """Move ``case`` (as it was read) to ``status`` inside the caller's write
        transaction, with a history line; ``owner_unit_id`` sets a new owner. Refused
        (:class:`CaseChanged`) when the case changed since it was read."""
        if status != case.status and status not in TRANSITIONS[case.status]:
            raise StoreError(f"case {case.number}: cannot go from {case.status} to {status}")
        owner = owner_unit_id if owner_unit_id is not None else case.owner_unit_id
        now = self._clock.now()
        cursor = await conn.execute(
            "UPDATE cases SET status = ?, owner_unit_id = ?, updated_at = ?"
            " WHERE id = ? AND status = ? AND owner_unit_id IS NOT DISTINCT FROM ?"
            " AND merged_into IS NULL",
            (status, owner, utc_iso(now), case.id, case.status, case.owner_unit_id),
        )
        if cursor.rowcount != 1:
            raise CaseChanged(case.number)
        await _history(conn, case.id, now, actor, action, note)

    async def insert_answer(
        self,
        conn: Any,
        case_id: int,
        *,
        answer: str,
        officer_code: str,
        unit_id: int,
        item_id: int | None,
    ) -> None:
        await conn.execute(
            "INSERT INTO case_answers (case_id, answer, officer_code, unit_id, item_id,"
            " answered_at) VALUES (?, ?, ?, ?, ?, ?)",
            (case_id, answer, officer_code, unit_id, item_id, utc_iso(self._clock.now())),
        )

    async def answer_of(self, case_id: int) -> CaseAnswer | None:
        row = await self._db.fetchone(
            "SELECT case_id, answer, officer_code, unit_id, item_id, answered_at"
            " FROM case_answers WHERE case_id = ?",
            (case_id,),
        )
        if row is None:
            return None
        return CaseAnswer(
            row["case_id"],
            row["answer"],
            row["officer_code"],
            row["unit_id"],
            row["item_id"],
            parse_utc(row["answered_at"]),
        )

    async def set_pin(self, conn: Any, case_id: int, pin_hash: str) -> None:
        """Give a case its status-query PIN (a hash), replacing any earlier one."""
        await conn.execute(
            "INSERT INTO case_pins (case_id, pin_hash, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (case_id) DO UPDATE SET pin_hash = excluded.pin_hash, failures = 0,"
            " locked_until = NULL",
            (case_id, pin_hash, utc_iso(self._clock.now())),
        )

    async def pin_of(self, case_id: int) -> CasePin | None:
        row = await self._db.fetchone(
            "SELECT case_id, pin_hash, failures, locked_until FROM case_pins WHERE case_id = ?",
            (case_id,),
        )
        if row is None:
            return None
        locked = parse_utc(row["locked_until"]) if row["locked_until"] else None
        return CasePin(row["case_id"], row["pin_hash"], row["failures"], locked)

    async def pin_tried(
        self, case_id: int, *, right: bool, limit: int, lock_for: timedelta
    ) -> CasePin | None:
        """Count a PIN try: a right one clears the count, the ``limit``-th wrong one in a
        row locks the PIN for ``lock_for`` (and starts the count again)."""
        now = self._clock.now()
        async with self._db.transaction() as conn:
            if right:
                await conn.execute(
                    "UPDATE case_pins SET failures = 0 WHERE case_id = ?", (case_id,)
                )
            else:
                await conn.execute(
                    "UPDATE case_pins SET failures = failures + 1 WHERE case_id = ?", (case_id,)
                )
                await conn.execute(
                    "UPDATE case_pins SET failures = 0, locked_until = ?"
                    " WHERE case_id = ? AND failures >= ?",
                    (utc_iso(now + lock_for), case_id, limit),
                )
        return await self.pin_of(case_id)

    async def find_open_for_citizen(
        self, citizen_number: str, category: str, *, exclude: int | None = None
    ) -> list[Case]:
        """Open, unmerged cases of this citizen in this category, oldest first: the
        candidates a new appeal may repeat (one matter, one case)."""
        if category not in CATEGORY_PREFIX:
            raise StoreError(f"unknown category {category!r} (known: {', '.join(CATEGORIES)})")
        number = to_e164(citizen_number)
        marks = ", ".join("?" for _ in OPEN_STATUSES)
        rows = await self._db.fetchall(
            _SELECT + f" WHERE c.citizen_number = ? AND c.category = ? AND c.status IN ({marks})"
            " AND c.merged_into IS NULL AND c.id != ? ORDER BY c.created_at, c.id",
            (number, category, *OPEN_STATUSES, exclude if exclude is not None else -1),
        )
        return [_case(r) for r in rows]

    async def count(self) -> int:
        row = await self._db.fetchone("SELECT COUNT(*) FROM cases")
        return int(row[0]) if row else 0

    async def opened_by_category(
        self, since: datetime, until: datetime, *, units: Collection[int] | None = None
    ) -> dict[str, int]:
        """Cases opened in ``[since, until)``, counted per category (categories with none
        are left out); only cases owned by ``units`` if given."""
        if until <= since:
            raise StoreError(f"the period ends ({_iso(until)}) before it starts ({_iso(since)})")
        only, ids = in_units("owner_unit_id", units)
        rows = await self._db.fetchall(
            f"SELECT category, COUNT(*) FROM cases WHERE created_at >= ? AND created_at < ?{only}"
            " GROUP BY category ORDER BY category",
            (_iso(since), _iso(until), *ids),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def open_count(self, *, units: Collection[int] | None = None) -> int:
        """Cases still to be handled: open, assigned or in progress, and not merged away
        (owned by ``units`` if given)."""
        marks = ",".join("?" for _ in OPEN_STATUSES)
        only, ids = in_units("owner_unit_id", units)
        row = await self._db.fetchone(
            # likelihood(): few cases are open; see gateway.store.figures.FEW.
            f"SELECT COUNT(*) FROM cases WHERE likelihood(status IN ({marks}), 0.001)"
            f" AND merged_into IS NULL{only}",
            (*OPEN_STATUSES, *ids),
        )
        return int(row[0]) if row else 0

    async def _require(self, number: str) -> Case:
        case = await self.get(number)
        if case is None:
            raise StoreError(f"no case {number!r}")
        return case

    async def _unit_id(self, code: str) -> int:
        row = await self._db.fetchone("SELECT id FROM units WHERE code = ?", (code,))
        if row is None:
            raise StoreError(f"case: unit {code!r} does not exist")
        return int(row[0])


async def _unit_id_in(conn: Any, code: str) -> int:
    cursor = await conn.execute("SELECT id FROM units WHERE code = ?", (code,))
    row = await cursor.fetchone()
    if row is None:
        raise StoreError(f"case: unit {code!r} does not exist")
    return int(row[0])


async def write_history(
    conn: Any, case_id: int, at: datetime, actor: str, action: str, note: str
) -> int:
    """A line in a case's history, inside the caller's write transaction ``conn``."""
    return await _history(conn, case_id, at, actor, action, note)


async def _history(
    conn: Any, case_id: int, at: datetime, actor: str, action: str, note: str
) -> int:
    cursor = await conn.execute(
        "INSERT INTO case_history (case_id, at, actor, action, note) VALUES (?, ?, ?, ?, ?)"
        " RETURNING id",
        (case_id, utc_iso(at), actor, action, note),
    )
    row = await cursor.fetchone()
    return int(row[0])


def _iso(when: datetime | None) -> str | None:
    return None if when is None else utc_iso(when)


def _case(row: Any) -> Case:
    return Case(
        id=row["id"],
        number=row["number"],
        channel=row["channel"],
        category=row["category"],
        subject=row["subject"],
        content=row["content"],
        citizen_number=row["citizen_number"],
        citizen_name=row["citizen_name"],
        recording=row["recording"],
        owner_unit_id=row["owner_unit_id"],
        owner_unit_code=row["owner_unit_code"],
        owner_unit_name=row["owner_unit_name"],
        status=row["status"],
        deadline=parse_utc(row["deadline"]) if row["deadline"] else None,
        merged_into=row["merged_into"],
        merged_into_number=row["merged_into_number"],
        call_pbx=row["call_pbx"],
        call_linkedid=row["call_linkedid"],
        created_at=parse_utc(row["created_at"]),
        updated_at=parse_utc(row["updated_at"]),
    )
