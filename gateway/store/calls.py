"""Call records: one row per call, keyed by (pbx, linkedid).

:meth:`CallRecordRepository.upsert` is idempotent: the same record stored twice
is one row, a record stored again as the call goes on replaces its row, and a
complete record is never turned back into an open one (a stale snapshot, e.g.
from before a restart, cannot undo the end of a call). What the flow runner
attaches (IVR path, case, voice message) is kept whichever arrives first: the
record or the attachment.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.calllog.builder import ABANDONED, ANSWERED, DIRECTIONS, FAILED, INBOUND, CallRecord
from gateway.clock import Clock, parse_utc, utc_iso
from gateway.store.db import Database, StoreError

_COLUMNS = (
    "pbx, linkedid, uniqueid, direction, caller_number, caller_name, dialled_number,"
    " started_at, answered_at, ended_at, duration_s, billable_s, disposition, hangup_cause,"
    " hangup_cause_text, ivr_path, queue, queue_wait_s, agent, recording, case_id, dtmf,"
    " complete, partial, note, talk_s, ended_by, originate_id"
)

_UPSERT = f"""
INSERT INTO call_records ({_COLUMNS}, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (pbx, linkedid) DO UPDATE SET
    uniqueid = CASE WHEN excluded.partial = 1 AND call_records.partial = 0
                    THEN call_records.uniqueid ELSE excluded.uniqueid END,
    started_at = CASE WHEN excluded.partial = 1 AND call_records.started_at < excluded.started_at
                      THEN call_records.started_at ELSE excluded.started_at END,
    partial = CASE WHEN call_records.partial = 0 THEN 0 ELSE excluded.partial END,
    direction = excluded.direction,
    caller_number = COALESCE(excluded.caller_number, call_records.caller_number),
    caller_name = COALESCE(excluded.caller_name, call_records.caller_name),
    dialled_number = COALESCE(excluded.dialled_number, call_records.dialled_number),
    answered_at = COALESCE(excluded.answered_at, call_records.answered_at),
    ended_at = excluded.ended_at,
    duration_s = excluded.duration_s,
    billable_s = excluded.billable_s,
    disposition = excluded.disposition,
    hangup_cause = COALESCE(excluded.hangup_cause, call_records.hangup_cause),
    hangup_cause_text = COALESCE(excluded.hangup_cause_text, call_records.hangup_cause_text),
    ivr_path = CASE WHEN excluded.ivr_path = '[]' THEN call_records.ivr_path
                    ELSE excluded.ivr_path END,
    queue = COALESCE(excluded.queue, call_records.queue),
    queue_wait_s = COALESCE(excluded.queue_wait_s, call_records.queue_wait_s),
    agent = COALESCE(excluded.agent, call_records.agent),
    recording = COALESCE(excluded.recording, call_records.recording),
    case_id = COALESCE(excluded.case_id, call_records.case_id),
    dtmf = CASE WHEN excluded.dtmf = '' THEN call_records.dtmf ELSE excluded.dtmf END,
    complete = excluded.complete,
    note = COALESCE(excluded.note, call_records.note),
    talk_s = COALESCE(excluded.talk_s, call_records.talk_s),
    ended_by = COALESCE(excluded.ended_by, call_records.ended_by),
    originate_id = COALESCE(excluded.originate_id, call_records.originate_id),
    updated_at = excluded.updated_at
WHERE call_records.complete = 0 OR excluded.complete = 1
"""


@dataclass(frozen=True)
class HotlineFigures:
    """Inbound calls of a period (see :meth:`CallRecordRepository.hotline_figures`)."""

    total: int
    answered_by_agent: int
    abandoned: int
    mean_queue_wait_s: float | None


@dataclass(frozen=True)
class StoredCall:
    """A call record as read back from the store."""

    id: int
    updated_at: datetime
    record: CallRecord


class CallRecordRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def upsert(self, records: Sequence[CallRecord]) -> int:
        """Store ``records`` in one transaction; return how many rows were written."""
        if not records:
            return 0
        now = utc_iso(self._clock.now())
        rows = []
        for record in records:
            if record.direction not in DIRECTIONS:
                raise StoreError(
                    f"call {record.pbx}/{record.linkedid}: unknown direction {record.direction!r}"
                )
            rows.append(_row(record, now))
        written = 0
        async with self._db.transaction() as conn:
            for row in rows:
                cursor = await conn.execute(_UPSERT, row)
                written += max(0, cursor.rowcount)
            pending = await conn.execute_fetchall("SELECT 1 FROM call_record_attachments LIMIT 1")
            if pending:
                for record in records:
                    await _take_attachment(conn, record.pbx, record.linkedid)
        return written

    async def attach(
        self,
        pbx: str,
        linkedid: str,
        *,
        ivr_path: Sequence[str] | None = None,
        case_id: int | None = None,
        recording: str | None = None,
    ) -> bool:
        """Attach the IVR path (replacing it), a case or a voice message to a call.

        Returns True if the call's record was there; otherwise the attachment is
        kept and the record's first upsert takes it over.
        """
        path = None if ivr_path is None else json.dumps(list(ivr_path), ensure_ascii=False)
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE call_records SET ivr_path = COALESCE(?, ivr_path),"
                " case_id = COALESCE(?, case_id), recording = COALESCE(?, recording),"
                " updated_at = ? WHERE pbx = ? AND linkedid = ?",
                (path, case_id, recording, utc_iso(self._clock.now()), pbx, linkedid),
            )
            if cursor.rowcount:
                return True
            await conn.execute(
                "INSERT INTO call_record_attachments"
                " (pbx, linkedid, ivr_path, case_id, recording, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pbx, linkedid) DO UPDATE SET"
                " ivr_path = COALESCE(excluded.ivr_path, call_record_attachments.ivr_path),"
                " case_id = COALESCE(excluded.case_id, call_record_attachments.case_id),"
                " recording = COALESCE(excluded.recording, call_record_attachments.recording)",
                (pbx, linkedid, path, case_id, recording, utc_iso(self._clock.now())),
            )
            return False

    async def get(self, pbx: str, linkedid: str) -> StoredCall | None:
        row = await self._db.fetchone(
            f"SELECT id, updated_at, {_COLUMNS} FROM call_records WHERE pbx = ? AND linkedid = ?",
            (pbx, linkedid),
        )
        return _stored(row) if row is not None else None

    async def find(
        self,
        *,
        since: datetime | None = None,
        direction: str | None = None,
        caller: str | None = None,
        complete: bool | None = None,
        limit: int = 50,
    ) -> list[StoredCall]:
        """Newest first. ``caller`` matches the caller's number exactly (give it in E.164)."""
        if direction is not None and direction not in DIRECTIONS:
            raise StoreError(f"unknown direction {direction!r} (known: {', '.join(DIRECTIONS)})")
        if limit < 1:
            raise StoreError(f"limit must be at least 1, got {limit}")
        sql = f"SELECT id, updated_at, {_COLUMNS} FROM call_records WHERE 1=1"
        params: list[Any] = []
        if since is not None:
            sql += " AND started_at >= ?"
            params.append(utc_iso(since))
        if direction is not None:
            sql += " AND direction = ?"
            params.append(direction)
        if caller is not None:
            sql += " AND caller_number = ?"
            params.append(caller)
        if complete is not None:
            sql += " AND complete = ?"
            params.append(int(complete))
        sql += " ORDER BY started_at DESC, id DESC LIMIT ?"
        params.append(limit)
        return [_stored(r) for r in await self._db.fetchall(sql, params)]

    async def close_not_live(self, pbx: str, live: Collection[str], note: str) -> list[str]:
        """Complete the PBX's open records whose Linkedid is not in ``live``, with ``note``.

        After a (re)connect the PBX's channel list is the truth: a record still open
        in the store for a call that is not live (the gateway was killed or
        restarted during it) ended while nobody listened. Its end is taken as its
        last update; its disposition is ANSWERED if it was answered, else FAILED.
        Returns the Linkedids closed.
        """
        rows = await self._db.fetchall(
            "SELECT linkedid FROM call_records WHERE pbx = ? AND complete = 0", (pbx,)
        )
        keep = set(live)
        stale = [row[0] for row in rows if row[0] not in keep]
        if not stale:
            return []
        now = utc_iso(self._clock.now())
        async with self._db.transaction() as conn:
            for start in range(0, len(stale), 500):
                chunk = stale[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                await conn.execute(
                    "UPDATE call_records SET complete = 1,"
                    " ended_at = COALESCE(ended_at, updated_at),"
                    " duration_s = COALESCE(duration_s, MAX(0, (julianday(updated_at)"
                    "  - julianday(started_at)) * 86400.0)),"
                    " billable_s = COALESCE(billable_s, CASE WHEN answered_at IS NULL THEN 0"
                    "  ELSE MAX(0, (julianday(updated_at) - julianday(answered_at)) * 86400.0)"
                    "  END),"
                    " disposition = COALESCE(disposition,"
                    "  CASE WHEN answered_at IS NOT NULL THEN ? ELSE ? END),"
                    " note = CASE WHEN note IS NULL THEN ? ELSE note || '; ' || ? END,"
                    " updated_at = ?"
                    f" WHERE pbx = ? AND complete = 0 AND linkedid IN ({marks})",
                    (ANSWERED, FAILED, note, note, now, pbx, *chunk),
                )
        return stale

    async def count(self) -> int:
        row = await self._db.fetchone("SELECT COUNT(*) FROM call_records")
        return int(row[0]) if row else 0

    async def hotline_figures(self, since: datetime, until: datetime) -> HotlineFigures:
        """Inbound calls that started in ``[since, until)``: how many, how many an agent
        took, how many callers left the queue, and the mean wait of those who queued.
        Calls the gateway placed (callback surveys) never count, whatever their direction."""
        if until <= since:
            raise StoreError(
                f"the period ends ({utc_iso(until)}) before it starts ({utc_iso(since)})"
            )
        row = await self._db.fetchone(
            "SELECT COUNT(*),"
            " COALESCE(SUM(CASE WHEN agent IS NOT NULL THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN disposition = ? THEN 1 ELSE 0 END), 0),"
            " AVG(queue_wait_s)"
            " FROM call_records WHERE direction = ? AND originate_id IS NULL"
            " AND started_at >= ? AND started_at < ?",
            (ABANDONED, INBOUND, utc_iso(since), utc_iso(until)),
        )
        if row is None:
            return HotlineFigures(0, 0, 0, None)
        wait = None if row[3] is None else float(row[3])
        return HotlineFigures(int(row[0]), int(row[1]), int(row[2]), wait)


async def _take_attachment(conn: Any, pbx: str, linkedid: str) -> None:
    rows = await conn.execute_fetchall(
        "SELECT ivr_path, case_id, recording FROM call_record_attachments"
        " WHERE pbx = ? AND linkedid = ?",
        (pbx, linkedid),
    )
    if not rows:
        return
    ivr_path, case_id, recording = rows[0]
    await conn.execute(
        "UPDATE call_records SET ivr_path = COALESCE(?, ivr_path), case_id = COALESCE(?, case_id),"
        " recording = COALESCE(?, recording) WHERE pbx = ? AND linkedid = ?",
        (ivr_path, case_id, recording, pbx, linkedid),
    )
    await conn.execute(
        "DELETE FROM call_record_attachments WHERE pbx = ? AND linkedid = ?", (pbx, linkedid)
    )


def _iso(when: datetime | None) -> str | None:
    return None if when is None else utc_iso(when)


def _row(record: CallRecord, now: str) -> tuple[Any, ...]:
    return (
        record.pbx,
        record.linkedid,
        record.uniqueid,
        record.direction,
        record.caller_number,
        record.caller_name,
        record.dialled_number,
        utc_iso(record.started_at),
        _iso(record.answered_at),
        _iso(record.ended_at),
        record.duration_s,
        record.billable_s,
        record.disposition,
        record.hangup_cause,
        record.hangup_cause_text,
        json.dumps(list(record.ivr_path), ensure_ascii=False),
        record.queue,
        record.queue_wait_s,
        record.agent,
        record.recording,
        record.case_id,
        record.dtmf,
        int(record.complete),
        int(record.partial),
        record.note,
        record.talk_s,
        record.ended_by,
        record.originate_id,
        now,
    )


def _time(text: str | None) -> datetime | None:
    return None if text is None else parse_utc(text)


def _stored(row: Any) -> StoredCall:
    record = CallRecord(
        pbx=row["pbx"],
        linkedid=row["linkedid"],
        uniqueid=row["uniqueid"],
        direction=row["direction"],
        caller_number=row["caller_number"],
        caller_name=row["caller_name"],
        dialled_number=row["dialled_number"],
        started_at=parse_utc(row["started_at"]),
        answered_at=_time(row["answered_at"]),
        ended_at=_time(row["ended_at"]),
        duration_s=row["duration_s"],
        billable_s=row["billable_s"],
        disposition=row["disposition"],
        hangup_cause=row["hangup_cause"],
        hangup_cause_text=row["hangup_cause_text"],
        ivr_path=tuple(json.loads(row["ivr_path"] or "[]")),
        queue=row["queue"],
        queue_wait_s=row["queue_wait_s"],
        agent=row["agent"],
        recording=row["recording"],
        case_id=row["case_id"],
        dtmf=row["dtmf"],
        complete=bool(row["complete"]),
        partial=bool(row["partial"]),
        note=row["note"],
        talk_s=row["talk_s"],
        ended_by=row["ended_by"],
        originate_id=row["originate_id"],
    )
    return StoredCall(id=row["id"], updated_at=parse_utc(row["updated_at"]), record=record)
