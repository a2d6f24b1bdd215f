"""One AMI connection to the simulated PBX: reads actions, answers as Asterisk 22 does."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from gateway.ami import names as n
from gateway.ami.frames import Frame, FrameError, FrameParser, serialize
from gateway.sim.ami.agi import start_mixmonitor
from gateway.sim.ami.asterisk_cli import run_cli
from gateway.sim.ami.channel import Headers, SimChannel
from gateway.sim.ami.config import CLASSES, ManagerUser
from gateway.sim.ami.faults import GARBLED_FRAME
from gateway.sim.ami.world import PRIV_CALL, PRIV_SECURITY, PRIV_SYSTEM, SimQueue, World

if TYPE_CHECKING:
    from gateway.sim.ami.server import SimulatedPbx

log = logging.getLogger("gateway.sim.ami")

CATEGORIES = CLASSES
# The classes an action needs (any one of them), as manager.c and app_queue register them.
ACTION_CLASSES: dict[str, frozenset[str]] = {
    "command": frozenset({"command"}),
    "originate": frozenset({"originate"}),
    "hangup": frozenset({"system", "call"}),
    "status": frozenset({"system", "call", "reporting"}),
    "coreshowchannels": frozenset({"system", "reporting"}),
    "queueadd": frozenset({"agent"}),
    "queueremove": frozenset({"agent"}),
    "mixmonitor": frozenset({"system", "call"}),
    "agi": frozenset({"agi"}),
    "getvar": frozenset({"call", "reporting"}),
    "setvar": frozenset({"call"}),
}
_CLOSE = b""


def event_mask(text: str | None) -> frozenset[str]:
    """manager.c's strings_to_mask: empty or true → all, false → none, else the listed classes."""
    if text is None or not text.strip():
        return CATEGORIES
    value = text.strip().lower()
    if value.isdigit():
        return CATEGORIES if int(value) else frozenset()
    if value in ("off", "no", "false", "0", "n", "f"):
        return frozenset()
    if value in ("on", "yes", "true", "y", "t", "1", "all"):
        return CATEGORIES
    words = {w.strip() for w in value.split(",")}
    if "all" in words:
        return CATEGORIES
    return frozenset(words & CATEGORIES)


