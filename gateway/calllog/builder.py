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
* **Direction.** ``outbound`` when the gateway originated the call: its
  ``OriginateResponse`` (sent for every Async Originate, class ``call``) names a
  callback context or an ``ActionID`` announced with :meth:`expect_originate`,
  or a channel of the call is seen in a callback context (any channel event or
  CEL), or carries ``GATEWAY_CALL_ID`` / ``GATEWAY_ORIGIN`` (only seen with the
  ``dialplan`` read class), or :meth:`mark_outbound` was called. The
  Originate's ``ActionID`` is kept as ``originate_id``: the callback attempt
  stores the same id. Otherwise ``inbound`` when the call reached
  the hotline: a channel ran in a hotline context (``hotline`` or
  ``hotline-…``), started AsyncAGI, or joined a queue. Otherwise ``internal``
  (seat to seat, a test call to an extension).
* **Disposition.** ``ABANDONED`` when the caller left a queue through
  ``QueueCallerAbandon`` before an agent answered; else the first channel's
  ``Cdr`` disposition when it came (``CONGESTION`` counts as ``FAILED``); else
  ``ANSWERED`` once any channel of the call was up; else the ``DialEnd`` status
  or the ``OriginateResponse`` reason; else the hang-up cause (17 ``BUSY``; 16,
  18, 19, 21 ``NO ANSWER``; anything else ``FAILED``).
* **Times** come from facts that carry their zone: an event's ``Timestamp``
  header (``timestampevents = yes``), else its arrival time on the injected
  clock; a call starts no later than the epoch in its ``Linkedid``. ``Cdr`` and
  CEL times are the PBX host's local time: they are read with the PBX's UTC
  offset, learned from the events themselves (a channel's first ``Cdr``
  ``StartTime`` and its CEL ``CHAN_START`` are its creation, whose epoch is in
  its ``Uniqueid``), else ``cdr_timezone`` (the ``pbx.<name>.timezone``
  setting), else UTC. Asterisk sends one ``Cdr`` per bridge segment of the
  call's first channel: the record spans them all (first start, first answer,
  last end, billable seconds summed). ``talk_s`` is the time with seats
  (``AgentComplete`` ``TalkTime``, summed).
* **Recording**: a ``MixMonitorStart`` in a hotline context names the file by
  the dialplan's rule (``recording_rule``: the PBX's local date and the
  channel's Uniqueid), unless ``MIXMONITOR_FILENAME`` or the flow runner says.
