"""Appeals: intake from every channel, one matter one case, merge and split by hand.

A submission is checked whole before anything is written, then lands in one
write transaction: the submission row and either a new case or a ``repeat`` line
in the history of the citizen's open case it joins. The channel's reference makes
intake idempotent: the same reference with the same content answers the first
submission again; with other content it is a :class:`ReferenceConflict`.

A submission joins an open, unmerged case of the same citizen (E.164 number) when

* it has the same category and the same unit hint as the case (its owner or any of
  its submissions) and the case saw a submission within ``repeat_window_days``; or
* its text is at least ``similarity_threshold`` similar (:mod:`.similarity`) to the
  case's text or to any of its submissions'.

Merging moves every submission of a case to another and marks it ``merged_into``;
splitting moves some submissions of a case to a new case. Both write a line in the
history of each case involved. No submission is ever deleted.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import gateway.store.cases as case_store
from gateway.appeals.exceptions import (
    BadSubmission,
    CaseChangeRefused,
    ChannelRefused,
    NoSuchCase,
    ReferenceConflict,
    TermsError,
)
from gateway.appeals.similarity import similarity
from gateway.appeals.terms import (
    CaseTerms,
    CategoryTerms,
    case_terms,
    load_terms,
    parse_category_units,
    terms_from_row,
    write_terms,
)
from gateway.calendar import WorkCalendar, load_calendar
from gateway.clock import Clock, parse_utc, utc_iso
from gateway.config import AppealsSection, Secret
from gateway.limits import BadText, check_name, check_note, check_reference
from gateway.phone import InvalidPhoneNumber, to_e164
from gateway.store import Store
from gateway.store.callbacks import Rating, ServedItem
from gateway.store.cases import CATEGORIES, CATEGORY_NAMES, Case, CaseAnswer, CaseEvent
from gateway.store.cases import write_history as _history
from gateway.web.auth import token_matches

# Intake channels, and the coarse channel of a case each opens (a 12345 transfer is a
# hotline appeal: the cases table keeps the kind, the submission the exact channel, and
# what a case shows as its channels comes from its submissions: see `channels`).
CHANNELS = ("web", "wechat", "letter", "visit", "12345")
CASE_CHANNEL: Mapping[str, str] = {
    "web": "web",
    "wechat": "wechat",
    "letter": "letter",
    "visit": "visit",
    "12345": "hotline",
}
# How a case's channels are listed: the hotline's own calls first, then intake channels.
CHANNEL_ORDER = ("hotline", *CHANNELS, "sms", "email")
CHANNEL_NAMES: Mapping[str, str] = {**case_store.CHANNEL_NAMES, "12345": "12345转办"}
FIELDS = (
    "channel",
    "reference",
    "citizen_number",
    "citizen_name",
    "category",
    "text",
    "place",
    "unit_hint",
)
REQUIRED = ("channel", "reference", "citizen_number", "category", "text")
MAX_PLACE = 200

_SUBMISSION_COLUMNS = (
    "id, case_id, channel, reference, citizen_number, citizen_name, category, text, place,"
    " unit_hint, repeat, received_at"
)


@dataclass(frozen=True)
class SubmissionInput:
    channel: str
    reference: str
    citizen_number: str
    category: str
    text: str
    citizen_name: str = ""
    place: str = ""
    unit_hint: str = ""


@dataclass(frozen=True)
class Submission:
    id: int
    case_id: int
    channel: str
    reference: str
    citizen_number: str
    citizen_name: str
    category: str
    text: str
    place: str
    unit_hint: str
    repeat: bool
    received_at: datetime


@dataclass(frozen=True)
class Intake:
    case: Case
    submission: Submission
    repeat: bool  # joined an open case instead of opening one
    replay: bool  # the reference was submitted before: nothing new was written


@dataclass(frozen=True)
class CaseFile:
    """A case with everything the appeals desk reads: submissions, channels, history."""

    case: Case
    submissions: tuple[Submission, ...]
    channels: Mapping[str, int]  # channel → submissions from it
    history: tuple[CaseEvent, ...]
    terms: CaseTerms | None  # None: a case the appeals desk did not open (the IVR's)
    answer: CaseAnswer | None = None  # its one answer, once given (see .lifecycle)
    callback: ServedItem | None = None  # the served item calling the citizen back on it
    rating: Rating | None = None  # the citizen's first rating of the answer


def channel_tokens(settings: AppealsSection) -> dict[str, Secret]:
    return {name: getattr(settings, f"channels_{name}_token") for name in CHANNELS}


class AppealService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: AppealsSection,
        *,
        calendar: WorkCalendar | None = None,
        terms: Mapping[str, CategoryTerms] | None = None,
    ) -> None:
        """``calendar`` and ``terms`` default to the files shipped with the gateway."""
        self._store = store
        self._clock = clock
        self._settings = settings
        self._tokens = channel_tokens(settings)
        self._calendar = calendar if calendar is not None else load_calendar()
        self._terms = terms if terms is not None else load_terms()
        self._category_units = parse_category_units(settings.category_units)

    async def check_units(self) -> None:
        """Refuse to start when a category's default unit does not exist (:class:`TermsError`)."""
        for category, code in self._category_units.items():
            if await self._store.units.unit_by_code(code) is None:
                raise TermsError(f"appeals.category_units: {category}={code}: no unit {code!r}")

    def _case_terms(self, category: str, unit_hint: str, at: datetime) -> CaseTerms:
        return case_terms(
            calendar=self._calendar,
            tz=self._clock.tz,
            terms=self._terms,
            category_units=self._category_units,
            category=category,
            unit_hint=unit_hint,
            opened_at=at,
        )

    async def _open(
        self, conn: Any, first: SubmissionInput | Submission, actor: str, at: datetime
    ) -> int:
        """A new case for ``first`` with its owner and deadlines, in ``conn``'s transaction."""
        terms = self._case_terms(first.category, first.unit_hint, at)
        case_id = await self._store.cases.insert_case(
            conn,
            channel=CASE_CHANNEL[first.channel],
            category=first.category,
            actor=actor,
            citizen_number=first.citizen_number,
            citizen_name=first.citizen_name or None,
            subject=_subject(first.text),
            content=first.text,
            owner_unit=terms.owner_unit,
            deadline=terms.answer_by,
        )
        await write_terms(conn, case_id, terms)
        if terms.estimated:
            note = "办理期限按周一至周五估算：工作日历缺少该年的节假日安排"
            await _history(conn, case_id, at, "system", "note", note)
        return case_id

    # -- intake ----------------------------------------------------------------

    def authenticate(self, channel: str, token: str | None) -> None:
        """Refuse unless ``token`` is ``channel``'s own credential (:class:`ChannelRefused`)."""
        if channel not in CHANNELS:
            raise BadSubmission("channel", f"unknown channel (known: {', '.join(CHANNELS)})")
        if not self._tokens[channel]:
            raise ChannelRefused(channel, "this channel is shut: its token is not set")
        if not token:
            raise ChannelRefused(channel, "missing channel token (X-Channel-Token)")
        if token_matches(self._tokens[channel], token):
            return
        for other, secret in self._tokens.items():
            if other != channel and token_matches(secret, token):
                raise ChannelRefused(channel, f"the token is the {other!r} channel's")
        raise ChannelRefused(channel, "wrong channel token")

    async def check(self, raw: SubmissionInput) -> SubmissionInput:
        """The submission with its values cleaned (number in E.164), or :class:`BadSubmission`."""
        if raw.channel not in CHANNELS:
            raise BadSubmission("channel", f"unknown channel (known: {', '.join(CHANNELS)})")
        for name in REQUIRED:
            if not str(getattr(raw, name)).strip():
                raise BadSubmission(name, "missing")
        try:
            reference = check_reference(raw.reference, "reference")
            name = check_name(raw.citizen_name, "citizen_name")
            text = check_note(raw.text, "text")
            place = check_name(raw.place, "place", MAX_PLACE)
            unit_hint = check_name(raw.unit_hint, "unit_hint")
        except BadText as exc:
            raise BadSubmission(exc.field, exc.reason) from None
        try:
            number = to_e164(raw.citizen_number)
        except InvalidPhoneNumber as exc:
            raise BadSubmission("citizen_number", exc.reason) from None
        if raw.category not in CATEGORIES:
            raise BadSubmission("category", f"unknown category (known: {', '.join(CATEGORIES)})")
        if unit_hint and await self._store.units.unit_by_code(unit_hint) is None:
            raise BadSubmission("unit_hint", f"no unit {unit_hint!r}")
        return SubmissionInput(
            channel=raw.channel,
            reference=reference,
            citizen_number=number,
            category=raw.category,
            text=text,
            citizen_name=name,
            place=place,
            unit_hint=unit_hint,
        )

    async def submit(self, raw: SubmissionInput) -> Intake:
        """Take one submission: a new case, a repeat joining an open one, or a replay."""
        sub = await self.check(raw)
        digest = _digest(sub)
        now = self._clock.now()
        async with self._store.db.transaction() as conn:
            seen = await _fetchone(
                conn,
                f"SELECT {_SUBMISSION_COLUMNS}, digest FROM appeal_submissions"
                " WHERE channel = ? AND reference = ?",
                (sub.channel, sub.reference),
            )
            if seen is not None:
                if seen["digest"] != digest:
                    raise ReferenceConflict(sub.channel, sub.reference)
                replayed = _submission(seen)
                case_id, repeat, replay = replayed.case_id, replayed.repeat, True
            else:
                joined = await self._open_case_for(conn, sub, now)
                replay = False
                repeat = joined is not None
                if joined is not None:
                    case_id, why = joined
                    note = f"{CHANNEL_NAMES[sub.channel]} {sub.reference}：{why}"
                    await _history(conn, case_id, now, f"appeals:{sub.channel}", "repeat", note)
                    await conn.execute(
                        "UPDATE cases SET updated_at = ? WHERE id = ?", (utc_iso(now), case_id)
                    )
                else:
                    case_id = await self._open(conn, sub, f"appeals:{sub.channel}", now)
                await conn.execute(
                    "INSERT INTO appeal_submissions (case_id, channel, reference, digest,"
                    " citizen_number, citizen_name, category, text, place, unit_hint, repeat,"
                    " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        case_id,
                        sub.channel,
                        sub.reference,
                        digest,
                        sub.citizen_number,
                        sub.citizen_name,
                        sub.category,
                        sub.text,
                        sub.place,
                        sub.unit_hint,
                        int(repeat),
                        utc_iso(now),
                    ),
                )
        stored = await self._submission_by_reference(sub.channel, sub.reference)
        case = await self._store.cases.by_id(stored.case_id)
        assert case is not None
        return Intake(case=case, submission=stored, repeat=repeat, replay=replay)

    async def _open_case_for(
        self, conn: Any, sub: SubmissionInput, now: datetime
    ) -> tuple[int, str] | None:
        """The citizen's open case this submission repeats, and why; None for a new matter."""
        cases = await _fetchall(
            conn,
            "SELECT c.id, c.category, c.content, c.created_at, u.code AS owner"
            " FROM cases c LEFT JOIN units u ON u.id = c.owner_unit_id"
            " WHERE c.citizen_number = ? AND c.merged_into IS NULL"
            " AND c.status IN ('open', 'assigned', 'in_progress') ORDER BY c.id",
            (sub.citizen_number,),
        )
        window_start = now - timedelta(days=self._settings.repeat_window_days)
        best: tuple[float, int] | None = None
        for row in cases:
            subs = await _fetchall(
                conn,
                "SELECT text, unit_hint, received_at FROM appeal_submissions WHERE case_id = ?",
                (row["id"],),
            )
            units = {row["owner"]} | {s["unit_hint"] for s in subs}
            last = max([parse_utc(row["created_at"])] + [parse_utc(s["received_at"]) for s in subs])
            if (
                row["category"] == sub.category
                and sub.unit_hint
                and sub.unit_hint in units
                and last >= window_start
            ):
                return row["id"], f"同一类别（{CATEGORY_NAMES[sub.category]}）同一单位"
            texts = [row["content"], *(s["text"] for s in subs)]
            score = max(similarity(sub.text, text) for text in texts)
            if score >= self._settings.similarity_threshold and (best is None or score > best[0]):
                best = (score, row["id"])
        if best is None:
            return None
        return best[1], f"内容相似（{best[0]:.2f}）"

    # -- reading -----------------------------------------------------------------

    async def case_file(self, number: str) -> CaseFile:
        case = await self._case(number)
        submissions = await self._submissions(case.id)
        history = await self._store.cases.history(case.id)
        channels = (await self.channels([case.id]))[case.id]
        row = await self._store.db.fetchone(
            "SELECT owner_source, accept_by, answer_by, estimated FROM appeal_terms"
            " WHERE case_id = ?",
            (case.id,),
        )
        terms = terms_from_row(row, case.owner_unit_code) if row is not None else None
        answer = await self._store.cases.answer_of(case.id)
        item = rating = None
        if answer is not None and answer.item_id is not None:
            item = await self._store.callbacks.item(answer.item_id)
            rating = await self._store.callbacks.rating(answer.item_id, 1)
        return CaseFile(
            case, tuple(submissions), channels, tuple(history), terms, answer, item, rating
        )

    async def channels(self, case_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        """Every channel each case came from, and how often: its submissions by their
        exact channel (a 12345 transfer is ``12345``, though it opens a ``hotline`` case),
        and, for the case itself and each case merged into it that a call to the hotline
        opened (it names the call) or that the appeals desk did not open (no terms, so
        no submission stands for it), that case's own channel once."""
        if not case_ids:
            return {}
        counts: dict[int, Counter[str]] = {case_id: Counter() for case_id in case_ids}
        marks = ", ".join("?" for _ in case_ids)
        submitted = await self._store.db.fetchall(
            "SELECT case_id, channel, COUNT(*) FROM appeal_submissions"
            f" WHERE case_id IN ({marks}) GROUP BY case_id, channel",
            tuple(case_ids),
        )
        for case_id, channel, count in submitted:
            counts[case_id][channel] += count
        # Each case's family, level by level: itself, the cases merged into it, the cases
        # merged into those (a merge leaves the cases merged into the one that goes
        # pointing at it). ``family`` maps the level's case ids to the cases shown. No
        # index covers cases.merged_into: only cases whose history has a merge into them
        # (written with every merge, read by its index) are looked for below.
        family: dict[int, list[int]] = {case_id: [case_id] for case_id in case_ids}
        column = "c.id"
        while family:
            marks = ", ".join("?" for _ in family)
            rows = await self._store.db.fetchall(
                "SELECT c.id, c.merged_into, c.channel,"
                " t.case_id IS NULL OR c.call_linkedid IS NOT NULL FROM cases c"
                f" LEFT JOIN appeal_terms t ON t.case_id = c.id WHERE {column} IN ({marks})",
                tuple(family),
            )
            below: dict[int, list[int]] = {}
            for case_id, merged_into, channel, own_channel in rows:
                shown = family[case_id if column == "c.id" else merged_into]
                if own_channel:
                    for root in shown:
                        counts[root][channel] += 1
                below.setdefault(case_id, []).extend(shown)
            family, column = await self._merged_into_some(below), "c.merged_into"
        order = {name: index for index, name in enumerate(CHANNEL_ORDER)}
        return {
            case_id: dict(sorted(counted.items(), key=lambda kv: order.get(kv[0], len(order))))
            for case_id, counted in counts.items()
        }

    async def _merged_into_some(self, cases: dict[int, list[int]]) -> dict[int, list[int]]:
        """The entries of ``cases`` (by case id) that some case was merged into."""
        if not cases:
            return {}
        marks = ", ".join("?" for _ in cases)
        rows = await self._store.db.fetchall(
            f"SELECT DISTINCT case_id FROM case_history WHERE case_id IN ({marks})"
            " AND action = 'merged_from'",
            tuple(cases),
        )
        return {row[0]: cases[row[0]] for row in rows}

    # -- merge and split ------------------------------------------------------------

    async def merge(self, number: str, into: str, *, actor: str, note: str = "") -> CaseFile:
        """Merge case ``number`` into case ``into``: its submissions move there."""
        actor, note = actor_and_note(actor, note)
        source = await self._case(number)
        target = await self._case(into)
        if source.id == target.id:
            raise CaseChangeRefused(source.number, "cannot be merged into itself")
        if source.merged_into is not None:
            raise CaseChangeRefused(
                source.number, f"was already merged into {source.merged_into_number}"
            )
        if source.status == "closed":
            raise CaseChangeRefused(source.number, "is closed; a closed case is not merged")
        if target.merged_into is not None:
            raise CaseChangeRefused(
                target.number,
                f"was merged into {target.merged_into_number}; merge into that case instead",
            )
        if target.status == "closed":
            raise CaseChangeRefused(target.number, "is closed; nothing can be merged into it")
        now = self._clock.now()
        async with self._store.db.transaction() as conn:
            for case in (source, target):
                still = await _fetchone(
                    conn, "SELECT status, merged_into FROM cases WHERE id = ?", (case.id,)
                )
                if still is None or (still["status"], still["merged_into"]) != (
                    case.status,
                    case.merged_into,
                ):
                    raise CaseChangeRefused(case.number, "changed meanwhile, try again")
            await conn.execute(
                "UPDATE cases SET merged_into = ?, updated_at = ? WHERE id = ?",
                (target.id, utc_iso(now), source.id),
            )
            moved = await conn.execute(
                "UPDATE appeal_submissions SET case_id = ? WHERE case_id = ?",
                (target.id, source.id),
            )
            await conn.execute(
                "UPDATE cases SET updated_at = ? WHERE id = ?", (utc_iso(now), target.id)
            )
            suffix = f"：{note}" if note else ""
            await _history(conn, source.id, now, actor, "merged", f"并入 {target.number}{suffix}")
            await _history(
                conn,
                target.id,
                now,
                actor,
                "merged_from",
                f"{source.number} 并入（{moved.rowcount} 件诉求）{suffix}",
            )
        return await self.case_file(target.number)

    async def split(
        self, number: str, submission_ids: Sequence[int], *, actor: str, note: str = ""
    ) -> CaseFile:
        """Move ``submission_ids`` of case ``number`` to a new case (a matter of its own)."""
        actor, note = actor_and_note(actor, note)
        case = await self._case(number)
        if case.merged_into is not None:
            raise CaseChangeRefused(case.number, f"was merged into {case.merged_into_number}")
        if case.status == "closed":
            raise CaseChangeRefused(case.number, "is closed; a closed case is not split")
        submissions = await self._submissions(case.id)
        if len(submissions) < 2:
            raise CaseChangeRefused(
                case.number,
                f"has {len(submissions)} submission(s); only a case of several can be split",
            )
        ids = list(dict.fromkeys(submission_ids))
        if not ids:
            raise BadSubmission("submissions", "name at least one submission id to split off")
        own = {s.id: s for s in submissions}
        strangers = [i for i in ids if i not in own]
        if strangers:
            raise CaseChangeRefused(case.number, f"has no submission {strangers[0]}")
        if len(ids) == len(submissions):
            raise CaseChangeRefused(
                case.number, "splitting off every submission would leave it empty"
            )
        first = own[ids[0]]
        now = self._clock.now()
        async with self._store.db.transaction() as conn:
            new_id = await self._open(conn, first, actor, now)
            marks = ", ".join("?" for _ in ids)
            moved = await conn.execute(
                f"UPDATE appeal_submissions SET case_id = ? WHERE case_id = ? AND id IN ({marks})",
                (new_id, case.id, *ids),
            )
            if moved.rowcount != len(ids):
                raise CaseChangeRefused(case.number, "changed meanwhile, try again")
            row = await _fetchone(conn, "SELECT number FROM cases WHERE id = ?", (new_id,))
            assert row is not None
            new_number = str(row["number"])
            await conn.execute(
                "UPDATE cases SET updated_at = ? WHERE id = ?", (utc_iso(now), case.id)
            )
            listed = "、".join(f"#{i}" for i in ids)
            suffix = f"：{note}" if note else ""
            await _history(
                conn, case.id, now, actor, "split", f"拆出 {new_number}（诉求 {listed}）{suffix}"
            )
            await _history(
                conn, new_id, now, actor, "split_from", f"从 {case.number} 拆出（诉求 {listed}）"
            )
        return await self.case_file(new_number)

    # -- helpers ---------------------------------------------------------------------

    async def _case(self, number: str) -> Case:
        case = await self._store.cases.get(number)
        if case is None:
            raise NoSuchCase(number)
        return case

    async def _submissions(self, case_id: int) -> list[Submission]:
        rows = await self._store.db.fetchall(
            f"SELECT {_SUBMISSION_COLUMNS} FROM appeal_submissions WHERE case_id = ? ORDER BY id",
            (case_id,),
        )
        return [_submission(r) for r in rows]

    async def _submission_by_reference(self, channel: str, reference: str) -> Submission:
        row = await self._store.db.fetchone(
            f"SELECT {_SUBMISSION_COLUMNS} FROM appeal_submissions"
            " WHERE channel = ? AND reference = ?",
            (channel, reference),
        )
        assert row is not None
        return _submission(row)


def actor_and_note(actor: str, note: str, doing: str = "merges or splits") -> tuple[str, str]:
    """The acting person and the note, checked (:class:`BadSubmission` naming the field)."""
    try:
        actor = check_name(actor, "actor")
        note = check_note(note, "note")
    except BadText as exc:
        raise BadSubmission(exc.field, exc.reason) from None
    if not actor:
        raise BadSubmission("actor", f"missing: who {doing}")
    return actor, note


def _digest(sub: SubmissionInput) -> str:
    content = {k: v for k, v in asdict(sub).items() if k not in ("channel", "reference")}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _subject(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:40]


def _submission(row: Any) -> Submission:
    return Submission(
        id=row["id"],
        case_id=row["case_id"],
        channel=row["channel"],
        reference=row["reference"],
        citizen_number=row["citizen_number"],
        citizen_name=row["citizen_name"],
        category=row["category"],
        text=row["text"],
        place=row["place"],
        unit_hint=row["unit_hint"],
        repeat=bool(row["repeat"]),
        received_at=parse_utc(row["received_at"]),
    )


async def _fetchone(conn: Any, sql: str, params: Sequence[Any]) -> Any:
    cursor = await conn.execute(sql, params)
    return await cursor.fetchone()


async def _fetchall(conn: Any, sql: str, params: Sequence[Any]) -> list[Any]:
    cursor = await conn.execute(sql, params)
    return list(await cursor.fetchall())