class AmiSession:
    """Reads frames, dispatches actions one at a time, writes through an ordered queue."""

    def __init__(
        self, pbx: SimulatedPbx, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.pbx = pbx
        self.world: World = pbx.world
        self.reader = reader
        self.writer = writer
        self.authenticated = False
        self.username = ""
        self.user: ManagerUser | None = None
        self.challenge = ""
        self.mask: frozenset[str] = CATEGORIES
        self.garble_pending = False
        # Events raised while an action runs wait for its response (and …Complete),
        # as Asterisk's session thread sends them only between actions.
        self._held: list[bytes] | None = None
        self._out: asyncio.Queue[bytes] = asyncio.Queue()
        self._closing = False
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self._handlers: dict[str, Callable[[Frame], Awaitable[None]]] = {
            "login": self.login,
            "challenge": self.challenge_action,
            "logoff": self.logoff,
            "ping": self.ping,
            "events": self.events,
            "command": self.command,
            "originate": self.originate,
            "hangup": self.hangup,
            "status": self.status,
            "coreshowchannels": self.core_show_channels,
            "queuestatus": self.queue_status,
            "queuesummary": self.queue_summary,
            "queueadd": self.queue_add,
            "queueremove": self.queue_remove,
            "mixmonitor": self.mixmonitor,
            "agi": self.agi,
            "getvar": self.getvar,
            "setvar": self.setvar,
        }

    # --- output ---------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if not self._closing:
            charset = self.pbx.config.charset
            if charset != "utf-8":
                data = data.decode("utf-8").encode(charset, "replace")
            self._out.put_nowait(data)

    def respond(
        self, action: Frame, response: str, message: str | None = None, *extra: tuple[str, str]
    ) -> None:
        headers: Headers = [(n.H_RESPONSE, response)]
        action_id = action.get_ci(n.H_ACTION_ID)
        if action_id:
            headers.append((n.H_ACTION_ID, action_id))
        if message is not None:
            headers.append((n.H_MESSAGE, message))
        headers.extend(extra)
        self.send(serialize(headers))

    def error(self, action: Frame, message: str) -> None:
        self.respond(action, n.RESPONSE_ERROR, message)

    def event_sink(self, data: bytes, category: str) -> None:
        if self.authenticated and category in self.mask:
            user = self.user
            if user is not None and user.eventfilters and not user.wants(data.decode()):
                return
            if self._held is not None:
                self._held.append(data)
            else:
                self.send(data)

    def close_after_flush(self) -> None:
        self._out.put_nowait(_CLOSE)
        self._closing = True

    async def _write_loop(self) -> None:
        faults = self.pbx.faults
        while True:
            data = await self._out.get()
            if data == _CLOSE:
                break
            if self.garble_pending:
                self.garble_pending = False
                await self._write_raw(GARBLED_FRAME)
            if faults.lf_terminator and data.endswith(b"\r\n\r\n"):
                data = data[:-4] + b"\r\n\n"
            closing = False
            if not (faults.lf_terminator or faults.max_chunk is not None or faults.write_delay):
                # Frames already queued go out in one write: the same bytes, one system call
                # and one drain instead of one per frame (a busy PBX's events come in bursts).
                batch = [data]
                while not self._out.empty():
                    more = self._out.get_nowait()
                    if more == _CLOSE:
                        closing = True
                        break
                    batch.append(more)
                data = b"".join(batch)
            await self._write_raw(data)
            if closing:
                break
        self.writer.close()

    async def _write_raw(self, data: bytes) -> None:
        faults = self.pbx.faults
        if faults.write_delay:
            await asyncio.sleep(faults.write_delay)
        timeout = (self.user.writetimeout_ms if self.user else 100) / 1000
        for chunk in faults.chunks(data):
            self.writer.write(chunk)
            try:
                # manager.conf's writetimeout: a client that stops reading is dropped
                async with asyncio.timeout(timeout):
                    await self.writer.drain()
            except TimeoutError:
                log.warning("AMI client %s stopped reading: disconnected", self.peer)
                self.abort()
                raise ConnectionError("write timeout") from None
            if faults.max_chunk is not None:
                await asyncio.sleep(0)

    # --- the session ------------------------------------------------------------

    async def run(self) -> None:
        writer_task = asyncio.ensure_future(self._write_loop())
        auth_timer = asyncio.get_running_loop().call_later(
            self.world.real(self.pbx.config.auth_timeout), self._auth_timed_out
        )
        self.world.sinks.append(self.event_sink)
        self.send((n.BANNER + "\r\n").encode())
        parser = FrameParser(expect_banner=False)
        try:
            while not self._closing:
                data = await self.reader.read(65536)
                if not data:
                    break
                for frame in parser.feed(data):
                    if self._closing:
                        break
                    await self._dispatch(frame)
            if self._closing:
                await asyncio.wait_for(asyncio.shield(writer_task), 5)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            auth_timer.cancel()
            if self.event_sink in self.world.sinks:
                self.world.sinks.remove(self.event_sink)
            if not writer_task.done():
                writer_task.cancel()
            await asyncio.gather(writer_task, return_exceptions=True)
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    def _auth_timed_out(self) -> None:
        if not self.authenticated:
            log.info("AMI client %s did not log in within authtimeout: closed", self.peer)
            self.abort()

    def abort(self) -> None:
        self._closing = True
        self.writer.transport.abort()

    async def _dispatch(self, frame: Frame | FrameError) -> None:
        if isinstance(frame, FrameError):
            log.info("bad frame from %s: %s", self.peer, frame.reason)
            self.send(
                serialize(
                    [(n.H_RESPONSE, n.RESPONSE_ERROR), (n.H_MESSAGE, "Missing action in request")]
                )
            )
            return
        action = (frame.get_ci(n.H_ACTION) or "").strip()
        if not action:
            self.error(frame, "Missing action in request")
            return
        key = action.lower()
        if not self.authenticated and key not in ("login", "logoff", "challenge"):
            self.error(frame, "Permission denied")
            return
        handler = self._handlers.get(key)
        if handler is None:
            self.error(
                frame,
                f"Invalid/unknown command: {action}. "
                "Use Action: ListCommands to show available commands.",
            )
            self._security_event("RequestBadFormat", ("RequestType", f"Action: {action}"))
            return
        if key == "ping" and self.pbx.faults.pong_delay:
            # Queued behind other work: this session's next actions wait; events raised
            # meanwhile flow, as Asterisk sends them between actions.
            await asyncio.sleep(self.pbx.faults.pong_delay)
        needed = ACTION_CLASSES.get(key)
        if needed and self.user is not None and not needed & self.user.write:
            self.error(frame, "Permission denied")
            return
        self._held = []
        try:
            await handler(frame)
        finally:
            held, self._held = self._held, None
            for data in held:
                self.send(data)

    def _security_event(self, event: str, *extra: tuple[str, str]) -> None:
        tv = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.world.sim_now())) + ".000+0000"
        sock = self.writer.get_extra_info("sockname")
        local = f"IPV4/TCP/{sock[0]}/{sock[1]}" if isinstance(sock, tuple) else ""
        peer = self.peer.replace(":", "/")
        headers: Headers = [
            ("EventTV", tv),
            ("Severity", "Error" if event != "SuccessfulAuth" else "Informational"),
            ("Service", "AMI"),
            ("EventVersion", "1"),
        ]
        session_id = f"0x{id(self) & 0xFFFFFFFFFFFF:x}"
        if event == "SuccessfulAuth":
            headers += [
                ("AccountID", self.username),
                ("SessionID", session_id),
                ("LocalAddress", local),
                ("RemoteAddress", f"IPV4/TCP/{peer}"),
                ("UsingPassword", "0"),
                ("SessionTV", tv),
            ]
        else:
            headers += [
                ("SessionID", session_id),
                ("LocalAddress", local),
                ("RemoteAddress", f"IPV4/TCP/{peer}"),
                *extra,
                ("SessionTV", tv),
                ("AccountID", self.username),
            ]
        self.world.emit(event, PRIV_SECURITY, headers)

    # --- login ---------------------------------------------------------------------

    async def challenge_action(self, frame: Frame) -> None:
        if (frame.get_ci("AuthType") or "").lower() != "md5":
            self.error(frame, "Must specify AuthType")
            return
        if not self.challenge:
            self.challenge = str(self.world.rng.randrange(100_000_000, 999_999_999))
        self.respond(frame, n.RESPONSE_SUCCESS, None, ("Challenge", self.challenge))

    def _authenticate(self, frame: Frame) -> ManagerUser | None:
        user = self.pbx.config.user(frame.get_ci("Username") or "")
        if user is None or not user.secret:
            return None
        if (frame.get_ci("AuthType") or "").lower() == "md5":
            key = frame.get_ci("Key") or ""
            if not key or not self.challenge:
                return None
            expected = hashlib.md5((self.challenge + user.secret).encode()).hexdigest()
            return user if key.lower() == expected else None
        return user if frame.get_ci("Secret") == user.secret else None

    async def login(self, frame: Frame) -> None:
        if self.authenticated:
            self.respond(frame, n.RESPONSE_SUCCESS, "Already authenticated")
            return
        user = self._authenticate(frame)
        if user is None:
            log.info("AMI login refused for %s", self.peer)
            await asyncio.sleep(self.world.real(self.pbx.config.login_failure_delay))
            self.error(frame, "Authentication failed")
            self.close_after_flush()
            return
        self.username = frame.get_ci("Username") or ""
        self.user = user
        self.mask = event_mask(frame.get_ci("Events")) & user.read
        self.authenticated = True
        self.respond(frame, n.RESPONSE_SUCCESS, "Authentication accepted")
        uptime = str(int(self.world.sim_now() - self.world.booted_at))
        booted = serialize(
            [
                (n.H_EVENT, n.EV_FULLY_BOOTED),
                ("Privilege", PRIV_SYSTEM),
                ("Uptime", uptime),
                ("LastReload", uptime),
                ("Status", "Fully Booted"),
            ]
        )
        if "system" in self.mask:
            self.send(booted)
        self._security_event("SuccessfulAuth")

    async def logoff(self, frame: Frame) -> None:
        self.respond(frame, n.RESPONSE_GOODBYE, "Thanks for all the fish.")
        self.close_after_flush()

    async def ping(self, frame: Frame) -> None:
        now = self.world.sim_now()
        self.respond(frame, n.RESPONSE_SUCCESS, None, ("Ping", "Pong"), ("Timestamp", f"{now:.6f}"))

    async def events(self, frame: Frame) -> None:
        self.mask = event_mask(frame.get_ci("EventMask"))
        if self.user is not None:
            self.mask &= self.user.read
        self.respond(frame, n.RESPONSE_SUCCESS, None, ("Events", "On" if self.mask else "Off"))

    async def command(self, frame: Frame) -> None:
        text = frame.get_ci(n.H_COMMAND) or ""
        if not text.strip():
            self.error(frame, "No command provided")
            return
        success, lines = run_cli(self.world, text)
        self.respond(
            frame,
            n.RESPONSE_SUCCESS if success else n.RESPONSE_ERROR,
            "Command output follows",
            *[(n.H_OUTPUT, line) for line in lines],
        )

    # --- calls ------------------------------------------------------------------------

    async def originate(self, frame: Frame) -> None:
        requested = (frame.get_ci(n.H_CHANNEL) or "").strip()
        if not requested:
            self.error(frame, "Channel not specified")
            return
        priority_text = (frame.get_ci(n.H_PRIORITY) or "").strip()
        priority = 0
        if priority_text:
            try:
                priority = int(priority_text)
            except ValueError:
                self.error(frame, "Invalid priority")
                return
        timeout_text = (frame.get_ci("Timeout") or "").strip()
        timeout_ms = 30000
        if timeout_text:
            try:
                timeout_ms = int(timeout_text)
            except ValueError:
                self.error(frame, "Invalid timeout")
                return
        tech, sep, data = requested.partition("/")
        if not sep:
            self.error(frame, "Invalid channel")
            return
        application = (frame.get_ci("Application") or "").strip()
        app_data = frame.get_ci("Data") or ""
        context = (frame.get_ci(n.H_CONTEXT) or "").strip()
        exten = (frame.get_ci(n.H_EXTEN) or "").strip()
        if not application and not (exten and context and priority):
            self.error(frame, "Originate with 'Exten' requires 'Context' and 'Priority'")
            return
        cid_num, cid_name = parse_callerid(frame.get_ci("CallerID") or "")
        variables: list[tuple[str, str]] = []
        for item in frame.getall_ci(n.H_VARIABLE):
            for part in item.split(","):
                key, eq, value = part.partition("=")
                if eq and key.strip():
                    variables.append((key.strip(), value))
        endpoint, number = "", ""
        if tech.upper() == "PJSIP":
            if "@" in data and "/" not in data:
                number, endpoint = data.split("@", 1)
            elif "/" in data:
                endpoint, rest = data.split("/", 1)
                number = rest.removeprefix("sip:").split("@", 1)[0]
            else:
                endpoint = data
        action_id = frame.get_ci(n.H_ACTION_ID)
        is_async = (frame.get_ci("Async") or "").strip().lower() in (
            "true",
            "yes",
            "1",
            "on",
            "y",
            "t",
        )

        def report(headers: Headers) -> None:
            extra = [(n.H_ACTION_ID, action_id)] if action_id else []
            self.world.emit(n.EV_ORIGINATE_RESPONSE, PRIV_CALL, [*extra, *headers])

        kwargs = dict(
            endpoint=endpoint,
            number=number,
            requested=requested,
            context=context,
            exten=exten,
            priority=priority,
            application=application,
            data=app_data,
            timeout_ms=timeout_ms,
            cid_num=cid_num,
            cid_name=cid_name,
            variables=variables,
        )
        if tech.upper() not in ("PJSIP",) or not number:
            if is_async:
                self.respond(frame, n.RESPONSE_SUCCESS, "Originate successfully queued")
                report(
                    [
                        ("Response", "Failure"),
                        ("Channel", requested),
                        *(
                            [("Application", application), ("Data", app_data)]
                            if application
                            else [("Context", context), ("Exten", exten)]
                        ),
                        ("Reason", "0"),
                        ("Uniqueid", "<null>"),
                        ("CallerIDNum", cid_num or "<unknown>"),
                        ("CallerIDName", cid_name or "<unknown>"),
                    ]
                )
            else:
                self.error(frame, "Originate failed")
            return
        if is_async:
            self.respond(frame, n.RESPONSE_SUCCESS, "Originate successfully queued")
            self.pbx.tasks.spawn(
                self.world.originate(**kwargs, report=report),  # type: ignore[arg-type]
                f"originate {requested}",
            )
            return
        answered = await self.world.originate(**kwargs, report=None)  # type: ignore[arg-type]
        if answered:
            self.respond(frame, n.RESPONSE_SUCCESS, "Originate successfully queued")
        else:
            self.error(frame, "Originate failed")

    def _named_channel(self, frame: Frame) -> SimChannel | None:
        """The live channel an action's Channel header names; None once the error is sent."""
        name = (frame.get_ci(n.H_CHANNEL) or "").strip()
        if not name:
            self.error(frame, "No channel specified")
            return None
        chan = self.world.find_channel(name)
        if chan is None:
            self.error(frame, "No such channel")
        return chan

    async def hangup(self, frame: Frame) -> None:
        chan = self._named_channel(frame)
        if chan is None:
            return
        cause_text = (frame.get_ci(n.H_CAUSE) or "").strip()
        cause = int(cause_text) if cause_text.isdigit() else 16
        self.world.request_hangup(chan, cause=cause)
        self.respond(frame, n.RESPONSE_SUCCESS, "Channel Hungup")

    async def status(self, frame: Frame) -> None:
        name = (frame.get_ci(n.H_CHANNEL) or "").strip()
        if name and name.lower() != "all":
            chan = self.world.find_channel(name)
            if chan is None:
                self.error(frame, "No such channel")
                return
            chans = [chan]
        else:
            chans = list(self.world.channels.values())
        action_id = frame.get_ci(n.H_ACTION_ID) or ""
        self.respond(
            frame,
            n.RESPONSE_SUCCESS,
            None,
            (n.H_EVENT_LIST, "start"),
            (n.H_MESSAGE, "Channel status will follow"),
        )
        now = self.world.sim_now()
        for chan in chans:
            headers: Headers = [
                (n.H_EVENT, n.EV_STATUS),
                ("Privilege", "Call"),
                *chan.snapshot(),
                ("Type", chan.tech),
                ("DNID", "" if chan.dnid == "unknown" else chan.dnid),
                ("EffectiveConnectedLineNum", chan.connected_num),
                ("EffectiveConnectedLineName", chan.connected_name),
                ("TimeToHangup", "0"),
                ("BridgeID", chan.bridge_id),
                ("Application", chan.app),
                ("Data", chan.appdata),
                ("Nativeformats", "(ulaw)"),
                ("Readformat", "ulaw"),
                ("Readtrans", ""),
                ("Writeformat", "ulaw"),
                ("Writetrans", ""),
                ("Callgroup", "0"),
                ("Pickupgroup", "0"),
                ("Seconds", str(int(now - chan.created))),
            ]
            if action_id:
                headers.append((n.H_ACTION_ID, action_id))
            self.send(serialize(headers))
        self._complete(frame, n.EV_STATUS_COMPLETE, len(chans), ("Items", str(len(chans))))

    def _list_start(self, frame: Frame, message: str) -> None:
        self.respond(
            frame, n.RESPONSE_SUCCESS, None, (n.H_EVENT_LIST, "start"), (n.H_MESSAGE, message)
        )

    def _complete(self, frame: Frame, event: str, count: int, *extra: tuple[str, str]) -> None:
        headers: Headers = [(n.H_EVENT, event)]
        action_id = frame.get_ci(n.H_ACTION_ID)
        if action_id:
            headers.append((n.H_ACTION_ID, action_id))
        headers += [(n.H_EVENT_LIST, "Complete"), (n.H_LIST_ITEMS, str(count)), *extra]
        self.send(serialize(headers))

    def _item(self, frame: Frame, event: str, headers: Headers, *, id_first: bool) -> None:
        action_id = frame.get_ci(n.H_ACTION_ID)
        ident: Headers = [(n.H_ACTION_ID, action_id)] if action_id else []
        body = [*ident, *headers] if id_first else [*headers, *ident]
        self.send(serialize([(n.H_EVENT, event), *body]))

    async def core_show_channels(self, frame: Frame) -> None:
        self._list_start(frame, "Channels will follow")
        chans = list(self.world.channels.values())
        now = self.world.sim_now()
        for chan in chans:
            if self.pbx.faults.list_item_delay:
                await asyncio.sleep(self.pbx.faults.list_item_delay)
            secs = int(now - chan.created)
            duration = f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
            self._item(
                frame,
                n.EV_CORE_SHOW_CHANNEL,
                [
                    *chan.snapshot(),
                    ("Application", chan.app),
                    ("ApplicationData", chan.appdata),
                    ("Duration", duration),
                    ("BridgeId", chan.bridge_id),
                ],
                id_first=True,
            )
        self._complete(frame, n.EV_CORE_SHOW_CHANNELS_COMPLETE, len(chans))

    async def queue_status(self, frame: Frame) -> None:
        wanted = (frame.get_ci("Queue") or "").strip()
        member_filter = (frame.get_ci("Member") or "").strip()
        self._list_start(frame, "Queue status will follow")
        count = 0
        loop_now = self.world.loop_time()
        for queue in self.world.queues.values():
            if wanted and queue.name != wanted:
                continue
            self._item(
                frame,
                n.EV_QUEUE_PARAMS,
                [
                    ("Queue", queue.name),
                    ("Max", "0"),
                    ("Strategy", "ringall"),
                    ("Calls", str(len(queue.waiting))),
                    ("Holdtime", str(queue.holdtime)),
                    ("TalkTime", str(queue.talktime)),
                    ("Completed", str(queue.completed)),
                    ("Abandoned", str(queue.abandoned)),
                    ("ServiceLevel", "0"),
                    ("ServicelevelPerf", "0.0"),
                    ("ServicelevelPerf2", "0.0"),
                    ("Weight", "0"),
                ],
                id_first=False,
            )
            count += 1
            for seat in queue.seats:
                if member_filter and member_filter not in (seat.interface, seat.member_name):
                    continue
                self._item(
                    frame,
                    n.EV_QUEUE_MEMBER,
                    [
                        ("Queue", queue.name),
                        ("Name", seat.member_name),
                        ("Location", seat.interface),
                        *seat.state_headers(),
                        ("Wrapuptime", "0"),
                    ],
                    id_first=False,
                )
                count += 1
            for position, entry in enumerate(queue.waiting, start=1):
                chan = entry.channel
                self._item(
                    frame,
                    n.EV_QUEUE_ENTRY,
                    [
                        ("Queue", queue.name),
                        ("Position", str(position)),
                        ("Channel", chan.name),
                        ("Uniqueid", chan.uniqueid),
                        ("CallerIDNum", chan.caller_num),
                        ("CallerIDName", chan.caller_name or "unknown"),
                        ("ConnectedLineNum", chan.connected_num),
                        ("ConnectedLineName", chan.connected_name),
                        ("Wait", str(int(self.world.sim(loop_now - entry.joined)))),
                        ("Priority", "0"),
                    ],
                    id_first=False,
                )
                count += 1
        self._complete(frame, n.EV_QUEUE_STATUS_COMPLETE, count)

    async def queue_summary(self, frame: Frame) -> None:
        wanted = (frame.get_ci("Queue") or "").strip()
        self._list_start(frame, "Queue summary will follow")
        count = 0
        for queue in self.world.queues.values():
            if wanted and queue.name != wanted:
                continue
            free = sum(1 for s in queue.seats if not s.busy and not s.paused)
            longest = max(
                (int(self.world.sim(self.world.loop_time() - e.joined)) for e in queue.waiting),
                default=0,
            )
            self._item(
                frame,
                "QueueSummary",
                [
                    ("Queue", queue.name),
                    ("LoggedIn", str(len(queue.seats))),
                    ("Available", str(free)),
                    ("Callers", str(len(queue.waiting))),
                    ("HoldTime", str(queue.holdtime)),
                    ("TalkTime", str(queue.talktime)),
                    ("LongestHoldTime", str(longest)),
                ],
                id_first=False,
            )
            count += 1
        self._complete(frame, "QueueSummaryComplete", count)

    def _queue_member_target(
        self, frame: Frame, *, missing: str, no_queue: str
    ) -> tuple[SimQueue, str] | None:
        """The queue and interface a QueueAdd/QueueRemove names; None once the error is sent."""
        queue_name = (frame.get_ci("Queue") or "").strip()
        interface = (frame.get_ci("Interface") or "").strip()
        if not queue_name or not interface:
            self.error(frame, missing)
            return None
        queue = self.world.queues.get(queue_name)
        if queue is None:
            self.error(frame, no_queue)
            return None
        return queue, interface

    async def queue_add(self, frame: Frame) -> None:
        from gateway.sim.ami.world import Seat

        target = self._queue_member_target(
            frame,
            missing="'Queue' and 'Interface' must be set.",
            no_queue="Unable to add interface to queue: No such queue",
        )
        if target is None:
            return
        queue, interface = target
        if any(s.interface == interface for s in queue.seats):
            self.error(frame, "Unable to add interface: Already there")
            return
        paused = (frame.get_ci("Paused") or "").strip().lower() in ("true", "yes", "1")
        penalty_text = (frame.get_ci("Penalty") or "0").strip()
        seat = Seat(
            interface,
            (frame.get_ci("MemberName") or interface).strip(),
            membership="dynamic",
            penalty=int(penalty_text) if penalty_text.isdigit() else 0,
            paused=paused,
            login_time=int(self.world.sim_now()),
        )
        queue.seats.append(seat)
        self.respond(frame, n.RESPONSE_SUCCESS, "Added interface to queue")
        self.world.member_event(n.EV_QUEUE_MEMBER_ADDED, queue, seat)
        self.world.dispatch(queue)

    async def queue_remove(self, frame: Frame) -> None:
        target = self._queue_member_target(
            frame,
            missing="Need 'Queue' and 'Interface' parameters.",
            no_queue="Unable to remove interface: No such queue",
        )
        if target is None:
            return
        queue, interface = target
        seat = next((s for s in queue.seats if s.interface == interface), None)
        if seat is None:
            self.error(frame, "Unable to remove interface: Not there")
            return
        if seat.membership == "static":
            self.error(frame, "Member not dynamic")
            return
        queue.seats.remove(seat)
        self.respond(frame, n.RESPONSE_SUCCESS, "Removed interface from queue")
        self.world.member_event(n.EV_QUEUE_MEMBER_REMOVED, queue, seat)

    async def mixmonitor(self, frame: Frame) -> None:
        chan = self._named_channel(frame)
        if chan is None:
            return
        self.respond(frame, n.RESPONSE_SUCCESS)
        start_mixmonitor(self.world, chan)

    async def getvar(self, frame: Frame) -> None:
        from gateway.sim.ami.agi import get_variable

        variable = (frame.get_ci("Variable") or "").strip()
        if not variable:
            self.error(frame, "No variable specified")
            return
        name = (frame.get_ci(n.H_CHANNEL) or "").strip()
        value = ""
        if name:
            chan = self.world.find_channel(name)
            if chan is None:
                self.error(frame, "No such channel")
                return
            value = get_variable(chan, variable) or ""
        elif variable.endswith(")"):  # a function, read on a dummy channel (call log's clock probe)
            value = self.world.evaluate(variable) or ""
        self.respond(frame, n.RESPONSE_SUCCESS, None, ("Variable", variable), ("Value", value))

    async def setvar(self, frame: Frame) -> None:
        variable = (frame.get_ci("Variable") or "").strip()
        if not variable:
            self.error(frame, "No variable specified")
            return
        name = (frame.get_ci(n.H_CHANNEL) or "").strip()
        if name:
            chan = self.world.find_channel(name)
            if chan is None:
                self.error(frame, "Channel not found")
                return
            self.world.set_var(chan, variable, frame.get_ci("Value") or "")
        self.respond(frame, n.RESPONSE_SUCCESS, "Variable Set")

    async def agi(self, frame: Frame) -> None:
        name = (frame.get_ci(n.H_CHANNEL) or "").strip()
        command = (frame.get_ci(n.H_COMMAND) or "").strip()
        if not name or not command:
            self.error(frame, "Both, Channel and Command are *required*")
            return
        chan = self.world.find_channel(name)
        if chan is None:
            self.error(frame, f"Channel {name} does not exist.")
            return
        if not chan.in_agi:
            self.error(frame, f"Failed to add AGI command to channel {chan.name} queue")
            return
        command_id = frame.get_ci(n.H_COMMAND_ID_ACTION) or ""
        chan.agi_commands.put_nowait((command, command_id))
        self.respond(frame, n.RESPONSE_SUCCESS, "Added AGI command to queue")


def parse_callerid(text: str) -> tuple[str, str]:
    """``"Name" <number>`` → (number, name), as ast_callerid_parse does for the usual forms."""
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, number = text[:-1].partition("<")
        return number.strip(), name.strip().strip('"').strip()
    if text and all(ch.isdigit() or ch in "+*#" for ch in text):
        return text, ""
    return "", text.strip('"')
