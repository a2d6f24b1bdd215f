"""A case's lifecycle: assign, accept, answer, close, each by a person of the right unit.

::

    open ──assign──► assigned ──accept──► in_progress ──answer──► resolved ──close──► closed
      └──────────────accept (owner known)──┘

Who may take each step (the acting person is an officer on file, by code):

* **assign** — an officer of the supervision office (``callbacks.supervision_unit``),
  or of the new owner's parent unit (a sub-bureau hands a case to one of its
  stations) when the case has no owner yet or its owner is that unit or one of its
  children. Only an open or assigned case is (re)assigned.
* **accept** — an officer of the owner unit. The citizen is texted the case number,
  the owner, the answer deadline and a PIN for the hotline's status query; only the
  PIN's salted hash is stored.
* **answer** — an officer of the owner unit, once it has accepted. The one answer
  goes to the citizen by text, and a served item of kind ``appeal_answer`` is added
  for the owner unit, so the callback office asks the citizen to rate the answer and
  a dissatisfied rating opens a rectification order the usual way.
* **close** — an officer of the owner unit or of the supervision office, once the
  case is answered.

Every step is checked whole before anything is written, then lands in one write
transaction: the status change (conditional on the case as it was read), its history
line, and the outbox rows and served item it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from gateway.appeals.exceptions import BadSubmission, CaseChangeRefused, NoSuchCase, NotPermitted
from gateway.appeals.service import CaseFile, actor_and_note
from gateway.callbacks.service import (
    CallbackService,
    CheckedItem,
    InvalidServedItem,
    ServedItemInput,
    Texter,
)
from gateway.clock import Clock, utc_iso
from gateway.limits import BadText, check_name, check_note
from gateway.phone import InvalidPhoneNumber, Use, to_e164
from gateway.store import Store
from gateway.store.cases import STATUS_NAMES, Case, CaseChanged, answer_item_reference
from gateway.store.cases import write_history as _history
from gateway.store.units import Officer, Unit

log = logging.getLogger(__name__)

ANSWER_KIND = "appeal_answer"  # gateway/callbacks/catalogue.toml
MAX_ANSWER = 200  # characters: the answer goes to the citizen in one text (templates.toml)
PIN_DIGITS = 6
PIN_ITERATIONS = 100_000
PIN_LIMIT = 5  # wrong PINs in a row before the case's PIN is locked …
PIN_LOCK = timedelta(hours=24)  # … for this long
_PIN_SCHEME = "pbkdf2_sha256"


def new_pin() -> str:
    """A random PIN of :data:`PIN_DIGITS` digits (leading zeros kept)."""
    return f"{secrets.randbelow(10**PIN_DIGITS):0{PIN_DIGITS}d}"


def hash_pin(pin: str, *, iterations: int = PIN_ITERATIONS) -> str:
    """``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``: a salted, slow hash."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return f"{_PIN_SCHEME}${iterations}${salt.hex()}${digest.hex()}"