* **Ended by** ``gateway`` (a soft hang-up of a channel in AsyncAGI, e.g. AGI
  ``HANGUP`` with ``Cause: 32``, or CEL ``hangupsource`` ``dialplan/agi``),
  ``seat`` (a seat's channel is asked to hang up first, and the call does not
  go on), ``caller`` (a hang-up request from the far end: ``HangupRequest`` on
  the call's channel, or any request on its other channels), or ``pbx`` (the
  dialplan ended the call's own channel).
* **Caller** is the first known ``CallerIDNum`` of the call, in E.164 where it
  parses (default region CN), else as received; ``<unknown>`` is no number.
* **Reconnects.** Events of a call whose ``Newchannel`` we never saw (it began
  before we connected) open a record marked partial. :meth:`resync` with the
  channels alive after a reconnect closes every open record whose call is gone,
  with a note that its end time is approximate, and keeps the others. A channel
  whose ``Hangup`` was already seen stays gone even if the list names it
  (Asterisk sends events raised during ``CoreShowChannels`` after its list).
* **Attachments** (IVR path, case, recording) come from the flow runner through
  :meth:`attach`, before or after the call's first event.
"""

from __future__ import annotations

import json
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
NOTE_CLOSED_AT_RESYNC = (
    "not live at the PBX after the gateway (re)connected; end time is the last update"
)

ENDED_BY_GATEWAY = "gateway"
ENDED_BY_CALLER = "caller"
ENDED_BY_SEAT = "seat"
ENDED_BY_PBX = "pbx"
ENDED_BY = (ENDED_BY_GATEWAY, ENDED_BY_CALLER, ENDED_BY_SEAT, ENDED_BY_PBX)
# The dialplan's MixMonitor file name (asterisk/extensions.conf, [hotline]):
# strftime fields in the PBX's local time, {uniqueid} of the channel recorded.
RECORDING_RULE = "hotline/%Y/%m/%d/{uniqueid}.wav"

_UNKNOWN = ("", "<unknown>", "unknown", "<null>")
_STATE_UP = "6"
_OFFSET_QUANTUM = 900  # UTC offsets are whole quarter hours
_OFFSET_SLACK = 2.0  # seconds between a channel's creation and its first Cdr/CEL time
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
        names.EV_HANGUP_REQUEST,
        names.EV_SOFT_HANGUP_REQUEST,
        names.EV_ASYNC_AGI_END,
        names.EV_CDR,
        names.EV_CEL,
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
    talk_s: float | None = None
    ended_by: str | None = None
    originate_id: str | None = None


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
        "agi",
        "answered_at",
        "attachment",
        "caller_name",
        "caller_number",
        "cause",
        "cause_text",
        "cdrs",
        "channels",
        "complete",
        "dial_status",
        "dialled_number",
        "dtmf",
        "ended_at",
        "ended_by",
        "gone",
        "hotline",
        "linkedid",
        "monitor",
        "notes",
        "offset",
        "originate_id",
        "originate_reason",
        "outbound",
        "partial",
        "queue",
        "queue_joined_at",
        "queue_wait",
        "recording",
        "seats",
        "started_at",
        "talk",
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
        self.cdrs: list[_Cdr] = []  # the first channel's Cdr segments, in arrival order
        self.offset: timedelta | None = None  # the PBX's UTC offset, learned from this call
        self.gone: set[str] = set()  # channels whose Hangup we saw
        self.agi: set[str] = set()  # channels in AsyncAGI now
        self.seats: set[str] = set()  # seat channels (Local halves by their common name)
        self.talk: float | None = None
        self.ended_by: str | None = None
        self.monitor: tuple[str, datetime] | None = None  # MixMonitorStart: uniqueid, time
        self.originate_id: str | None = None
        self.attachment: _Attachment | None = None
        self.complete = False
        self.partial = partial
        self.notes: list[str] = [NOTE_PARTIAL] if partial else []


@dataclass(frozen=True)
class _Cdr:
    """One Cdr segment; times as the PBX wrote them (local, naive)."""

    start: datetime | None
    answer: datetime | None
    end: datetime | None
    duration: float | None
    billable: float | None
    disposition: str | None


@dataclass(frozen=True)
class _Merged:
    """A call's Cdr segments as one span, in UTC."""

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
    local timezone as configured (``None``: not set), used for ``Cdr`` times until
    the PBX's offset is learned from its events. ``callback_contexts`` are where
    the gateway's Originates land. ``keep_closed`` bounds how many complete
    records are remembered for late ``Cdr`` events and stragglers.
    """

    def __init__(
        self,
        pbx: str,
        clock: Clock,
        *,
        hotline_contexts: Collection[str] = ("hotline",),
        callback_contexts: Collection[str] = ("callback",),
        cdr_timezone: tzinfo | None = None,
        recording_rule: str = RECORDING_RULE,
        keep_closed: int = 10_000,
    ) -> None:
        self.pbx = pbx
        self._clock = clock
        self._hotline = tuple(hotline_contexts)
        self._hotline_prefixes = tuple(f"{c}-" for c in self._hotline)
        self._callback = frozenset(callback_contexts)
        self._cdr_tz = cdr_timezone
        self._recording_rule = recording_rule
        self._offset: timedelta | None = None  # the PBX's UTC offset, last learned
        self._offset_at: datetime | None = None
        self._t = clock.now()  # the time of the event being fed
        self._keep_closed = keep_closed
        self._open: dict[str, _Call] = {}
        self._closed: OrderedDict[str, _Call] = OrderedDict()
        self._by_uniqueid: dict[str, str] = {}  # uniqueid -> linkedid, open and closed calls
        self._dirty: set[str] = set()
        self._evicted: list[CallRecord] = []  # changed records forgotten before a drain
        self._pending: dict[str, _Attachment] = {}  # attachments for calls not seen yet
        self._originates: set[str] = set()  # ActionIDs of our own Originates
        # uniqueids/linkedids known outbound before their events → Originate ActionID
        self._outbound_ids: dict[str, str | None] = {}
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
            names.EV_MIX_MONITOR_START: self._on_mix_monitor_start,
            names.EV_ASYNC_AGI_START: self._on_async_agi_start,
            names.EV_ORIGINATE_RESPONSE: self._on_originate_response,
            names.EV_HANGUP: self._on_hangup,
            names.EV_HANGUP_REQUEST: self._on_hangup_request,
            names.EV_SOFT_HANGUP_REQUEST: self._on_hangup_request,
            names.EV_ASYNC_AGI_END: self._on_async_agi_end,
            names.EV_CDR: self._on_cdr,
            names.EV_CEL: self._on_cel,
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
        self._t = self._event_time(frame)
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

    @property
    def pbx_offset(self) -> timedelta | None:
        """The PBX's UTC offset as last learned from its events (None: not yet)."""
        return self._offset

    @property
    def pbx_offset_learned_at(self) -> datetime | None:
        return self._offset_at

    @property
    def configured_timezone(self) -> tzinfo | None:
        return self._cdr_tz

    def set_pbx_offset(self, offset: timedelta) -> None:
        """The PBX's UTC offset learned elsewhere (e.g. by comparing clocks at login)."""
        self._learn_offset(offset)

    def mark_outbound(self, call_id: str) -> None:
        """Mark the call with this Linkedid or Uniqueid outbound (now or when it appears)."""
        call = self._find(call_id)
        if call is None:
            self._outbound_ids.setdefault(call_id, None)
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
            # A channel whose Hangup we saw stays gone: the list can be older than it.
            listed = ids - call.gone
            alive = call.uniqueids & listed
            if alive or (linkedid in listed and linkedid not in call.uniqueids):
                if NOTE_LINK_LOST not in call.notes:
                    call.notes.append(NOTE_LINK_LOST)
                    self._dirty.add(linkedid)
                if alive != call.channels:
                    call.channels = set(alive)
                    self._dirty.add(linkedid)
            else:
                call.notes.append(NOTE_ENDED_OFFLINE)
                self._complete(call, now)
                closed.append(linkedid)
        for frame in frames:
            channel_id = frame.get(names.H_UNIQUEID)
            call_id = frame.get(names.H_LINKEDID) or channel_id
            if not channel_id or not call_id or call_id in self._closed:
                continue
            known = self._open.get(call_id)
            if known is not None and channel_id in known.gone:
                continue
            if known is None and channel_id in self._by_uniqueid:
                continue  # a channel of a call that ended already
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

    def open_linkedids(self) -> set[str]:
        """The Linkedids of the calls open now."""
        return set(self._open)

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
            call = self._start(linkedid, linkedid, self._t, partial=True)
        if uniqueid not in call.uniqueids:
            self._join(call, uniqueid, frame)
        else:
            if call.caller_number is None or call.caller_name is None:
                self._learn_caller(call, frame)
            if not call.outbound or not call.hotline:
                self._check_context(call, frame.get(names.H_CONTEXT))
        return call

    def _start(self, linkedid: str, uniqueid: str, now: datetime, *, partial: bool) -> _Call:
        call = _Call(linkedid, uniqueid, _call_start(linkedid, now), partial=partial)
        self._open[linkedid] = call
        attachment = self._pending.pop(linkedid, None)
        if attachment is not None:
            call.attachment = attachment
        if linkedid in self._outbound_ids:
            self._set_outbound(call, self._outbound_ids.pop(linkedid))
        self._dirty.add(linkedid)
        return call

    def _join(self, call: _Call, uniqueid: str, frame: Frame) -> None:
        call.uniqueids.add(uniqueid)
        call.channels.add(uniqueid)
        self._by_uniqueid[uniqueid] = call.linkedid
        if uniqueid in self._outbound_ids:
            self._set_outbound(call, self._outbound_ids.pop(uniqueid))
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
        if not context:
            return
        if context in self._callback:
            call.outbound = True
        elif context in self._hotline or context.startswith(self._hotline_prefixes):
            call.hotline = True

    @staticmethod
    def _set_outbound(call: _Call, originate_id: str | None) -> None:
        call.outbound = True
        if originate_id and call.originate_id is None:
            call.originate_id = originate_id

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
            call = self._start(linkedid, uniqueid, self._t, partial=linkedid != uniqueid)
        if uniqueid not in call.uniqueids:
            self._join(call, uniqueid, frame)
        if frame.get(names.H_CHANNEL_STATE) == _STATE_UP and call.answered_at is None:
            call.answered_at = self._t
        self._dirty.add(linkedid)
        return True

    def _on_mix_monitor_start(self, frame: Frame) -> bool:
        call = self._call(frame)
        if call is None:
            return False
        context = frame.get(names.H_CONTEXT) or ""
        if call.monitor is None and (
            context in self._hotline or context.startswith(self._hotline_prefixes)
        ):
            call.monitor = (frame[names.H_UNIQUEID], self._t)
        self._dirty.add(call.linkedid)
        return True

    def _on_newstate(self, frame: Frame) -> bool:
        call = self._call(frame)
        if call is None:
            return False
        if frame.get(names.H_CHANNEL_STATE) == _STATE_UP and call.answered_at is None:
            call.answered_at = self._t
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
        before = (call.hotline, call.outbound)
        self._check_context(call, frame.get(names.H_CONTEXT))
        if (call.hotline, call.outbound) != before:
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
        call.queue_joined_at = self._t
        self._went_on(call)
        self._dirty.add(call.linkedid)
        return True

    def _end_wait(self, call: _Call, frame: Frame) -> None:
        if call.queue_wait is not None:
            return
        waited = 0.0
        if call.queue_joined_at is not None:
            waited = (self._t - call.queue_joined_at).total_seconds()
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
        self._note_seat(call, frame)
        self._dirty.add(call.linkedid)
        return True

    @staticmethod
    def _went_on(call: _Call) -> None:
        """The call goes on after a seat left it: the seat did not end it."""
        if call.ended_by == ENDED_BY_SEAT:
            call.ended_by = None

    @staticmethod
    def _note_seat(call: _Call, frame: Frame) -> None:
        seat = frame.get(names.H_DEST_CHANNEL)
        if seat:
            call.seats.add(_channel_base(seat))

    def _on_agent_connect(self, frame: Frame) -> bool:
        call = self._call(frame)
        if call is None:
            return False
        call.hotline = True
        call.agent_connected = True
        call.abandoned = False
        call.queue = call.queue or frame.get(names.H_QUEUE)
        call.agent = _agent(frame) or call.agent
        self._note_seat(call, frame)
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
        talk = _float(frame.get(names.H_TALK_TIME))
        if talk is not None:
            call.talk = (call.talk or 0.0) + talk
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
        call.agi.add(frame[names.H_UNIQUEID])
        self._went_on(call)
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
        # Broadcast to every manager session: ours by ActionID or by callback context.
        action_id = frame.get(names.H_ACTION_ID)
        ours = action_id is not None and action_id in self._originates
        if not ours and frame.get(names.H_CONTEXT) not in self._callback:
            return False
        if action_id is not None:
            self._originates.discard(action_id)
        uniqueid = frame.get(names.H_UNIQUEID)
        if not uniqueid or uniqueid in _UNKNOWN:
            return False  # failed before a channel existed: no call to log
        call = self._find(uniqueid)
        if call is None:
            self._outbound_ids[uniqueid] = action_id
            return False
        self._set_outbound(call, action_id)
        reason = _int(frame.get(names.H_REASON))
        if reason is not None:
            call.originate_reason = reason
        self._dirty.add(call.linkedid)
        return True

    def _on_async_agi_end(self, frame: Frame) -> bool:
        call = self._call(frame, create=False)
        if call is not None:
            call.agi.discard(frame.get(names.H_UNIQUEID) or "")
        return False

    def _on_hangup_request(self, frame: Frame) -> bool:
        """Who ended the call: the first channel asked to hang up, and how."""
        call = self._call(frame)
        if call is None:
            return False
        uniqueid = frame[names.H_UNIQUEID]
        soft = frame.get(names.H_EVENT) == names.EV_SOFT_HANGUP_REQUEST
        # A channel in AsyncAGI runs no dialplan: a soft hang-up of it is the gateway's
        # (AGI HANGUP: Cause 32, AST_SOFTHANGUP_EXPLICIT; EXEC Hangup: the call's cause).
        gateway = soft and uniqueid in call.agi
        if call.ended_by is None or (gateway and call.ended_by != ENDED_BY_GATEWAY):
            if gateway:
                call.ended_by = ENDED_BY_GATEWAY
            elif _channel_base(frame.get(names.H_CHANNEL) or "") in call.seats:
                call.ended_by = ENDED_BY_SEAT
            elif uniqueid == call.uniqueid and soft:
                call.ended_by = ENDED_BY_PBX  # the dialplan ended the call's own channel
            else:
                call.ended_by = ENDED_BY_CALLER
            self._dirty.add(call.linkedid)
            return True
        return False

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
        if call.ended_by is None:
            # No request came first: the far end hung up (a BYE on a SIP channel).
            seat = _channel_base(frame.get(names.H_CHANNEL) or "") in call.seats
            call.ended_by = ENDED_BY_SEAT if seat else ENDED_BY_CALLER
        call.channels.discard(uniqueid)
        call.gone.add(uniqueid)
        call.agi.discard(uniqueid)
        if not call.channels:
            self._complete(call, self._t)
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
        segment = _Cdr(
            start=_local_time(frame.get(names.H_CDR_START_TIME)),
            answer=_local_time(frame.get(names.H_CDR_ANSWER_TIME)),
            end=_local_time(frame.get(names.H_CDR_END_TIME)),
            duration=_float(frame.get(names.H_DURATION)),
            billable=_float(frame.get(names.H_CDR_BILLABLE_SECONDS)),
            disposition=_CDR_DISPOSITION.get(disposition or ""),
        )
        if not call.cdrs:
            # A channel's first segment starts when the channel was made.
            self._learn_from(call, uniqueid, segment.start)
        if segment not in call.cdrs:  # the same Cdr twice (a replay) counts once
            call.cdrs.append(segment)
        if call.caller_number is None:
            source = frame.get(names.H_CDR_SOURCE)
            if source and source not in _UNKNOWN:
                call.caller_number = _number(source)
        self._dirty.add(linkedid)
        return True

    def _on_cel(self, frame: Frame) -> bool:
        """CEL (when cel.conf sends it): the PBX's clock, the callback context, who hung up."""
        name = frame.get(names.H_CEL_EVENT_NAME)
        uniqueid = frame.get(names.H_CDR_UNIQUEID)
        if not uniqueid or name not in (names.CEL_CHAN_START, names.CEL_HANGUP):
            return False
        linkedid = frame.get(names.H_CEL_LINKEDID) or uniqueid
        call = self._open.get(linkedid)
        if call is None:
            if name == names.CEL_CHAN_START:
                self._learn_from(None, uniqueid, _local_time(frame.get(names.H_CEL_EVENT_TIME)))
            return False
        if name == names.CEL_CHAN_START:
            self._learn_from(call, uniqueid, _local_time(frame.get(names.H_CEL_EVENT_TIME)))
            return False
        before = (call.outbound, call.ended_by)
        self._check_context(call, frame.get(names.H_CONTEXT))
        source = _cel_extra(frame.get(names.H_CEL_EXTRA)).get("hangupsource", "")
        if isinstance(source, str) and source.startswith("dialplan/agi"):
            call.ended_by = ENDED_BY_GATEWAY
        if (call.outbound, call.ended_by) != before:
            self._dirty.add(linkedid)
            return True
        return False

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

    # ------------------------------------------------------------ PBX clock

    def _event_time(self, frame: Frame) -> datetime:
        """The event's own epoch (``timestampevents = yes``), else its arrival time."""
        stamp = _float(frame.get(names.H_TIMESTAMP))
        if stamp is not None and stamp > 0:
            return datetime.fromtimestamp(stamp, UTC)
        return self._clock.now()

    def _learn_from(self, call: _Call | None, uniqueid: str, local: datetime | None) -> None:
        """A channel's creation in PBX-local time against the epoch in its Uniqueid."""
        epoch = _epoch_of(uniqueid)
        if local is None or epoch is None:
            return
        diff = (local - datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)).total_seconds()
        quarters = round(diff / _OFFSET_QUANTUM)
        if abs(diff - quarters * _OFFSET_QUANTUM) > _OFFSET_SLACK or abs(quarters) > 14 * 4:
            return  # not a creation time (or a Uniqueid that is not an epoch)
        offset = timedelta(seconds=quarters * _OFFSET_QUANTUM)
        if call is not None:
            call.offset = offset
        self._learn_offset(offset)

    def _learn_offset(self, offset: timedelta) -> None:
        self._offset = offset
        self._offset_at = self._clock.now()

    def _to_utc(self, call: _Call, local: datetime | None) -> datetime | None:
        """A PBX-local time (Cdr, CEL) in UTC, with the best offset known."""
        if local is None:
            return None
        offset = call.offset if call.offset is not None else self._offset
        if offset is not None:
            return (local - offset).replace(tzinfo=UTC)
        if self._cdr_tz is not None:
            return local.replace(tzinfo=self._cdr_tz).astimezone(UTC)
        return local.replace(tzinfo=UTC)

    def _local_date_time(self, call: _Call, when: datetime) -> datetime:
        """A UTC time on the PBX's wall clock (for the recording's folder)."""
        offset = call.offset if call.offset is not None else self._offset
        if offset is not None:
            return (when.astimezone(UTC) + offset).replace(tzinfo=None)
        if self._cdr_tz is not None:
            return when.astimezone(self._cdr_tz).replace(tzinfo=None)
        return when.astimezone(UTC).replace(tzinfo=None)

    def _merged_cdr(self, call: _Call) -> _Merged | None:
        """The call's Cdr segments as one span: first start, first answer, last end."""
        if not call.cdrs:
            return None
        starts = [t for c in call.cdrs if (t := self._to_utc(call, c.start)) is not None]
        answers = [t for c in call.cdrs if (t := self._to_utc(call, c.answer)) is not None]
        ends = [t for c in call.cdrs if (t := self._to_utc(call, c.end)) is not None]
        start = min(starts) if starts else None
        end = max(ends) if ends else None
        known = [c.duration for c in call.cdrs if c.duration is not None]
        duration: float | None = sum(known) if known else None
        if len(call.cdrs) > 1 and start is not None and end is not None:
            # Several segments: the whole span (a single one keeps Asterisk's exact count).
            duration = max(0.0, (end - start).total_seconds())
        billable = [c.billable for c in call.cdrs if c.billable is not None]
        dispositions = [c.disposition for c in call.cdrs if c.disposition is not None]
        disposition = (
            ANSWERED if ANSWERED in dispositions else (dispositions[0] if dispositions else None)
        )
        return _Merged(
            start=start,
            answer=min(answers) if answers else None,
            end=end,
            duration=duration,
            billable=sum(billable) if billable else None,
            disposition=disposition,
        )

    def _recording(self, call: _Call) -> str | None:
        if call.attachment is not None and call.attachment.recording is not None:
            return call.attachment.recording
        if call.recording is not None:
            return call.recording
        if call.monitor is None:
            return None
        uniqueid, when = call.monitor
        local = self._local_date_time(call, when)
        return local.strftime(self._recording_rule.replace("{uniqueid}", uniqueid))

    def _snapshot(self, call: _Call) -> CallRecord:
        cdr = self._merged_cdr(call)
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
            disposition=self._disposition(call, cdr) if call.complete else None,
            hangup_cause=call.cause,
            hangup_cause_text=call.cause_text,
            ivr_path=(attachment.ivr_path or ()) if attachment is not None else (),
            queue=call.queue,
            queue_wait_s=call.queue_wait,
            agent=call.agent,
            recording=self._recording(call),
            case_id=attachment.case_id if attachment is not None else None,
            dtmf=call.dtmf,
            complete=call.complete,
            partial=call.partial,
            note="; ".join(call.notes) or None,
            talk_s=call.talk,
            ended_by=call.ended_by if call.complete else None,
            originate_id=call.originate_id,
        )

    @staticmethod
    def _direction(call: _Call) -> str:
        if call.outbound:
            return OUTBOUND
        if call.hotline:
            return INBOUND
        return INTERNAL

    @staticmethod
    def _disposition(call: _Call, cdr: _Merged | None) -> str:
        if call.abandoned and not call.agent_connected:
            return ABANDONED
        if cdr is not None and cdr.disposition is not None:
            return cdr.disposition
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


