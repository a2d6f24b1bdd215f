"""Chasing appeals: a reminder before a deadline, and four levels once it has passed.

Each case owes two deadlines (``appeal_terms``): to accept it (``accept_by``, met once
the case is ``in_progress``, ``resolved`` or ``closed``) and to answer it
(``answer_by``, met once ``resolved`` or ``closed``). For each, a round of
:meth:`CaseChaser.run_once`

1. **ends** the chase of a deadline that was met (or whose case was merged): it stops
   climbing, and its history says so;
2. **climbs** an overdue case like a rectification order: level 1 (the owner unit's
   chief) when the deadline passes, then, each ``appeals.chase_level_working_days``
   later while it is still owed, the sub-bureau, the supervision office and the
   leadership (:class:`~gateway.callbacks.ladder.Ladder`, the policy orders use; a
   level with nobody reachable is passed over, as for orders). Each level is texted
   once: the level change and its outbox rows are one transaction, and
   ``notified_level`` records what was texted; at the top it stays, texted once;
3. **reminds** the owner unit's chief, once, of a deadline that falls before the end
   of ``appeals.chase_remind_working_days`` working days after today (not yet passed);
4. **sweeps**: texts any chase whose current level was never texted (its texts could
   not be queued then, e.g. a chief's number that could not take texts).

Deadlines and level times are counted in working days on the holiday calendar
(:mod:`gateway.calendar`), so a deadline after a holiday is not chased during it.
Texts to officers go out at any hour, as orders do (SMS quiet hours hold only texts
to citizens). Every step writes a line in the case's history, actor ``system:chasing``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiosqlite

from gateway.calendar import WorkCalendar, add_working_days
from gateway.callbacks.ladder import Ladder, Rung
from gateway.callbacks.policy import LEVEL_NAMES, TOP_LEVEL, next_level
from gateway.callbacks.service import Texter
from gateway.clock import Clock
from gateway.config import AppealsSection
from gateway.errors import GatewayError
from gateway.store import Store
from gateway.store.callbacks import LostRace
from gateway.store.cases import write_history
from gateway.store.chases import Chase
from gateway.store.units import Officer

log = logging.getLogger(__name__)

ACTOR = "system:chasing"
STAGE_NAMES = {"accept": "受理", "answer": "答复"}


class ChasingError(GatewayError):
    """A chasing setting is malformed; the message names it."""


def parse_level_days(text: str, key: str = "appeals.chase_level_working_days") -> tuple[int, ...]:
    """``"1,1,1,1"`` → the working days an overdue case stays at each of the four levels."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != TOP_LEVEL or any(v < 1 for v in values):
        raise ChasingError(
            f"{key}: give {TOP_LEVEL} whole numbers of working days (at least 1), got {text!r}"
        )
    return values


def deadline_text(local: datetime) -> str:
    """A deadline as people say it: the end of a day is "12月03日24时", not "12月04日00时"."""
    if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
        return (local - timedelta(days=1)).strftime("%m月%d日24时")
    return local.strftime("%m月%d日%H:%M")


@dataclass
class ChaseRound:
    """What one round did (for logs and tests)."""

    ended: int = 0
    climbed: int = 0
    reminded: int = 0
    swept: int = 0


