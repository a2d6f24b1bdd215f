"""The simulated PBX's world: channels, the hotline dialplan, queues of agent seats, outbound calls.

Everything that happens here is announced as AMI events with Asterisk 22's header
names and order (see the recorded transcripts); the sessions decide who receives them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from gateway.ami import names as n
from gateway.ami.frames import serialize
from gateway.phone import mask
from gateway.sim.ami.channel import (
    CAUSE_TEXT,
    STATE_DOWN,
    STATE_RING,
    STATE_RINGING,
    STATE_UP,
    Headers,
    SimChannel,
)
from gateway.sim.ami.config import SimConfig
from gateway.sim.ami.script import (
    Answer,
    Busy,
    CallerScript,
    CallOutcome,
    CitizenBehaviour,
    NoAnswer,
    Step,
    Unreachable,
)
from gateway.sim.ami.tasks import TaskSet

if TYPE_CHECKING:
    pass

log = logging.getLogger("gateway.sim.ami")

PRIV_CALL = "call,all"
PRIV_DIALPLAN = "dialplan,all"
PRIV_AGI = "agi,all"
PRIV_DTMF = "dtmf,all"
PRIV_AGENT = "agent,all"
PRIV_CDR = "cdr,all"
PRIV_SYSTEM = "system,all"
PRIV_SECURITY = "security,all"

EventSink = Callable[[bytes, str], None]


@dataclass(eq=False)
class Seat:
    """One agent seat of a queue (a static member)."""

    interface: str  # PJSIP/seat01
    member_name: str
    membership: str = "static"
    penalty: int = 0
    paused: bool = False
    busy: bool = False
    ringing: bool = False
    calls_taken: int = 0
    last_call: int = 0
    login_time: int = 0

    @property
    def status(self) -> int:
        # AST_DEVICE_*: 1 not in use, 2 in use, 6 ringing
        if self.ringing:
            return 6
        return 2 if self.busy else 1

    def state_headers(self) -> list[tuple[str, str]]:
        """What Asterisk reports of a member after its name and interface, in its order
        (QueueMember items, QueueMemberStatus/Added/Removed events)."""
        return [
            ("StateInterface", self.interface),
            ("Membership", self.membership),
            ("Penalty", str(self.penalty)),
            ("CallsTaken", str(self.calls_taken)),
            ("LastCall", str(self.last_call)),
            ("LastPause", "0"),
            ("LoginTime", str(self.login_time)),
            ("InCall", "1" if self.busy and not self.ringing else "0"),
            ("Status", str(self.status)),
            ("Paused", "1" if self.paused else "0"),
            ("PausedReason", ""),
        ]


@dataclass(eq=False)
class CdrSegment:
    """One bridge segment of a channel's CDR (Asterisk starts a new one when the
    channel leaves a bridge and goes on in the dialplan)."""

    start: float
    answer: float | None
    dest_channel: str = ""
    last_app: str = ""
    last_data: str = ""
    end: float | None = None


@dataclass(eq=False)
class QueueEntry:
    channel: SimChannel
    joined: float  # loop time
    original_position: int
    seat: Seat | None = None  # the seat ringing or talking for this caller
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class SimQueue:
    name: str
    seats: list[Seat] = field(default_factory=list)
    waiting: list[QueueEntry] = field(default_factory=list)
    completed: int = 0
    abandoned: int = 0
    holdtime: int = 0
    talktime: int = 0


class SimCall:
    """One simulated citizen's call; ``await call.finished`` gives its :class:`CallOutcome`."""

    def __init__(self, outcome: CallOutcome) -> None:
        self.outcome = outcome
        self.finished: asyncio.Future[CallOutcome] = asyncio.get_running_loop().create_future()

    @property
    def channel(self) -> str:
        return self.outcome.channel

    @property
    def uniqueid(self) -> str:
        return self.outcome.uniqueid

    @property
    def linkedid(self) -> str:
        return self.outcome.linkedid

    def _finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(self.outcome)