def pin_matches(pin: str, stored: str) -> bool:
    """Whether ``pin`` is the one ``stored`` (a :func:`hash_pin` value) was made from."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != _PIN_SCHEME:
            return False
        again = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(again.hex(), digest)


class CaseLifecycle:
    """The four steps of a case, over the store, the outbox and the callback service."""

    def __init__(
        self, store: Store, clock: Clock, *, callbacks: CallbackService, texter: Texter
    ) -> None:
        self._store = store
        self._clock = clock
        self._callbacks = callbacks
        self._texter = texter
        self._supervision_code = callbacks.settings.supervision_unit

    # -- the steps ---------------------------------------------------------------------

    async def assign(self, number: str, unit_code: str, *, actor: str, note: str = "") -> Case:
        """Give the case an owner unit; it becomes ``assigned``."""
        actor, note = actor_and_note(actor, note, "assigns")
        case = await self._case(number)
        officer = await self._officer(actor)
        unit = await self._unit(unit_code)
        self._not_merged(case)
        if case.status not in ("open", "assigned"):
            raise CaseChangeRefused(
                case.number,
                f"is {case.status} ({STATUS_NAMES[case.status]}): only an open or assigned"
                " case is assigned",
            )
        if case.status == "assigned" and case.owner_unit_id == unit.id:
            raise CaseChangeRefused(case.number, f"is already assigned to {unit.code}")
        if not await self._in_supervision(officer):
            parent = unit.parent_id
            if parent is None or officer.unit_id != parent:
                raise NotPermitted(
                    case.number,
                    officer.code,
                    "assign",
                    f"only the supervision office ({self._supervision_code}) or the parent"
                    f" unit of {unit.code} may",
                )
            if case.owner_unit_id is not None and case.owner_unit_id != officer.unit_id:
                owner_parent = await self._parent_id(case.owner_unit_id)
                if owner_parent != officer.unit_id:
                    raise NotPermitted(
                        case.number,
                        officer.code,
                        "assign",
                        f"it is held by {case.owner_unit_code}, outside the actor's unit",
                    )
        text = f"{unit.code} {unit.name}（{officer.name}）" + (f"：{note}" if note else "")
        await self._move(case, "assigned", officer, "assigned", text, owner_unit_id=unit.id)
        log.info("case %s assigned to %s by %s", case.number, unit.code, officer.code)
        return await self._case(case.number)

    async def accept(self, number: str, *, actor: str, note: str = "") -> Case:
        """The owner unit accepts the case (``in_progress``); the citizen is texted."""
        actor, note = actor_and_note(actor, note, "accepts")
        case = await self._case(number)
        officer = await self._officer(actor)
        self._not_merged(case)
        if case.status not in ("open", "assigned"):
            raise CaseChangeRefused(
                case.number,
                f"is {case.status} ({STATUS_NAMES[case.status]}): it was accepted already",
            )
        if case.owner_unit_id is None:
            raise CaseChangeRefused(case.number, "has no owner unit yet: assign it first")
        self._of_owner(case, officer, "accept")
        owner = await self._store.units.unit(case.owner_unit_id)
        assert owner is not None
        citizen = _textable(case.citizen_number)
        pin = new_pin() if citizen else None
        pin_hash = await asyncio.to_thread(hash_pin, pin) if pin else None
        now = self._clock.now()
        with _raced(case):
            async with self._store.db.transaction() as conn:
                text = f"{owner.name}（{officer.name}）" + (f"：{note}" if note else "")
                await self._store.cases.move(
                    conn, case, "in_progress", actor=officer.code, action="accepted", note=text
                )
                if citizen is None or pin is None or pin_hash is None:
                    await _history(
                        conn, case.id, now, "system", "note", "群众号码无法接收短信，未发受理短信"
                    )
                else:
                    await self._store.cases.set_pin(conn, case.id, pin_hash)
                    deadline = (
                        self._clock.local(case.deadline).strftime("%m月%d日")
                        if case.deadline
                        else "规定时限"
                    )
                    await self._texter.enqueue(
                        purpose="case",
                        to=citizen,
                        template="case_accepted",
                        variables={
                            "case_number": case.number,
                            "unit": owner.text_name,
                            "deadline": deadline,
                            "pin": pin,
                        },
                        idempotency_key=f"case:{case.id}:accepted",
                        conn=conn,
                    )
        log.info("case %s accepted by %s", case.number, officer.code)
        return await self._case(case.number)

    async def answer(self, number: str, answer: str, *, actor: str) -> Case:
        """The owner unit's one answer (``resolved``): texted to the citizen, and the
        citizen is called back to rate it."""
        actor, _ = actor_and_note(actor, "", "answers")
        answer = _answer_text(answer)
        case = await self._case(number)
        officer = await self._officer(actor)
        self._not_merged(case)
        if case.status in ("open", "assigned"):
            raise CaseChangeRefused(
                case.number, f"is {case.status} ({STATUS_NAMES[case.status]}): accept it first"
            )
        if case.status != "in_progress":
            raise CaseChangeRefused(
                case.number,
                f"is {case.status} ({STATUS_NAMES[case.status]}): it has its one answer already",
            )
        self._of_owner(case, officer, "answer")
        owner = await self._store.units.unit(case.owner_unit_id) if case.owner_unit_id else None
        assert owner is not None
        item = await self._answer_item(case, owner, officer)
        citizen = _textable(case.citizen_number)
        now = self._clock.now()
        with _raced(case):
            async with self._store.db.transaction() as conn:
                await self._store.cases.move(
                    conn, case, "resolved", actor=officer.code, action="answered", note=answer
                )
                item_id = None
                if item is not None:
                    stored = await self._store.callbacks.insert_items(conn, [item], source="appeal")
                    item_id = stored[0].id if stored[0] is not None else None
                if item_id is None:
                    await _history(
                        conn, case.id, now, "system", "note", "群众号码无法回访，答复不回访评价"
                    )
                await self._store.cases.insert_answer(
                    conn,
                    case.id,
                    answer=answer,
                    officer_code=officer.code,
                    unit_id=owner.id,
                    item_id=item_id,
                )
                if citizen is None:
                    await _history(
                        conn, case.id, now, "system", "note", "群众号码无法接收短信，未发答复短信"
                    )
                else:
                    await self._texter.enqueue(
                        purpose="case",
                        to=citizen,
                        template="case_answered",
                        variables={
                            "case_number": case.number,
                            "answer": answer,
                            "unit": owner.text_name,
                        },
                        idempotency_key=f"case:{case.id}:answer",
                        conn=conn,
                    )
        log.info("case %s answered by %s", case.number, officer.code)
        return await self._case(case.number)

    async def close(self, number: str, *, actor: str, note: str = "") -> Case:
        """Close an answered case (the owner unit or the supervision office)."""
        actor, note = actor_and_note(actor, note, "closes")
        case = await self._case(number)
        officer = await self._officer(actor)
        self._not_merged(case)
        if case.status != "resolved":
            why = "it is closed already" if case.status == "closed" else "answer it first"
            raise CaseChangeRefused(
                case.number, f"is {case.status} ({STATUS_NAMES[case.status]}): {why}"
            )
        if officer.unit_id != case.owner_unit_id and not await self._in_supervision(officer):
            raise NotPermitted(
                case.number,
                officer.code,
                "close",
                f"only an officer of the owner unit ({case.owner_unit_code}) or of the"
                f" supervision office ({self._supervision_code}) may",
            )
        text = f"{officer.name}" + (f"：{note}" if note else "")
        await self._move(case, "closed", officer, "closed", text)
        log.info("case %s closed by %s", case.number, officer.code)
        return await self._case(case.number)

    # -- helpers -----------------------------------------------------------------------

    async def _answer_item(self, case: Case, owner: Unit, officer: Officer) -> CheckedItem | None:
        """The served item that calls the citizen back on the answer, checked like any
        other (None when the case has no number that can be called)."""
        if not case.citizen_number:
            return None
        try:
            return await self._callbacks.check(
                ServedItemInput(
                    reference=answer_item_reference(case.number),
                    kind=ANSWER_KIND,
                    unit=owner.code,
                    citizen_number=case.citizen_number,
                    served_at=self._clock.now().isoformat(),
                    citizen_name=case.citizen_name or "",
                    officer=officer.code,
                )
            )
        except InvalidServedItem:
            return None

    async def _move(
        self,
        case: Case,
        status: str,
        officer: Officer,
        action: str,
        note: str,
        *,
        owner_unit_id: int | None = None,
    ) -> None:
        with _raced(case):
            async with self._store.db.transaction() as conn:
                await self._store.cases.move(
                    conn,
                    case,
                    status,
                    actor=officer.code,
                    action=action,
                    note=note,
                    owner_unit_id=owner_unit_id,
                )

    async def _case(self, number: str) -> Case:
        case = await self._store.cases.get(number)
        if case is None:
            raise NoSuchCase(number)
        return case

    async def _officer(self, code: str) -> Officer:
        for officer in await self._store.units.officers():
            if officer.code == code:
                return officer
        raise BadSubmission("actor", f"no officer {code!r} on file")

    async def _unit(self, code: str) -> Unit:
        try:
            code = check_name(code, "unit")
        except BadText as exc:
            raise BadSubmission(exc.field, exc.reason) from None
        if not code:
            raise BadSubmission("unit", "missing: the unit the case goes to")
        unit = await self._store.units.unit_by_code(code)
        if unit is None:
            raise BadSubmission("unit", f"no unit {code!r}")
        return unit

    async def _parent_id(self, unit_id: int) -> int | None:
        unit = await self._store.units.unit(unit_id)
        return unit.parent_id if unit is not None else None

    async def _in_supervision(self, officer: Officer) -> bool:
        unit = await self._store.units.unit_by_code(self._supervision_code)
        return unit is not None and officer.unit_id == unit.id

    @staticmethod
    def _not_merged(case: Case) -> None:
        if case.merged_into is not None:
            raise CaseChangeRefused(
                case.number, f"was merged into {case.merged_into_number}; act on that case"
            )

    @staticmethod
    def _of_owner(case: Case, officer: Officer, step: str) -> None:
        if officer.unit_id != case.owner_unit_id:
            raise NotPermitted(
                case.number,
                officer.code,
                step,
                f"only an officer of the owner unit ({case.owner_unit_code}) may",
            )


def answer_json(found: CaseFile) -> dict[str, Any] | None:
    """A case's one answer and where its callback for a rating stands (None: no answer yet),
    as the API and ``gateway cases show --json`` give it."""
    if found.answer is None:
        return None
    item, rating = found.callback, found.rating
    return {
        "text": found.answer.answer,
        "officer": found.answer.officer_code,
        "answered_at": utc_iso(found.answer.answered_at),
        "callback": None
        if item is None
        else {"reference": item.reference, "status": item.status, "round": item.round},
        "rating": None if rating is None else {"score": rating.score, "reason": rating.reason},
    }


def _answer_text(text: str) -> str:
    try:
        answer = check_note(text, "answer")
    except BadText as exc:
        raise BadSubmission(exc.field, exc.reason) from None
    if not answer:
        raise BadSubmission("answer", "missing: the answer the citizen is texted")
    if len(answer) > MAX_ANSWER:
        raise BadSubmission(
            "answer", f"longer than {MAX_ANSWER} characters ({len(answer)}): it goes by text"
        )
    return answer


def _textable(number: str | None) -> str | None:
    """The citizen's number if a text can reach it (a mobile), else None."""
    if not number:
        return None
    try:
        return to_e164(number, use=Use.TEXT)
    except InvalidPhoneNumber:
        return None


@contextlib.contextmanager
def _raced(case: Case) -> Iterator[None]:
    """A step that lost a race to another change of the case is refused, not applied."""
    try:
        yield
    except CaseChanged as exc:
        raise CaseChangeRefused(case.number, "changed meanwhile, try again") from exc