def format_offset(offset: timedelta) -> str:
    """``+08:00``, ``-03:30``, ``+00:00``."""
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{rest:02d}"


def _epoch_of(call_id: str) -> float | None:
    """The creation epoch in an Asterisk Uniqueid/Linkedid (``1796052932.41``, or
    ``pbx1-1796052932.41`` when asterisk.conf sets a ``systemname``), if it is one."""
    head, _, tail = call_id.rpartition("-")[2].partition(".")
    if not head.isdigit() or not tail.isdigit() or len(head) < 9:
        return None
    return float(head)


def _call_start(linkedid: str, seen: datetime) -> datetime:
    """When the call began: the event time if within its Linkedid's second, else that second."""
    epoch = _epoch_of(linkedid)
    if epoch is None:
        return seen
    created = datetime.fromtimestamp(epoch, UTC)
    if created <= seen < created + timedelta(seconds=1):
        return seen  # the finer of the two
    return created


def _local_time(text: str | None) -> datetime | None:
    """A PBX-local ``YYYY-MM-DD HH:MM:SS`` (Cdr, CEL), naive."""
    if not text:
        return None
    try:
        return datetime.strptime(text[:19], _CDR_TIME_FORMAT)
    except ValueError:
        return None


def _cel_extra(text: str | None) -> dict[str, object]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _channel_base(channel: str) -> str:
    """``Local/seat03@seat-sim-00000026;1`` → ``Local/seat03@seat-sim-00000026``: both halves."""
    return channel.rsplit(";", 1)[0] if channel.startswith("Local/") else channel


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