class CaseChaser:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        texter: Texter,
        ladder: Ladder,
        calendar: WorkCalendar,
        settings: AppealsSection,
    ) -> None:
        self.store = store
        self.clock = clock
        self.texter = texter
        self.ladder = ladder
        self.calendar = calendar
        self.remind_days = settings.chase_remind_working_days
        self.level_days = parse_level_days(settings.chase_level_working_days)
        # (case, stage, level) the sweeper could not text yet: its retries log quietly.
        self._unsent: set[tuple[int, str, int]] = set()

    async def run_once(self) -> ChaseRound:
        """One round: end, climb, start and remind, sweep (see the module docstring)."""
        done = ChaseRound()
        done.ended = await self.end_met()
        done.climbed = await self.climb_overdue()
        done.reminded = await self.remind_near()
        done.swept = await self.notify_unnotified()
        return done

    def _after_working_days(self, days: int) -> datetime:
        return add_working_days(self.calendar, self.clock.now(), days, self.clock.tz, strict=False)

    # -- ending -----------------------------------------------------------------------

    async def end_met(self) -> int:
        """End the chases whose case met the deadline (or was merged or closed)."""
        ended = 0
        for chase in await self.store.chases.met():
            async with self.store.db.transaction() as conn:
                if not await self.store.chases.end(conn, chase):
                    continue
                case = await self.store.cases.by_id(chase.case_id)
                why = "已并入其他案件" if case and case.merged_into else "已办理"
                note = f"{STAGE_NAMES[chase.stage]}时限督办结束：{why}"
                if chase.level:
                    note += f"（督办至第{chase.level}级）"
                await self._history(conn, chase, "chase_ended", note)
            ended += 1
        return ended

    # -- climbing ---------------------------------------------------------------------

    async def climb_overdue(self) -> int:
        """Start overdue deadlines at level 1; climb those whose level's time is up."""
        now = self.clock.now()
        moved = 0
        for chase in await self.store.chases.due_by(now):
            if chase.due_at <= now and await self._climb(chase, 1, "超期"):
                moved += 1
        for chase in await self.store.chases.climbing_due(now):
            if not chase.pending:
                continue  # met meanwhile: end_met ends it next round
            level = next_level(chase.level)
            if level is None:
                await self._hold_at_top(chase)
                continue
            if await self._climb(chase, level, f"第{chase.level}级督办期满仍未办理"):
                moved += 1
        return moved

    async def _climb(self, chase: Chase, level: int, why: str) -> bool:
        """Move ``chase`` to ``level`` and text its heads, in one transaction. A level
        with nobody reachable is passed over; with nobody at any level the chase still
        moves (and is marked not texted, for the sweeper)."""
        rung = await self.ladder.reachable_from(chase.owner_unit_id, level)
        target = rung.level if rung else level
        try:
            async with self.store.db.transaction() as conn:
                await self.store.chases.set_level(conn, chase, target, self._level_due(target))
                current = await self.store.chases.get(conn, chase.case_id, chase.stage)
                assert current is not None
                stage = STAGE_NAMES[chase.stage]
                await self._history(
                    conn,
                    current,
                    "chase_level",
                    f"{why}：{stage}时限{self._deadline(chase)}，升至第{target}级督办"
                    f"（{LEVEL_NAMES[target]}）",
                )
                await self._text_level(conn, current, rung, loud=True)
        except LostRace as exc:
            log.info("chasing: %s; not climbed", exc)
            return False
        return True

    def _level_due(self, level: int) -> datetime:
        """When a chase reaching ``level`` now climbs on (at the top: is held there)."""
        return self._after_working_days(self.level_days[level - 1])

    async def _hold_at_top(self, chase: Chase) -> None:
        async with self.store.db.transaction() as conn:
            await self.store.chases.hold_at_top(conn, chase)
            await self._history(
                conn,
                chase,
                "chase_top",
                f"第{TOP_LEVEL}级督办期满仍未办理，已是最高一级，不再重复发送",
            )
        log.warning("case %s is still overdue at the top level", chase.case_number)

    # -- reminders ----------------------------------------------------------------------

    async def remind_near(self) -> int:
        """Remind the owner unit's chief, once, of each deadline that is near."""
        now = self.clock.now()
        reminded = 0
        for chase in await self.store.chases.due_by(self._after_working_days(self.remind_days)):
            if chase.reminded_at is not None or chase.due_at <= now:
                continue  # reminded already, or overdue (then it climbs instead)
            recipients = await self._owner_heads(chase)
            key = (chase.case_id, chase.stage, 0)
            if not recipients:
                if key not in self._unsent:
                    log.error("chasing: case %s: nobody can be reminded", chase.case_number)
                    self._unsent.add(key)
                continue
            try:
                async with self.store.db.transaction() as conn:
                    await self.store.chases.remind(conn, chase)
                    queued = await self._enqueue(
                        conn,
                        chase,
                        recipients,
                        "case_deadline_near",
                        "remind",
                        loud=key not in self._unsent,
                    )
                    if not queued:
                        raise LostRace("no reminder could be queued")
                    names = "、".join(f"{o.name}（{o.code}）" for o in queued)
                    stage = STAGE_NAMES[chase.stage]
                    await self._history(
                        conn,
                        chase,
                        "chase_reminded",
                        f"{stage}时限{self._deadline(chase)}将至，已短信提醒{names}",
                    )
            except LostRace as exc:
                log.info("chasing: case %s not reminded: %s", chase.case_number, exc)
                self._unsent.add(key)
                continue
            self._unsent.discard(key)
            reminded += 1
        return reminded

    async def _owner_heads(self, chase: Chase) -> list[Officer]:
        """The reminder's recipients: the heads of the owner unit, else of the first
        level above it with somebody reachable (an unowned case: the supervision office)."""
        rung = await self.ladder.reachable_from(chase.owner_unit_id, 1)
        return list(rung.recipients) if rung else []

    # -- the sweeper --------------------------------------------------------------------

    async def notify_unnotified(self) -> int:
        """Text every chase whose current level was never texted. Returns how many."""
        done = 0
        for chase in await self.store.chases.unnotified():
            rung = await self.ladder.reachable_from(chase.owner_unit_id, chase.level)
            key = (chase.case_id, chase.stage, chase.level)
            async with self.store.db.transaction() as conn:
                current = await self.store.chases.get(conn, chase.case_id, chase.stage)
                if current is None or current.notified_level >= current.level:
                    continue  # texted meanwhile
                if not current.pending or current.level != chase.level:
                    continue  # met or moved meanwhile: the next round sees it
                if rung is not None and rung.level != current.level:
                    rung = None  # nobody at this level now: reported below, not texted
                if rung is not None and await self._text_level(
                    conn, current, rung, loud=key not in self._unsent
                ):
                    done += 1
                    self._unsent.discard(key)
                else:
                    if key not in self._unsent:
                        log.error(
                            "chasing: case %s level %d: nobody could be texted; the sweeper"
                            " tries again",
                            chase.case_number,
                            chase.level,
                        )
                    self._unsent.add(key)
        return done

    # -- texts and history ------------------------------------------------------------

    async def _text_level(
        self, conn: aiosqlite.Connection, chase: Chase, rung: Rung | None, *, loud: bool
    ) -> bool:
        """Text the heads of ``chase``'s level (``rung``), in the caller's transaction, and
        record it; True if the level is now marked texted."""
        if rung is None or rung.level != chase.level:
            return False
        for level, missing in rung.skipped:
            await self._history(
                conn,
                chase,
                "chase_skipped",
                f"第{level}级（{LEVEL_NAMES[level]}）无手机号码在册："
                f"{'、'.join(missing) or '无负责人'}，已越级",
            )
        queued = await self._enqueue(
            conn, chase, list(rung.recipients), "case_overdue", f"level:{chase.level}", loud=loud
        )
        if not queued:
            return False
        names = "、".join(f"{o.name}（{o.code}）" for o in queued)
        await self._history(
            conn, chase, "chase_notified", f"第{chase.level}级督办已短信通知{names}"
        )
        await self.store.chases.mark_notified(conn, self._id(chase), chase.level)
        return True

    async def _enqueue(
        self,
        conn: aiosqlite.Connection,
        chase: Chase,
        recipients: list[Officer],
        template: str,
        step: str,
        *,
        loud: bool,
    ) -> list[Officer]:
        """Queue ``template`` to each recipient in ``conn``; the officers it was queued for."""
        unit = (
            await self.store.units.unit(chase.owner_unit_id)
            if chase.owner_unit_id is not None
            else None
        )
        variables: dict[str, object] = {
            "unit": unit.text_name if unit else "未分派单位",
            "subject": chase.case_subject or "（无标题）",
            "case_ref": chase.case_number,
            "stage": STAGE_NAMES[chase.stage],
            "deadline": self._deadline(chase),
        }
        if template == "case_overdue":
            variables["level"] = chase.level
            variables["holder"] = LEVEL_NAMES[chase.level]
            variables["next"] = self._next_text(chase)
        queued = []
        for officer in recipients:
            assert officer.mobile is not None
            try:
                await self.texter.enqueue(
                    purpose="overdue_reminder",
                    to=officer.mobile,
                    template=template,
                    variables=variables,
                    idempotency_key=(f"chase:{chase.case_id}:{chase.stage}:{step}:{officer.code}"),
                    conn=conn,
                )
            except GatewayError as exc:  # a number or a text the outbox refuses
                log.log(
                    logging.ERROR if loud else logging.DEBUG,
                    "chasing: case %s: no text to %s: %s",
                    chase.case_number,
                    officer.code,
                    exc,
                )
                continue
            queued.append(officer)
        return queued

    def _next_text(self, chase: Chase) -> str:
        up = next_level(chase.level)
        if up is None or chase.level_due_at is None:
            return "已督办至最高一级"
        when = deadline_text(self.clock.local(chase.level_due_at))
        return f"{when}前仍未办理将报{LEVEL_NAMES[up]}"

    def _deadline(self, chase: Chase) -> str:
        return deadline_text(self.clock.local(chase.due_at))

    async def _history(
        self, conn: aiosqlite.Connection, chase: Chase, action: str, note: str
    ) -> None:
        await write_history(conn, chase.case_id, self.clock.now(), ACTOR, action, note)

    @staticmethod
    def _id(chase: Chase) -> int:
        assert chase.id is not None, "a chase read back in its transaction has a row"
        return chase.id