class World:
    """The simulated PBX's state and behaviour, independent of any TCP session."""

    def __init__(self, config: SimConfig, tasks: TaskSet) -> None:
        self.config = config
        self.tasks = tasks
        self.rng = random.Random(config.seed)
        self.sinks: list[EventSink] = []
        self.channels: dict[str, SimChannel] = {}
        self.calls: dict[str, SimCall] = {}  # by channel name
        self.outbound: dict[str, list[SimCall]] = {}  # by dialled number
        self.citizens: dict[str, CitizenBehaviour] = {}
        self.default_citizen: CitizenBehaviour = Answer()
        self.queues: dict[str, SimQueue] = {name: SimQueue(name) for name in config.queues}
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._epoch0 = config.epoch if config.epoch is not None else time.time()
        self._tz = ZoneInfo(config.timezone)
        self._unique_seq = 0
        self._chan_seq = 0
        self._cdr_done: dict[str, list[CdrSegment]] = {}  # by channel name: closed segments
        self._cdr_pending: dict[str, float] = {}  # by channel name: new segment's start
        self._linked: dict[str, int] = {}  # Linkedid → channels alive (for CEL LINKEDID_END)
        self.calls_processed = 0
        self.booted_at = self._epoch0
        for queue in self.queues.values():
            for i in range(1, config.agents + 1):
                queue.seats.append(
                    Seat(f"PJSIP/seat{i:02d}", f"Seat {i:02d}", login_time=int(self._epoch0))
                )
            # one queue's seats serve only that queue; extra queues start empty
            if queue.name != config.hotline_queue:
                queue.seats.clear()

    # --- time -----------------------------------------------------------------

    def wall(self, epoch: float, fmt: str) -> str:
        """A simulated epoch time as the PBX's local wall clock shows it."""
        return datetime.fromtimestamp(epoch, self._tz).strftime(fmt)

    def loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    def sim_now(self) -> float:
        """Simulated epoch seconds: real start time plus scaled elapsed time."""
        return self._epoch0 + (self.loop_time() - self._t0) / self.config.time_scale

    def real(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds) * self.config.time_scale

    def sim(self, real_seconds: float) -> float:
        return real_seconds / self.config.time_scale

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(self.real(sim_seconds))

    def uniform(self, bounds: tuple[float, float]) -> float:
        return self.rng.uniform(*bounds)

    # --- events -----------------------------------------------------------------

    def emit(self, event: str, privilege: str, headers: Headers) -> None:
        data = serialize([(n.H_EVENT, event), ("Privilege", privilege), *headers])
        category = privilege.split(",", 1)[0]
        for sink in list(self.sinks):
            sink(data, category)

    def chan_event(
        self, event: str, privilege: str, chan: SimChannel, *extra: tuple[str, str]
    ) -> None:
        self.emit(event, privilege, [*chan.snapshot(), *extra])

    # --- channels ---------------------------------------------------------------

    def _next_uniqueid(self, now: float | None = None) -> str:
        uid = f"{int(self.sim_now() if now is None else now)}.{self._unique_seq}"
        self._unique_seq += 1
        return uid

    def new_channel(
        self,
        endpoint: str,
        *,
        caller_num: str,
        caller_name: str,
        context: str,
        exten: str,
        state: int,
        linkedid: str | None = None,
        language: str = "en",
        dnid: str = "unknown",
    ) -> SimChannel:
        name = f"PJSIP/{endpoint}-{self._chan_seq:08x}"
        self._chan_seq += 1
        now = self.sim_now()  # the Uniqueid's epoch is the channel's creation, to the second
        uid = self._next_uniqueid(now)
        chan = SimChannel(
            name=name,
            uniqueid=uid,
            linkedid=linkedid or uid,
            caller_num=caller_num,
            caller_name=caller_name,
            context=context,
            exten=exten,
            state=state,
            language=language,
            dnid=dnid,
            created=now,
        )
        self.channels[name] = chan
        self._linked[chan.linkedid] = self._linked.get(chan.linkedid, 0) + 1
        self.cel(n.CEL_CHAN_START, chan, at=now)
        self.chan_event(n.EV_NEWCHANNEL, PRIV_CALL, chan)
        return chan

    def evaluate(self, expression: str) -> str | None:
        """A dialplan function read without a channel (AMI ``Getvar``): ``STRFTIME``."""
        name, paren, rest = expression.partition("(")
        if not paren or not rest.endswith(")") or name.strip().upper() != "STRFTIME":
            return None
        epoch_text, _, tail = rest[:-1].partition(",")
        zone, _, fmt = tail.partition(",")
        try:
            epoch = float(epoch_text) if epoch_text.strip() else self.sim_now()
            tz = ZoneInfo(zone.strip()) if zone.strip() else self._tz
        except (ValueError, KeyError):
            return ""
        return datetime.fromtimestamp(epoch, tz).strftime(fmt or "%c")

    def cel(
        self, name: str, chan: SimChannel, extra: str = "", peer: str = "", at: float | None = None
    ) -> None:
        """One CEL event as cel.conf's manager backend sends it (class ``call``), when on."""
        if not self.config.cel:
            return
        dnid = "" if chan.dnid in ("unknown", "") else chan.dnid
        number = "" if chan.caller_num in ("<unknown>", "unknown") else chan.caller_num
        caller_name = "" if chan.caller_name in ("<unknown>", "unknown") else chan.caller_name
        self.emit(
            n.EV_CEL,
            PRIV_CALL,
            [
                (n.H_CEL_EVENT_NAME, name),
                ("AccountCode", chan.accountcode),
                ("CallerIDnum", number),
                ("CallerIDname", caller_name),
                ("CallerIDani", number),
                ("CallerIDrdnis", ""),
                ("CallerIDdnid", dnid),
                ("Exten", chan.exten),
                ("Context", chan.context),
                ("Channel", chan.name),
                ("Application", chan.app),
                ("AppData", chan.appdata),
                (
                    n.H_CEL_EVENT_TIME,
                    self.wall(self.sim_now() if at is None else at, "%Y-%m-%d %H:%M:%S"),
                ),
                ("AMAFlags", "DOCUMENTATION"),
                (n.H_CDR_UNIQUEID, chan.uniqueid),
                (n.H_CEL_LINKEDID, chan.linkedid),
                ("Userfield", ""),
                ("Peer", peer),
                ("PeerAccount", ""),
                (n.H_CEL_EXTRA, extra),
            ],
        )

    def find_channel(self, name: str) -> SimChannel | None:
        chan = self.channels.get(name)
        if chan is None:
            # Asterisk finds a channel by name ignoring case, or by its unique id
            lowered = name.lower()
            for candidate in self.channels.values():
                if candidate.name.lower() == lowered or candidate.uniqueid == name:
                    return candidate
        return chan

    def set_state(self, chan: SimChannel, state: int) -> None:
        if chan.state == state:
            return
        chan.state = state
        if state == STATE_UP and chan.answered_at is None:
            chan.answered_at = self.sim_now()
            self.cel("ANSWER", chan)
        self.chan_event(n.EV_NEWSTATE, PRIV_CALL, chan)

    def newexten(self, chan: SimChannel, priority: int, app: str, data: str) -> None:
        chan.priority = priority
        chan.app, chan.appdata = app, data
        chan.last_app, chan.last_data = app, data
        self.chan_event(
            n.EV_NEWEXTEN,
            PRIV_DIALPLAN,
            chan,
            ("Extension", chan.exten),
            ("Application", app),
            ("AppData", data),
        )

    def set_var(self, chan: SimChannel, name: str, value: str) -> None:
        chan.variables[name] = value
        self.chan_event(n.EV_VARSET, PRIV_DIALPLAN, chan, ("Variable", name), ("Value", value))

    def request_hangup(
        self,
        chan: SimChannel,
        *,
        cause: int = 16,
        soft: bool = True,
        soft_cause: int | None = None,
        by_caller: bool = False,
    ) -> None:
        """Ask a channel to hang up; the app running on it notices and the channel is destroyed."""
        if chan.hangup_requested or chan.gone:
            return
        chan.hangup_requested = True
        chan.hangup_cause = cause
        if soft_cause == 32:  # AST_SOFTHANGUP_EXPLICIT: AGI HANGUP
            chan.variables["__HANGUPSOURCE"] = "dialplan/agi"
        elif soft and chan.last_app == "Hangup":
            chan.variables["__HANGUPSOURCE"] = "dialplan/builtin"
        if by_caller and chan.caller is not None:
            chan.caller.outcome.ended_by = "caller"
        event = n.EV_SOFT_HANGUP_REQUEST if soft else n.EV_HANGUP_REQUEST
        self.chan_event(
            event, PRIV_CALL, chan, (n.H_CAUSE, str(cause if soft_cause is None else soft_cause))
        )
        chan.inbox.put_nowait(("hangup", ""))
        chan.hungup.set()

    def destroy(self, chan: SimChannel, *, cdr: bool = True) -> None:
        """The channel is gone: Hangup, MixMonitorStop, Cdr, and the caller's outcome is final."""
        if chan.gone:
            return
        chan.gone = True
        chan.hangup_requested = True
        chan.hungup.set()
        chan.inbox.put_nowait(("hangup", ""))
        if chan.variables.get("__MIXMONITOR"):
            self.chan_event(n.EV_MIX_MONITOR_STOP, PRIV_CALL, chan)
        cause = chan.hangup_cause
        self.chan_event(
            n.EV_HANGUP,
            PRIV_CALL,
            chan,
            (n.H_CAUSE, str(cause)),
            (n.H_CAUSE_TXT, CAUSE_TEXT.get(cause, "Unknown")),
        )
        self.cel(
            n.CEL_HANGUP,
            chan,
            json.dumps(
                {
                    "hangupcause": cause,
                    "hangupsource": chan.variables.get("__HANGUPSOURCE", ""),
                    "dialstatus": chan.variables.get("DIALSTATUS", ""),
                },
                separators=(",", ":"),
            ),
        )
        self.cel("CHAN_END", chan)
        left = self._linked.get(chan.linkedid, 1) - 1
        if left <= 0:
            self._linked.pop(chan.linkedid, None)
            self.cel("LINKEDID_END", chan)
        else:
            self._linked[chan.linkedid] = left
        self.channels.pop(chan.name, None)
        self.calls_processed += 1
        if cdr:
            self._cdr(chan)
        else:
            self._cdr_done.pop(chan.name, None)
            self._cdr_pending.pop(chan.name, None)
        side = chan.caller
        if side is not None:
            if not side.outcome.ended_by:
                side.outcome.ended_by = "pbx"
            side.outcome.cause = cause
            side.call_ended()

    def split_cdr(self, chan: SimChannel) -> None:
        """The channel left a bridge and goes on: close its CDR segment, start a pending one.

        Like Asterisk's CDR engine, the new segment starts now and is reported only
        if the channel does something with it (enters another bridge, or lives on
        for a second or more); a channel hung up at once reports one segment."""
        done = self._cdr_done.setdefault(chan.name, [])
        start = self._cdr_pending.pop(chan.name, chan.created)
        now = self.sim_now()
        done.append(
            CdrSegment(
                start=start,
                answer=chan.answered_at if not done else start,
                dest_channel=chan.dest_channel,
                last_app=chan.last_app,
                last_data=chan.last_data,
                end=now,
            )
        )
        chan.dest_channel = ""
        self._cdr_pending[chan.name] = now

    def _cdr(self, chan: SimChannel) -> None:
        end = self.sim_now()
        segments = self._cdr_done.pop(chan.name, [])
        pending = self._cdr_pending.pop(chan.name, None)
        if pending is None:
            segments.append(CdrSegment(chan.created, chan.answered_at, chan.dest_channel, end=end))
        elif chan.dest_channel or end - pending >= 1.0:
            segments.append(CdrSegment(pending, pending, chan.dest_channel, end=end))
        for segment in segments:
            if not segment.last_app:
                segment.last_app, segment.last_data = chan.last_app, chan.last_data
            self._emit_cdr(chan, segment)

    def _emit_cdr(self, chan: SimChannel, segment: CdrSegment) -> None:
        end = segment.end if segment.end is not None else self.sim_now()
        answer = segment.answer
        disposition = chan.variables.get("__DISPOSITION") or ("ANSWERED" if answer else "NO ANSWER")
        fmt = "%Y-%m-%d %H:%M:%S"
        cid = f'"{chan.caller_name}" <{chan.caller_num}>' if chan.caller_name else chan.caller_num
        self.emit(
            n.EV_CDR,
            PRIV_CDR,
            [
                ("AccountCode", chan.accountcode),
                ("Source", chan.caller_num),
                ("Destination", chan.exten),
                ("DestinationContext", chan.context),
                ("CallerID", cid),
                ("Channel", chan.name),
                ("DestinationChannel", segment.dest_channel),
                ("LastApplication", segment.last_app),
                ("LastData", segment.last_data),
                ("StartTime", self.wall(segment.start, fmt)),
                ("AnswerTime", self.wall(answer, fmt) if answer else ""),
                ("EndTime", self.wall(end, fmt)),
                ("Duration", str(int(end - segment.start))),
                ("BillableSeconds", str(int(end - answer)) if answer else "0"),
                ("Disposition", disposition),
                ("AMAFlags", "DOCUMENTATION"),
                ("UniqueID", chan.uniqueid),
                ("UserField", ""),
            ],
        )

    # --- the caller's actions ---------------------------------------------------

    async def press(self, chan: SimChannel, digit: str, duration_ms: int) -> None:
        """The caller presses a key (RFC 4733: DTMFBegin then DTMFEnd)."""
        if chan.gone:
            return
        if chan.caller is not None:
            chan.caller.outcome.keys += digit
        self.chan_event(
            n.EV_DTMF_BEGIN, PRIV_DTMF, chan, (n.H_DIGIT, digit), ("Direction", "Received")
        )
        await self.sleep(duration_ms / 1000)
        if chan.gone:
            return
        self.chan_event(
            n.EV_DTMF_END,
            PRIV_DTMF,
            chan,
            (n.H_DIGIT, digit),
            ("DurationMs", str(duration_ms)),
            ("Direction", "Received"),
        )
        if chan.collecting:
            chan.inbox.put_nowait(("digit", digit))
        # otherwise nobody listens: the digit is lost to the IVR, as on a real PBX

    def speak(self, chan: SimChannel, seconds: float) -> None:
        chan.speaking_until = self.loop_time() + self.real(seconds)
        if chan.recording:
            chan.inbox.put_nowait(("speech", ""))

    # --- inbound hotline calls ----------------------------------------------------

    def place_call(self, script: CallerScript) -> SimCall:
        from gateway.sim.ami.caller import CallerSide

        chan = self.new_channel(
            self.config.trunk,
            caller_num=script.caller,
            caller_name=script.caller_name,
            context=self.config.hotline_context,
            exten=script.dialled,
            state=STATE_RING,
            language=script.language,
            dnid=script.dialled,
        )
        outcome = CallOutcome(
            channel=chan.name,
            uniqueid=chan.uniqueid,
            linkedid=chan.linkedid,
            direction="inbound",
            number=script.caller,
        )
        call = SimCall(outcome)
        self.calls[chan.name] = call
        side = CallerSide(self, chan, tuple(script.steps), call)
        chan.caller = side
        log.info("inbound call from %s on %s", mask(script.caller), chan.name)
        self.tasks.spawn(self._run_hotline(chan), f"dialplan {chan.name}")
        self.tasks.spawn(side.run(), f"caller {chan.name}")
        return call

    async def _run_hotline(self, chan: SimChannel) -> None:
        from gateway.sim.ami.agi import run_async_agi

        try:
            self.set_var(chan, "SIPDOMAIN", self.config.host)
            self.newexten(chan, 1, "Answer", "")
            self.set_state(chan, STATE_UP)
            if chan.caller is not None:
                chan.caller.outcome.answered = True
            agi_url = self.config.agi_url
            self.newexten(chan, 2, "AGI", agi_url)
            if agi_url.startswith("agi://"):
                from gateway.sim.ami.fastagi import run_fast_agi

                ended = await run_fast_agi(self, chan, agi_url)
            else:
                ended = await run_async_agi(self, chan)
            if not ended and not chan.hangup_requested:
                self.newexten(chan, 3, "Queue", self.config.hotline_queue)
                if await self.queue_call(chan, self.config.hotline_queue) == -1:
                    # an application's -1 ends the dialplan: the PBX hangs the call up
                    self.request_hangup(chan, cause=16)
            if not chan.hangup_requested:
                self.newexten(chan, 4, "Hangup", "")
                self.request_hangup(chan, cause=16)
        finally:
            self.destroy(chan)

    # --- queues -------------------------------------------------------------------

    async def queue_call(
        self, chan: SimChannel, queue_name: str, timeout_s: float | None = None
    ) -> int:
        """The Queue application: returns its result (-1 once the call has ended).

        ``timeout_s`` (simulated seconds, Queue's fifth argument): when no seat has
        answered by then and none is ringing for the caller, the caller leaves the
        queue with ``QUEUESTATUS=TIMEOUT`` and the dialplan goes on (result 0)."""
        queue = self.queues.get(queue_name)
        if queue is None:
            log.warning("unable to join queue %r: no such queue", queue_name)
            self.set_var(chan, "QUEUESTATUS", "UNKNOWN")
            return 0
        if chan.caller is not None:
            chan.caller.outcome.queue = queue_name
        entry = QueueEntry(chan, self.loop_time(), len(queue.waiting) + 1)
        queue.waiting.append(entry)
        self.chan_event(
            n.EV_QUEUE_CALLER_JOIN,
            PRIV_AGENT,
            chan,
            ("Queue", queue_name),
            ("Position", str(len(queue.waiting))),
            ("Count", str(len(queue.waiting))),
        )
        self.dispatch(queue)
        hangup = asyncio.ensure_future(chan.hungup.wait())
        answered = asyncio.ensure_future(entry.answered.wait())
        deadline = None if timeout_s is None else self.loop_time() + self.real(timeout_s)
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - self.loop_time())
                done, _ = await asyncio.wait(
                    {hangup, answered}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    break
                if entry.seat is None:  # timed out, no seat ringing for this caller
                    return self._queue_timeout(chan, queue, entry)
                deadline = None  # a seat is ringing: its answer or the caller's hang-up ends it
        finally:
            hangup.cancel()
            answered.cancel()
            await asyncio.gather(hangup, answered, return_exceptions=True)
        if not entry.answered.is_set():
            # the caller gave up while waiting (or while a seat was ringing)
            position = self._take_from_queue(queue, entry)
            queue.abandoned += 1
            hold = int(self.sim(self.loop_time() - entry.joined))
            if chan.caller is not None:
                chan.caller.outcome.abandoned = True
            self.chan_event(
                n.EV_QUEUE_CALLER_ABANDON,
                PRIV_AGENT,
                chan,
                ("Queue", queue_name),
                ("Position", str(position)),
                ("OriginalPosition", str(entry.original_position)),
                ("HoldTime", str(hold)),
            )
            self._caller_left_queue(chan, queue, position)
            entry.done.set()
            return -1
        await entry.done.wait()
        return -1

    def _queue_timeout(self, chan: SimChannel, queue: SimQueue, entry: QueueEntry) -> int:
        position = self._take_from_queue(queue, entry)
        self._caller_left_queue(chan, queue, position)
        self.set_var(chan, "QUEUESTATUS", "TIMEOUT")
        entry.done.set()
        return 0

    @staticmethod
    def _take_from_queue(queue: SimQueue, entry: QueueEntry) -> int:
        """Remove a caller from the queue; the 1-based position held (1 once already gone)."""
        if entry not in queue.waiting:
            return 1
        position = queue.waiting.index(entry) + 1
        queue.waiting.remove(entry)
        return position

    def _caller_left_queue(self, chan: SimChannel, queue: SimQueue, position: int) -> None:
        """QueueCallerLeave for a caller taken out of the queue from ``position``."""
        self.chan_event(
            n.EV_QUEUE_CALLER_LEAVE,
            PRIV_AGENT,
            chan,
            ("Queue", queue.name),
            ("Position", str(position)),
            ("Count", str(len(queue.waiting))),
        )

    def member_event(self, event: str, queue: SimQueue, seat: Seat) -> None:
        """QueueMemberStatus / QueueMemberAdded / QueueMemberRemoved, as Asterisk 22 sends
        them when a member's state changes, it joins or it leaves."""
        self.emit(
            event,
            PRIV_AGENT,
            [
                ("Queue", queue.name),
                ("MemberName", seat.member_name),
                ("Interface", seat.interface),
                *seat.state_headers(),
                ("Ringinuse", "0"),
                ("Wrapuptime", "0"),
            ],
        )

    def dispatch(self, queue: SimQueue) -> None:
        """Ring a free seat for each waiting caller, longest waiting first."""
        for entry in queue.waiting:
            if entry.seat is not None or entry.channel.hangup_requested:
                continue
            seat = next((s for s in queue.seats if not s.busy and not s.paused), None)
            if seat is None:
                return
            seat.busy = True
            seat.ringing = True
            entry.seat = seat
            self.tasks.spawn(self._connect(queue, entry, seat), f"agent {seat.interface}")

    async def _connect(self, queue: SimQueue, entry: QueueEntry, seat: Seat) -> None:
        caller = entry.channel
        endpoint = seat.interface.split("/", 1)[1]
        agent = self.new_channel(
            endpoint,
            caller_num=caller.caller_num,
            caller_name=caller.caller_name,
            context="agents",
            exten=endpoint,
            state=STATE_DOWN,
            linkedid=caller.linkedid,
        )
        agent.connected_num, agent.connected_name = caller.caller_num, caller.caller_name
        talked = False
        try:
            self.chan_event(
                n.EV_AGENT_CALLED,
                PRIV_AGENT,
                caller,
                *agent.snapshot("Dest"),
                ("Queue", queue.name),
                ("Interface", seat.interface),
                ("MemberName", seat.member_name),
            )
            self.chan_event(
                n.EV_DIAL_BEGIN,
                PRIV_CALL,
                caller,
                *agent.snapshot("Dest"),
                ("DialString", endpoint),
            )
            self.set_state(agent, STATE_RINGING)
            ring = self.uniform(self.config.ring_seconds)
            ring_start = self.loop_time()
            try:
                await asyncio.wait_for(caller.hungup.wait(), self.real(ring))
            except TimeoutError:
                pass
            seat.ringing = False
            if caller.hangup_requested:
                self.emit(
                    n.EV_DIAL_END,
                    PRIV_CALL,
                    [*caller.snapshot(), *agent.snapshot("Dest"), ("DialStatus", "CANCEL")],
                )
                agent.hangup_cause = 0
                self.destroy(agent, cdr=False)
                return
            self.set_state(agent, STATE_UP)
            self.emit(
                n.EV_DIAL_END,
                PRIV_CALL,
                [*caller.snapshot(), *agent.snapshot("Dest"), ("DialStatus", "ANSWER")],
            )
            position = self._take_from_queue(queue, entry)
            self._caller_left_queue(caller, queue, position)
            hold = int(self.sim(self.loop_time() - entry.joined))
            ring_time = int(self.sim(self.loop_time() - ring_start))
            self.chan_event(
                n.EV_AGENT_CONNECT,
                PRIV_AGENT,
                caller,
                *agent.snapshot("Dest"),
                ("Queue", queue.name),
                ("Interface", seat.interface),
                ("MemberName", seat.member_name),
                ("HoldTime", str(hold)),
                ("RingTime", str(ring_time)),
            )
            self.member_event(n.EV_QUEUE_MEMBER_STATUS, queue, seat)  # in use
            talked = True
            caller.dest_channel = agent.name
            if caller.caller is not None:
                caller.caller.outcome.agent = seat.member_name
                caller.caller.agent_connected()
            entry.answered.set()
            bridge = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            self._bridge_event("BridgeCreate", bridge, 0)
            for count, chan in enumerate((agent, caller), start=1):
                chan.bridge_id = bridge
                self._bridge_event("BridgeEnter", bridge, count, chan)
            talk_start = self.loop_time()
            talk = self.uniform(self.config.talk_seconds)
            try:
                await asyncio.wait_for(caller.hungup.wait(), self.real(talk))
                reason = "caller"
            except TimeoutError:
                reason = "agent"
            talk_time = int(self.sim(self.loop_time() - talk_start))
            if reason == "agent":
                self.request_hangup(agent, cause=16, soft=False)
                self._bridge_event("BridgeLeave", bridge, 1, agent)
                self.destroy(agent, cdr=False)
            else:
                self._bridge_event("BridgeLeave", bridge, 1, caller)
            self.chan_event(
                n.EV_AGENT_COMPLETE,
                PRIV_AGENT,
                caller,
                ("Queue", queue.name),
                ("Interface", seat.interface),
                ("MemberName", seat.member_name),
                ("HoldTime", str(hold)),
                ("TalkTime", str(talk_time)),
                ("Reason", reason),
            )
            if reason == "agent":
                self._bridge_event("BridgeLeave", bridge, 0, caller)
                self.split_cdr(caller)  # the caller goes on in the dialplan
            else:
                self.request_hangup(agent, cause=16)
                self._bridge_event("BridgeLeave", bridge, 0, agent)
                self.destroy(agent, cdr=False)
            self._bridge_event("BridgeDestroy", bridge, 0)
            caller.bridge_id = ""
            queue.completed += 1
            queue.holdtime = hold
            queue.talktime = talk_time
            seat.calls_taken += 1
            seat.last_call = int(self.sim_now())
            # The seat hung up first: the caller stays Up and Queue returns -1 to whoever
            # ran it (the dialplan then hangs up; an AGI EXEC gets "200 result=-1").
        finally:
            seat.busy = False
            seat.ringing = False
            if talked:
                self.member_event(n.EV_QUEUE_MEMBER_STATUS, queue, seat)  # not in use again
            if not agent.gone:
                agent.hangup_cause = 16
                self.destroy(agent, cdr=False)
            entry.done.set()
            self.dispatch(queue)

    def _bridge_event(
        self, event: str, bridge: str, count: int, chan: SimChannel | None = None
    ) -> None:
        headers: Headers = [
            ("BridgeUniqueid", bridge),
            ("BridgeType", "basic"),
            ("BridgeTechnology", "simple_bridge"),
            ("BridgeCreator", "<unknown>"),
            ("BridgeName", "<unknown>"),
            ("BridgeNumChannels", str(count)),
            ("BridgeVideoSourceMode", "none"),
        ]
        if chan is not None:
            headers.extend(chan.snapshot())
            cel = {"BridgeEnter": "BRIDGE_ENTER", "BridgeLeave": "BRIDGE_EXIT"}.get(event)
            if cel is not None:  # CEL first, as Asterisk sends them
                self.cel(cel, chan, _bridge_extra(bridge))
        self.emit(event, PRIV_CALL, headers)

    # --- outbound calls (Originate) ------------------------------------------------

    def citizen_for(self, number: str) -> CitizenBehaviour:
        return self.citizens.get(normalise(number), self.default_citizen)

    async def originate(
        self,
        *,
        endpoint: str,
        number: str,
        requested: str,
        context: str,
        exten: str,
        priority: int,
        application: str,
        data: str,
        timeout_ms: int,
        cid_num: str,
        cid_name: str,
        variables: list[tuple[str, str]],
        report: Callable[[Headers], None] | None,
    ) -> bool:
        """Dial a citizen; ``report`` receives the OriginateResponse headers (async Originate).

        Returns True when the call was answered.
        """

        def respond(success: bool, reason: int, chan: SimChannel | None) -> None:
            if report is None:
                return
            target: Headers = (
                [("Application", application), ("Data", data)]
                if application
                else [("Context", context), ("Exten", exten)]
            )
            report(
                [
                    ("Response", "Success" if success else "Failure"),
                    ("Channel", chan.name if chan is not None else requested),
                    *target,
                    ("Reason", str(reason)),
                    ("Uniqueid", chan.uniqueid if chan is not None else "<null>"),
                    ("CallerIDNum", cid_num or "<unknown>"),
                    ("CallerIDName", cid_name or "<unknown>"),
                ]
            )

        if endpoint != self.config.trunk:
            log.warning("originate to unknown endpoint %r", endpoint)
            respond(False, n.REASON_NO_SUCH_NUMBER, None)
            return False
        behaviour = self.citizen_for(number)
        outcome = CallOutcome(
            channel="", uniqueid="", linkedid="", direction="outbound", number=number
        )
        call = SimCall(outcome)
        self.outbound.setdefault(normalise(number), []).append(call)
        chan = self.new_channel(
            endpoint,
            caller_num=cid_num or "<unknown>",
            caller_name=cid_name or "<unknown>",
            context=context or "default",
            exten=exten or "s",
            state=STATE_DOWN,
        )
        chan.connected_num, chan.connected_name = number, ""
        outcome.channel, outcome.uniqueid, outcome.linkedid = (
            chan.name,
            chan.uniqueid,
            chan.linkedid,
        )
        self.calls[chan.name] = call
        for key, value in variables:
            self.set_var(chan, key, value)
        self.emit(
            n.EV_DIAL_BEGIN,
            PRIV_CALL,
            [*chan.snapshot("Dest"), ("DialString", f"{number}@{endpoint}")],
        )
        log.info("originate to %s on %s: %s", mask(number), chan.name, type(behaviour).__name__)

        def fail(reason: int, cause: int, dial_status: str, disposition: str) -> bool:
            self.emit(
                n.EV_DIAL_END, PRIV_CALL, [*chan.snapshot("Dest"), ("DialStatus", dial_status)]
            )
            chan.hangup_cause = cause
            chan.variables["__DISPOSITION"] = disposition
            chan.last_app, chan.last_data = "AppDial2", "(Outgoing Line)"
            outcome.reason = reason
            outcome.ended_by = "caller" if reason in (n.REASON_BUSY,) else "pbx"
            self.destroy(chan)
            outcome.cause = cause
            call._finish()
            respond(False, reason, None)
            return False

        timeout = max(0.0, timeout_ms / 1000)
        if isinstance(behaviour, Unreachable):
            await self.sleep(0.2)
            if behaviour.no_such_number:
                return fail(n.REASON_NO_SUCH_NUMBER, 1, "CHANUNAVAIL", "FAILED")
            return fail(n.REASON_CONGESTION, 34, "CONGESTION", "FAILED")
        if isinstance(behaviour, NoAnswer) and not behaviour.ringing:
            await self.sleep(timeout)
            return fail(n.REASON_NO_ANSWER, 18, "NOANSWER", "NO ANSWER")
        self.set_state(chan, STATE_RINGING)
        if isinstance(behaviour, Busy):
            await self.sleep(min(behaviour.ring_seconds, timeout))
            return fail(n.REASON_BUSY, 17, "BUSY", "BUSY")
        if isinstance(behaviour, NoAnswer) or (
            isinstance(behaviour, Answer) and behaviour.ring_seconds >= timeout
        ):
            await self.sleep(timeout)
            return fail(n.REASON_RING_TIMEOUT, 19, "NOANSWER", "NO ANSWER")
        assert isinstance(behaviour, Answer)
        await self.sleep(behaviour.ring_seconds)
        self.set_state(chan, STATE_UP)
        outcome.answered = True
        outcome.reason = n.REASON_ANSWERED
        self.emit(n.EV_DIAL_END, PRIV_CALL, [*chan.snapshot("Dest"), ("DialStatus", "ANSWER")])
        self.tasks.spawn(
            self._run_outbound(chan, call, tuple(behaviour.steps), application, data, respond),
            f"dialplan {chan.name}",
        )
        return True

    async def _run_outbound(
        self,
        chan: SimChannel,
        call: SimCall,
        steps: tuple[Step, ...],
        application: str,
        data: str,
        respond: Callable[[bool, int, SimChannel | None], None],
    ) -> None:
        from gateway.sim.ami.agi import run_application, run_async_agi
        from gateway.sim.ami.caller import CallerSide

        side = CallerSide(self, chan, steps, call)
        chan.caller = side
        self.tasks.spawn(side.run(), f"citizen {chan.name}")
        try:
            if application:
                chan.app, chan.appdata = application, data
                chan.last_app, chan.last_data = application, data
                respond(True, n.REASON_ANSWERED, chan)
                if application.lower() == "agi" and data.startswith("agi:async"):
                    await run_async_agi(self, chan)
                else:
                    await run_application(self, chan, application, data)
            elif self.config.agi_url.startswith("agi://"):
                # The callback context hands the call over like the hotline: by FastAGI.
                from gateway.sim.ami.fastagi import run_fast_agi

                self.newexten(chan, 1, "Answer", "")
                respond(True, n.REASON_ANSWERED, chan)
                self.newexten(chan, 2, "AGI", self.config.agi_url)
                await run_fast_agi(self, chan, self.config.agi_url)
            else:
                self.newexten(chan, 1, "Answer", "")
                self.newexten(chan, 2, "AGI", "agi:async")
                await run_async_agi(
                    self, chan, after_start=lambda: respond(True, n.REASON_ANSWERED, chan)
                )
            if not chan.hangup_requested:
                self.newexten(chan, chan.priority + 1, "Hangup", "")
                self.request_hangup(chan, cause=16)
        finally:
            self.destroy(chan)

    # --- shutdown -------------------------------------------------------------------

    def hang_up_everything(self) -> None:
        for chan in list(self.channels.values()):
            self.request_hangup(chan, cause=16)


def _bridge_extra(bridge: str) -> str:
    return json.dumps(
        {"bridge_id": bridge, "bridge_technology": "simple_bridge"}, separators=(",", ":")
    )


def normalise(number: str) -> str:
    """The key a citizen's number is filed under: its digits, without a +86 / 0086 prefix."""
    digits = "".join(ch for ch in number if ch.isdigit())
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) >= 11:
            return digits[len(prefix) :]
    return digits
