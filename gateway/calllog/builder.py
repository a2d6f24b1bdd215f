"""Call records built from AMI events: pure, no I/O.

Feed :meth:`CallLogBuilder.feed` every frame the AMI session receives; it keeps
one record per call, keyed by ``Linkedid`` (the two halves of a Local channel,
queue members and dialled legs all share the caller's ``Linkedid``), and ignores
everything it does not use with one dictionary look-up. :meth:`drain` hands out
the records changed since the last call, for the service to store.

Rules, in the order they are applied:

* **Complete.** A record is complete when the last channel of its ``Linkedid``
  that we saw has hung up. A ``Cdr`` that arrives later (``cdr_manager`` sends
  one per channel, often after the ``Hangup``) updates the complete record; only
  the ``Cdr`` of the call's first channel is used. Events of a complete call that
  arrive later never open a second record.
* **Direction.** ``outbound`` when the gateway originated the call: a channel of
  the call carries ``GATEWAY_CALL_ID`` (the AMI session sets it on every
  Originate) or ``GATEWAY_ORIGIN`` (set through the Originate's ``Variable:``),
  or the gateway announced the Originate's ``ActionID`` with
  :meth:`expect_originate` and its ``OriginateResponse`` names the call, or
  :meth:`mark_outbound` was called. Otherwise ``inbound`` when the call reached
  the hotline: a channel ran in a hotline context (``hotline`` or
  ``hotline-…``), started AsyncAGI, or joined a queue. Otherwise ``internal``
  (seat to seat, a test call to an extension).
* **Disposition.** ``ABANDONED`` when the caller left a queue through
  ``QueueCallerAbandon`` before an agent answered; else the first channel's
  ``Cdr`` disposition when it came (``CONGESTION`` counts as ``FAILED``); else
  ``ANSWERED`` once any channel of the call was up; else the ``DialEnd`` status
  or the ``OriginateResponse`` reason; else the hang-up cause (17 ``BUSY``; 16,
  18, 19, 21 ``NO ANSWER``; anything else ``FAILED``).
* **Times** are the arrival times of the events, read from the injected clock;
  when the first channel's ``Cdr`` arrives its ``StartTime``/``AnswerTime``/
  ``EndTime`` (the PBX's local time, ``cdr_timezone``), ``Duration`` and
  ``BillableSeconds`` replace them.
* **Caller** is the first known ``CallerIDNum`` of the call, in E.164 where it
  parses (default region CN), else as received; ``<unknown>`` is no number.
* **Reconnects.** Events of a call whose ``Newchannel`` we never saw (it began
  before we connected) open a record marked partial. :meth:`resync` with the
  channels alive after a reconnect closes every open record whose call is gone,
  with a note that its end time is approximate, and keeps the others.
* **Attachments** (IVR path, case, recording) come from the flow runner through
  :meth:`attach`, before or after the call's first event.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import unquote

from gateway.ami import names
from gateway.ami.frames import Frame
from gateway.clock import Clock
from gateway.phone import InvalidPhoneNumber, to_e164

INBOUND = "inbound"
OUTBOUND = "outbound"
INTERNAL = "internal"
DIRECTIONS = (INBOUND, OUTBOUND, INTERNAL)

ANSWERED = "ANSWERED"
NO_ANSWER = "NO ANSWER"
BUSY = "BUSY"
FAILED = "FAILED"
ABANDONED = "ABANDONED"
DISPOSITIONS = (ANSWERED, NO_ANSWER, BUSY, FAILED, ABANDONED)

NOTE_PARTIAL = "began before the PBX link was up; start time is approximate"
NOTE_ENDED_OFFLINE = "ended while the PBX link was down; end time is approximate"
NOTE_LINK_LOST = "the PBX link was down during the call; events of that gap may be missing"

_UNKNOWN = ("", "<unknown>", "unknown", "<null>")
_STATE_UP = "6"
_CAUSE_BUSY = frozenset({17})
_CAUSE_NO_ANSWER = frozenset({16, 18, 19, 21})
_DIAL_STATUS = {
    "ANSWER": ANSWERED,
    "BUSY": BUSY,
    "NOANSWER": NO_ANSWER,
    "CANCEL": NO_ANSWER,
    "CONGESTION": FAILED,
    "CHANUNAVAIL": FAILED,
}
_CDR_DISPOSITION = {
    "ANSWERED": ANSWERED,
    "NO ANSWER": NO_ANSWER,
    "BUSY": BUSY,
    "FAILED": FAILED,
    "CONGESTION": FAILED,
}
_ORIGINATE_REASON = {
    names.REASON_NO_SUCH_NUMBER: FAILED,
    names.REASON_NO_ANSWER: NO_ANSWER,
    names.REASON_RING_TIMEOUT: NO_ANSWER,
    names.REASON_ANSWERED: ANSWERED,
    names.REASON_BUSY: BUSY,
    names.REASON_CONGESTION: FAILED,
}
# The events the builder reads; give them to the session's add_listener(events=...).
EVENTS = frozenset(
    {
        names.EV_NEWCHANNEL,
        names.EV_NEWSTATE,
        names.EV_NEWEXTEN,
        names.EV_VARSET,
        names.EV_DIAL_BEGIN,
        names.EV_DIAL_END,
        names.EV_QUEUE_CALLER_JOIN,
        names.EV_QUEUE_CALLER_LEAVE,
        names.EV_QUEUE_CALLER_ABANDON,
        names.EV_AGENT_CALLED,
        names.EV_AGENT_CONNECT,
        names.EV_AGENT_COMPLETE,
        names.EV_DTMF_END,
        names.EV_MIX_MONITOR_START,
        names.EV_ASYNC_AGI_START,
        names.EV_ORIGINATE_RESPONSE,
        names.EV_HANGUP,
        names.EV_CDR,
    }
)
_CDR_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_DIAL_CHARS = frozenset("+0123456789*#")


@dataclass(frozen=True)
class CallRecord:
    """One call as the store keeps it; times are UTC."""

    pbx: str
    linkedid: str
    uniqueid: str
    direction: str
    caller_number: str | None
    caller_name: str | None
    dialled_number: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    billable_s: float | None
    disposition: str | None
    hangup_cause: int | None
    hangup_cause_text: str | None
    ivr_path: tuple[str, ...]
    queue: str | None
    queue_wait_s: float | None
    agent: str | None
    recording: str | None
    case_id: int | None
    dtmf: str
    complete: bool
    partial: bool
    note: str | None


class _Attachment:
    __slots__ = ("case_id", "ivr_path", "recording")

    def __init__(self) -> None:
        self.ivr_path: tuple[str, ...] | None = None
        self.case_id: int | None = None
        self.recording: str | None = None


class _Call:
    """What we know of one call while it lives (and a while after)."""

    __slots__ = (
        "abandoned",
        "agent",
        "agent_connected",
        "answered_at",
        "attachment",
        "caller_name",
        "caller_number",
        "cause",
        "cause_text",
        "cdr",
        "channels",
        "complete",
        "dial_status",
        "dialled_number",
        "dtmf",
        "ended_at",
        "hotline",
        "linkedid",
        "notes",
        "originate_reason",
        "outbound",
        "partial",
        "queue",
        "queue_joined_at",
        "queue_wait",
        "recording",
        "started_at",
        "uniqueid",
        "uniqueids",
    )

    def __init__(self, linkedid: str, uniqueid: str, now: datetime, *, partial: bool) -> None:
        self.linkedid = linkedid
        self.uniqueid = uniqueid
        self.uniqueids: set[str] = set()  # every channel seen
        self.channels: set[str] = set()  # channels still up
        self.started_at = now
        self.answered_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.caller_number: str | None = None
        self.caller_name: str | None = None
        self.dialled_number: str | None = None
        self.cause: int | None = None
        self.cause_text: str | None = None
        self.dial_status: str | None = None
        self.originate_reason: int | None = None
        self.outbound = False
        self.hotline = False
        self.queue: str | None = None
        self.queue_joined_at: datetime | None = None
        self.queue_wait: float | None = None
        self.agent: str | None = None
        self.agent_connected = False
        self.abandoned = False
        self.recording: str | None = None
        self.dtmf = ""
        self.cdr: _Cdr | None = None
        self.attachment: _Attachment | None = None
        self.complete = False
        self.partial = partial
        self.notes: list[str] = [NOTE_PARTIAL] if partial else []


@dataclass(frozen=True)
class _Cdr:
    start: datetime | None
    answer: datetime | None
    end: datetime | None
    duration: float | None
    billable: float | None
    disposition: str | None


Handler = Callable[[Frame], bool]


class CallLogBuilder:
    """Builds call records from AMI events; see the module docstring for the rules.

    ``clock`` gives the arrival time of each event. ``cdr_timezone`` is the PBX's
    local timezone, in which ``Cdr`` times are written. ``keep_closed`` bounds how
    many complete records are remembered for late ``Cdr`` events and stragglers.
    """

    def __init__(
        self,
        pbx: str,
        clock: Clock,
        *,
        hotline_contexts: Collection[str] = ("hotline",),
        cdr_timezone: tzinfo = UTC,
        keep_closed: int = 10_000,
    ) -> None:
        self.pbx = pbx
        self._clock = clock
        self._hotline = tuple(hotline_contexts)
        self._hotline_prefixes = tuple(f"{c}-" for c in self._hotline)
        self._cdr_tz = cdr_timezone
        self._keep_closed = keep_closed
        self._open: dict[str, _Call] = {}
        self._closed: OrderedDict[str, _Call] = OrderedDict()
        self._by_uniqueid: dict[str, str] = {}  # uniqueid -> linkedid, open and closed calls
        self._dirty: set[str] = set()
        self._evicted: list[CallRecord] = []  # changed records forgotten before a drain
        self._pending: dict[str, _Attachment] = {}  # attachments for calls not seen yet
        self._originates: set[str] = set()  # ActionIDs of our own Originates
        self._outbound_ids: set[str] = set()  # uniqueids/linkedids announced before their events
        self._handlers: dict[str, Handler] = {
            names.EV_NEWCHANNEL: self._on_newchannel,
            names.EV_NEWSTATE: self._on_newstate,
            names.EV_NEWEXTEN: self._on_newexten,
            names.EV_VARSET: self._on_varset,
            names.EV_DIAL_BEGIN: self._on_dial_begin,
            names.EV_DIAL_END: self._on_dial_end,
            names.EV_QUEUE_CALLER_JOIN: self._on_queue_join,
            names.EV_QUEUE_CALLER_LEAVE: self._on_queue_leave,
            names.EV_QUEUE_CALLER_ABANDON: self._on_queue_abandon,
            names.EV_AGENT_CALLED: self._on_agent_called,
            names.EV_AGENT_CONNECT: self._on_agent_connect,
            names.EV_AGENT_COMPLETE: self._on_agent_complete,
            names.EV_DTMF_END: self._on_dtmf_end,
            names.EV_MIX_MONITOR_START: self._on_channel_event,
            names.EV_ASYNC_AGI_START: self._on_async_agi_start,
            names.EV_ORIGINATE_RESPONSE: self._on_originate_response,
            names.EV_HANGUP: self._on_hangup,
            names.EV_CDR: self._on_cdr,
        }
        self._vars = frozenset(
            {
                names.VAR_MIXMONITOR_FILENAME,
                names.VAR_GATEWAY_ORIGIN,
                names.VAR_GATEWAY_CALL_ID,
                names.VAR_GATEWAY_DIALLED,
            }
        )

    # ------------------------------------------------------------------ input

    def feed(self, frame: Frame) -> bool:
        """Take one frame; return True if a record changed. Unknown frames cost one look-up."""
        event = frame.get(names.H_EVENT)
        if event is None:
            return False
        handler = self._handlers.get(event)
        if handler is None:
            return False
        return handler(frame)

    def feed_all(self, frames: Iterable[object]) -> int:
        """Feed every :class:`Frame` of ``frames`` (parser errors are skipped); return changes."""
        changed = 0
        for frame in frames:
            if isinstance(frame, Frame) and self.feed(frame):
                changed += 1
        return changed

    def expect_originate(self, action_id: str) -> None:
        """The gateway sent an Originate with this ActionID: its call is outbound."""
        self._originates.add(action_id)

    def mark_outbound(self, call_id: str) -> None:
        """Mark the call with this Linkedid or Uniqueid outbound (now or when it appears)."""
        call = self._find(call_id)
        if call is None:
            self._outbound_ids.add(call_id)
            return
        if not call.outbound:
            call.outbound = True
            self._dirty.add(call.linkedid)

    def attach(
        self,
        linkedid: str,
        *,
        ivr_path: Sequence[str] | None = None,
        case_id: int | None = None,
        recording: str | None = None,
    ) -> None:
        """Attach what the flow runner knows: the IVR path (replaces the previous one),
        the case opened for the call, a voice message's file. Works before the call's
        first event (kept until it comes) and after the record is complete."""
        call = self._find(linkedid)
        attachment = call.attachment if call is not None else self._pending.get(linkedid)
        if attachment is None:
            attachment = _Attachment()
        if ivr_path is not None:
            attachment.ivr_path = tuple(str(step) for step in ivr_path)
        if case_id is not None:
            attachment.case_id = case_id
        if recording is not None:
            attachment.recording = recording
        if call is None:
            self._pending[linkedid] = attachment
            if len(self._pending) > self._keep_closed:
                self._pending.pop(next(iter(self._pending)))
        else:
            call.attachment = attachment
            self._dirty.add(call.linkedid)

    def resync(self, live: Iterable[str | Frame]) -> list[str]:
        """After a reconnect: ``live`` holds the Uniqueids or Linkedids of the channels
        alive now, or the ``CoreShowChannel`` frames that list them.

        Every open record whose call is not live any more is completed with a note;
        the others stay open with a note that events may be missing (their channels
        that are gone are forgotten). A live
        channel of a call we did not know opens a partial record. Returns the
        Linkedids of the records completed.
        """
        now = self._clock.now()
        ids: set[str] = set()
        frames: list[Frame] = []
        for item in live:
            if isinstance(item, Frame):
                frames.append(item)
                for key in (names.H_UNIQUEID, names.H_LINKEDID):
                    value = item.get(key)
                    if value:
                        ids.add(value)
            elif item:
                ids.add(item)
        closed: list[str] = []
        for linkedid, call in list(self._open.items()):
            alive = call.uniqueids & ids
            if alive:
                if NOTE_LINK_LOST not in call.notes:
                    call.notes.append(NOTE_LINK_LOST)
                    self._dirty.add(linkedid)
                if alive != call.channels:
                    call.channels = set(alive)
                    self._dirty.add(linkedid)
            elif linkedid not in ids:
                call.notes.append(NOTE_ENDED_OFFLINE)
                self._complete(call, now)
                closed.append(linkedid)
        for frame in frames:
            channel_id = frame.get(names.H_UNIQUEID)
            call_id = frame.get(names.H_LINKEDID) or channel_id
            if not channel_id or not call_id or call_id in self._closed:
                continue
            known = self._open.get(call_id)
            if known is None:
                known = self._start(call_id, call_id, now, partial=True)
                age = _hms_seconds(frame.get(names.H_DURATION))
                if age is not None:
                    known.started_at = now - timedelta(seconds=age)
            self._join(known, channel_id, frame)
            if frame.get(names.H_CHANNEL_STATE) == _STATE_UP and known.answered_at is None:
                known.answered_at = known.started_at
        return closed

    # ----------------------------------------------------------------- output

    def drain(self) -> list[CallRecord]:
        """The records changed since the last drain (open and complete ones)."""
        out, self._evicted = self._evicted, []
        for linkedid in self._dirty:
            call = self._open.get(linkedid) or self._closed.get(linkedid)
            if call is not None:
                out.append(self._snapshot(call))
        self._dirty.clear()
        return out

    @property
    def changed(self) -> int:
        """How many records changed since the last drain."""
        return len(self._dirty) + len(self._evicted)

    def record(self, linkedid: str) -> CallRecord | None:
        """The current state of the call with this Linkedid, if still remembered."""
        call = self._open.get(linkedid) or self._closed.get(linkedid)
        return None if call is None else self._snapshot(call)

    def open_records(self) -> list[CallRecord]:
        return [self._snapshot(c) for c in self._open.values()]

    def complete_records(self) -> list[CallRecord]:
        return [self._snapshot(c) for c in self._closed.values()]

    # --------------------------------------------------------------- handlers

    def _call(self, frame: Frame, *, create: bool = True) -> _Call | None:
        """The open call this channel event belongs to, started partial if new."""
        uniqueid = frame.get(names.H_UNIQUEID)
        if not uniqueid:
            return None
        linkedid = frame.get(names.H_LINKEDID) or uniqueid
        call = self._open.get(linkedid)
        if call is None:
            if not create or linkedid in self._closed:
                return None
            call = self._start(linkedid, linkedid, self._clock.now(), partial=True)
        if uniqueid not in call.uniqueids:
            self._join(call, uniqueid, frame)
        elif call.caller_number is None or call.caller_name is None:
            self._learn_caller(call, frame)
        return call

    def _start(self, linkedid: str, uniqueid: str, now: datetime, *, partial: bool) -> _Call:
        call = _Call(linkedid, uniqueid, now, partial=partial)
        self._open[linkedid] = call
        attachment = self._pending.pop(linkedid, None)
        if attachment is not None:
            call.attachment = attachment
        if linkedid in self._outbound_ids:
            self._outbound_ids.discard(linkedid)
            call.outbound = True
        self._dirty.add(linkedid)
        return call

    def _join(self, call: _Call, uniqueid: str, frame: Frame) -> None:
        call.uniqueids.add(uniqueid)
        call.channels.add(uniqueid)
        self._by_uniqueid[uniqueid] = call.linkedid
        if uniqueid in self._outbound_ids:
            self._outbound_ids.discard(uniqueid)
            call.outbound = True
        if not call.hotline:
            self._check_context(call, frame.get(names.H_CONTEXT))
        if call.dialled_number is None and uniqueid == call.uniqueid:
            exten = frame.get(names.H_EXTEN)
            if exten and exten != "s" and exten not in _UNKNOWN:
                call.dialled_number = _number(exten)
        self._learn_caller(call, frame)

    def _learn_caller(self, call: _Call, frame: Frame) -> None:
        if call.caller_number is None:
            number = frame.get(names.H_CALLER_ID_NUM)
            if number and number not in _UNKNOWN:
                call.caller_number = _number(number)
        if call.caller_name is None:
            name = frame.get(names.H_CALLER_ID_NAME)
            if name and name not in _UNKNOWN:
                call.caller_name = name

    def _check_context(self, call: _Call, context: str | None) -> None:
        if context and (context in self._hotline or context.startswith(self._hotline_prefixes)):
            call.hotline = True

    def _on_newchannel(self, frame: Frame) -> bool:
        uniqueid = frame.get(names.H_UNIQUEID)
        if not uniqueid:
            return False
        linkedid = frame.get(names.H_LINKEDID) or uniqueid
        if linkedid in self._closed:
            return False
        call = self._open.get(linkedid)
        if call is None:
            # A call we see from its first channel is whole; any other channel
            # first means the call began before we connected.
            call = self._start(linkedid, uniqueid, self._clock.now(), partial=linkedid != uniqueid)
        if uniqueid not in call.uniqueids:
            self._join(call, uniqueid, frame)
        if frame.get(names.H_CHANNEL_STATE) == _STATE_UP and call.answered_at is None:
            call.answered_at = self._clock.now()
        self._dirty.add(linkedid)
        return True

    def _on_channel_event(self, frame: Frame) -> bool:
        call = self._call(frame)
        if call is None:
            return False
        self._dirty.add(call.linkedid)
        return True

    def _on_newstate(self, frame: Frame) -> bool:
        call = self._call(frame)
        if call is None:
            return False
        if frame.get(names.H_CHANNEL_STATE) == _STATE_UP and call.answered_at is None:
            call.answered_at = self._clock.now()
        self._dirty.add(call.linkedid)
        return True

    def _on_newexten(self, frame: Frame) -> bool:
        linkedid = frame.get(names.H_LINKEDID)
        call = self._open.get(linkedid) if linkedid else None
        if call is None:
            # A call we did not see begin: open its partial record now.
            call = self._call(frame)
            if call is None:
                return False
            self._dirty.add(call.linkedid)
            return True
        if call.hotline:
            return False
        self._check_context(call, frame.get(names.H_CONTEXT))
        if call.hotline:
            self._dirty.add(call.linkedid)
            return True
        return False

    def _on_varset(self, frame: Frame) -> bool:
        variable = frame.get(names.H_VARIABLE)
        if variable not in self._vars:
            return False
        call = self._call(frame)
        if call is None:
            return False
        value = (frame.get(names.H_VALUE) or "").strip()
        if not value:
            return False
        if variable == names.VAR_MIXMONITOR_FILENAME:
            call.recording = value
        elif variable in (names.VAR_GATEWAY_ORIGIN, names.VAR_GATEWAY_CALL_ID):
            call.outbound = True
        else:
            call.dialled_number = _number(value)
        self._dirty.add(call.linkedid)
        return True

    def _on_dial_begin(self, frame: Frame) -> bool:
        # An Originate's first leg has no calling channel: only Dest* headers.
        call = self._call(frame) if frame.get(names.H_UNIQUEID) else self._dest_call(frame)
        if call is None:
            return False
        # Only the caller's own dial names the number called (a queue's dial names a seat).
        calling = frame.get(names.H_UNIQUEID)
        if call.dialled_number is None and calling in (None, call.uniqueid):
            target = _dial_target(frame.get(names.H_DIAL_STRING))
            if target:
                call.dialled_number = _number(target)
        self._dirty.add(call.linkedid)
        return True

    def _on_dial_end(self, frame: Frame) -> bool:
        call = self._call(frame) if frame.get(names.H_UNIQUEID) else self._dest_call(frame)
        if call is None:
            return False
        status = frame.get(names.H_DIAL_STATUS)
        if status:
            call.dial_status = status
        self._dirty.add(call.linkedid)
        return True

    def _dest_call(self, frame: Frame) -> _Call | None:
        linkedid = frame.get(names.H_DEST_LINKEDID) or frame.get(names.H_DEST_UNIQUEID)
        return self._open.get(linkedid) if linkedid else None

    def _on_queue_join(self, frame: Frame) -> bool:
        call = self._call(frame)
        if call is None:
            return False
        call.hotline = True
        call.queue = frame.get(names.H_QUEUE) or call.queue
        call.queue_joined_at = self._clock.now()
        self._dirty.add(call.linkedid)
        return True

    def _end_wait(self, call: _Call, frame: Frame) -> None:
        if call.queue_wait is not None:
            return
        waited = 0.0
        if call.queue_joined_at is not None:
            waited = (self._clock.now() - call.queue_joined_at).total_seconds()
        hold = _float(frame.get(names.H_HOLD_TIME))
        if hold is not None and hold > waited:
            waited = hold  # Asterisk's count, when we joined the wait halfway
        call.queue_wait = waited

    def _on_queue_leave(self, frame: Frame) -> bool:
        call = self._call(frame)
        if call is None:
            return False
        call.queue = call.queue or frame.get(names.H_QUEUE)
        self._end_wait(call, frame)
        self._dirty.add(call.linkedid)
        return True

    def _on_queue_abandon(self, frame: Frame) -> bool:
        call = self._call(frame)
        if call is None:
            return False
        call.queue = call.queue or frame.get(names.H_QUEUE)
        if not call.agent_connected:
            call.abandoned = True
        self._end_wait(call, frame)
        self._dirty.add(call.linkedid)
        return True

    def _on_agent_called(self, frame: Frame) -> bool:
        call = self._call(frame)
        if call is None:
            return False
        call.hotline = True
        call.queue = call.queue or frame.get(names.H_QUEUE)
        self._dirty.add(call.linkedid)
        return True

    def _on_agent_connect(self, frame: Frame) -> bool:
        call = self._call(frame)
        if call is None:
            return False
        call.hotline = True
        call.agent_connected = True
        call.abandoned = False
        call.queue = call.queue or frame.get(names.H_QUEUE)
        call.agent = _agent(frame) or call.agent
        call.queue_wait = None  # the wait ends at the connect, not at an earlier leave
        self._end_wait(call, frame)
        self._dirty.add(call.linkedid)
        return True

    def _on_agent_complete(self, frame: Frame) -> bool:
        call = self._call(frame)
        if call is None:
            return False
        call.agent_connected = True
        call.queue = call.queue or frame.get(names.H_QUEUE)
        call.agent = call.agent or _agent(frame)
        self._dirty.add(call.linkedid)
        return True

    def _on_dtmf_end(self, frame: Frame) -> bool:
        if frame.get(names.H_DIRECTION) != "Received":
            return False
        call = self._call(frame)
        if call is None:
            return False
        digit = frame.get(names.H_DIGIT) or ""
        if len(digit) == 1:
            call.dtmf += digit
        self._dirty.add(call.linkedid)
        return True

    def _on_async_agi_start(self, frame: Frame) -> bool:
        call = self._call(frame)
        if call is None:
            return False
        call.hotline = True
        if call.dialled_number is None:
            env = _agi_env(frame.get(names.H_ENV))
            for key in ("agi_dnid", "agi_extension"):
                value = env.get(key)
                if value and value != "s" and value not in _UNKNOWN:
                    call.dialled_number = _number(value)
                    break
        self._dirty.add(call.linkedid)
        return True

    def _on_originate_response(self, frame: Frame) -> bool:
        action_id = frame.get(names.H_ACTION_ID)
        if action_id is None or action_id not in self._originates:
            return False
        self._originates.discard(action_id)
        uniqueid = frame.get(names.H_UNIQUEID)
        if not uniqueid or uniqueid in _UNKNOWN:
            return False  # failed before a channel existed: no call to log
        call = self._find(uniqueid)
        if call is None:
            self._outbound_ids.add(uniqueid)
            return False
        call.outbound = True
        reason = _int(frame.get(names.H_REASON))
        if reason is not None:
            call.originate_reason = reason
        self._dirty.add(call.linkedid)
        return True

    def _on_hangup(self, frame: Frame) -> bool:
        call = self._call(frame)
        if call is None:
            return False
        uniqueid = frame[names.H_UNIQUEID]
        cause = _int(frame.get(names.H_CAUSE))
        # The first channel's cause is the call's; a later leg fills a gap or a 0.
        if uniqueid == call.uniqueid or not call.cause:
            if cause is not None and (cause != 0 or call.cause is None):
                call.cause = cause
                call.cause_text = frame.get(names.H_CAUSE_TXT) or None
        call.channels.discard(uniqueid)
        if not call.channels:
            self._complete(call, self._clock.now())
        self._dirty.add(call.linkedid)
        return True

    def _on_cdr(self, frame: Frame) -> bool:
        uniqueid = frame.get(names.H_CDR_UNIQUEID) or frame.get(names.H_UNIQUEID)
        if not uniqueid:
            return False
        linkedid = self._by_uniqueid.get(uniqueid)
        if linkedid is None:
            return False
        call = self._open.get(linkedid) or self._closed.get(linkedid)
        if call is None or uniqueid != call.uniqueid:
            return False
        disposition = frame.get(names.H_CDR_DISPOSITION)
        call.cdr = _Cdr(
            start=self._cdr_time(frame.get(names.H_CDR_START_TIME)),
            answer=self._cdr_time(frame.get(names.H_CDR_ANSWER_TIME)),
            end=self._cdr_time(frame.get(names.H_CDR_END_TIME)),
            duration=_float(frame.get(names.H_DURATION)),
            billable=_float(frame.get(names.H_CDR_BILLABLE_SECONDS)),
            disposition=_CDR_DISPOSITION.get(disposition or ""),
        )
        if call.caller_number is None:
            source = frame.get(names.H_CDR_SOURCE)
            if source and source not in _UNKNOWN:
                call.caller_number = _number(source)
        self._dirty.add(linkedid)
        return True

    # ---------------------------------------------------------------- helpers

    def _find(self, call_id: str) -> _Call | None:
        linkedid = self._by_uniqueid.get(call_id, call_id)
        return self._open.get(linkedid) or self._closed.get(linkedid)

    def _complete(self, call: _Call, now: datetime) -> None:
        call.complete = True
        call.ended_at = now
        call.channels.clear()
        del self._open[call.linkedid]
        self._closed[call.linkedid] = call
        self._dirty.add(call.linkedid)
        while len(self._closed) > self._keep_closed:
            _, old = self._closed.popitem(last=False)
            if old.linkedid in self._dirty:
                self._dirty.discard(old.linkedid)
                self._evicted.append(self._snapshot(old))
            for uniqueid in old.uniqueids:
                if self._by_uniqueid.get(uniqueid) == old.linkedid:
                    del self._by_uniqueid[uniqueid]

    def _cdr_time(self, text: str | None) -> datetime | None:
        if not text:
            return None
        try:
            local = datetime.strptime(text, _CDR_TIME_FORMAT)
        except ValueError:
            return None
        return local.replace(tzinfo=self._cdr_tz).astimezone(UTC)

    def _snapshot(self, call: _Call) -> CallRecord:
        cdr = call.cdr
        started = call.started_at
        answered = call.answered_at
        ended = call.ended_at
        duration: float | None = None
        billable: float | None = None
        if ended is not None:
            duration = max(0.0, (ended - started).total_seconds())
            billable = max(0.0, (ended - answered).total_seconds()) if answered else 0.0
        if cdr is not None:
            started = cdr.start or started
            answered = cdr.answer or (answered if cdr.disposition != NO_ANSWER else None)
            ended = cdr.end or ended
            duration = cdr.duration if cdr.duration is not None else duration
            billable = cdr.billable if cdr.billable is not None else billable
        attachment = call.attachment
        recording = call.recording
        if attachment is not None and attachment.recording is not None:
            recording = attachment.recording
        return CallRecord(
            pbx=self.pbx,
            linkedid=call.linkedid,
            uniqueid=call.uniqueid,
            direction=self._direction(call),
            caller_number=call.caller_number,
            caller_name=call.caller_name,
            dialled_number=call.dialled_number,
            started_at=started,
            answered_at=answered,
            ended_at=ended,
            duration_s=duration,
            billable_s=billable,
            disposition=self._disposition(call) if call.complete else None,
            hangup_cause=call.cause,
            hangup_cause_text=call.cause_text,
            ivr_path=(attachment.ivr_path or ()) if attachment is not None else (),
            queue=call.queue,
            queue_wait_s=call.queue_wait,
            agent=call.agent,
            recording=recording,
            case_id=attachment.case_id if attachment is not None else None,
            dtmf=call.dtmf,
            complete=call.complete,
            partial=call.partial,
            note="; ".join(call.notes) or None,
        )

    @staticmethod
    def _direction(call: _Call) -> str:
        if call.outbound:
            return OUTBOUND
        if call.hotline:
            return INBOUND
        return INTERNAL

    @staticmethod
    def _disposition(call: _Call) -> str:
        if call.abandoned and not call.agent_connected:
            return ABANDONED
        if call.cdr is not None and call.cdr.disposition is not None:
            return call.cdr.disposition
        if call.answered_at is not None:
            return ANSWERED
        if call.dial_status in _DIAL_STATUS:
            return _DIAL_STATUS[call.dial_status]
        if call.originate_reason in _ORIGINATE_REASON:
            return _ORIGINATE_REASON[call.originate_reason]
        if call.cause in _CAUSE_BUSY:
            return BUSY
        if call.cause in _CAUSE_NO_ANSWER:
            return NO_ANSWER
        return FAILED


def _number(raw: str) -> str:
    """E.164 where it parses, else the number as received."""
    try:
        return to_e164(raw)
    except InvalidPhoneNumber:
        return raw


def _agent(frame: Frame) -> str | None:
    return frame.get(names.H_MEMBER_NAME) or frame.get(names.H_INTERFACE) or None


def _dial_target(dial_string: str | None) -> str | None:
    """The number a dial string reaches, if it names one.

    ``PJSIP/trunk/13912345678`` and ``PJSIP/13912345678@trunk`` → ``13912345678``;
    ``Local/s@queue-agent/n`` and ``s@ctx`` name no number → None.
    """
    if not dial_string:
        return None
    for segment in dial_string.split("/"):
        target = segment.split("@", 1)[0]
        if target and all(ch in _DIAL_CHARS for ch in target):
            return target
    return None


def _agi_env(encoded: str | None) -> dict[str, str]:
    env: dict[str, str] = {}
    if not encoded:
        return env
    for line in unquote(encoded).splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            env[key] = value
    return env


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _hms_seconds(text: str | None) -> float | None:
    """``00:01:05`` → 65.0, as ``CoreShowChannel`` writes a channel's age."""
    if not text:
        return None
    parts = text.split(":")
    try:
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + float(part)
    except ValueError:
        return None
    return seconds
