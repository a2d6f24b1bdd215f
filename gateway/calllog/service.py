"""The call log component: feeds the builder from the AMI session, stores the records.

Wiring (one AMI session per PBX)::

    async with CallLogService.from_config(config, store.calls, clock) as calllog:
        calllog.connect(session)            # session.add_listener / add_resync_listener
        ...                                  # flow runner: calllog.attach(linkedid, ...)

With a manager that calls ``fn(pbx_name, frame)`` for several PBXs, register
``calllog.on_pbx_event`` with ``events=EVENTS`` and ``calllog.on_resync`` instead.

The listeners are synchronous and only touch the pure builder (trap 1 of
asyncio telephony code: no task per event). One task, owned by this component,
drains the changed records every ``flush_interval`` seconds, or at once when
``batch_size`` of them are waiting, and upserts them; a failed write is logged
and retried with the next batch, nothing is dropped. Leaving the context stops
the task and stores everything, open calls included.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from types import TracebackType
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.ami import names
from gateway.ami.frames import Frame
from gateway.calllog.builder import (
    EVENTS,
    NOTE_CLOSED_AT_RESYNC,
    CallLogBuilder,
    CallRecord,
    format_offset,
)
from gateway.calllog.pbx_clock import ActionSender, probe_pbx_offset
from gateway.clock import Clock
from gateway.config import Config, ConfigError
from gateway.errors import GatewayError
from gateway.store.calls import CallRecordRepository
from gateway.supervise import ComponentDegraded

log = logging.getLogger(__name__)


class EventSource(Protocol):
    """What the call log needs of an AMI session (``gateway.pbx.session.AmiSession``)."""

    def add_listener(
        self, fn: Callable[[Frame], None], events: Iterable[str] | None = None
    ) -> None: ...

    def add_resync_listener(self, fn: Callable[[Any], None]) -> None: ...


class LiveChannel(Protocol):
    """A channel alive after a (re)connect, as the session's resync report lists it."""

    @property
    def channel(self) -> str: ...

    @property
    def uniqueid(self) -> str: ...

    @property
    def linkedid(self) -> str: ...


@dataclass(frozen=True)
class PbxClock:
    """A PBX's clock as the call log reads its Cdr/CEL times (``run --check`` prints it)."""

    pbx: str
    offset: timedelta | None  # learned from the PBX's own events; None: not yet
    learned_at: datetime | None
    configured: tzinfo | None  # pbx.<name>.timezone, used until the offset is learned

    def describe(self) -> str:
        """One line, e.g. ``PBX main clock: UTC+00:00 (learned from its events at ...)``."""
        if self.offset is not None:
            when = (
                self.learned_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                if self.learned_at
                else "?"
            )
            return (
                f"PBX {self.pbx} clock: UTC{format_offset(self.offset)}"
                f" (learned from its events at {when})"
            )
        if self.configured is not None:
            setting = f"pbx.{self.pbx}.timezone"
            return f"PBX {self.pbx} clock: {self.configured} ({setting}; not learned yet)"
        return f"PBX {self.pbx} clock: assumed UTC until learned from its first call"


class CallLogService:
    """One builder per PBX and the task that stores what they build."""

    def __init__(
        self,
        repository: CallRecordRepository,
        clock: Clock,
        *,
        pbx: str | Sequence[str] = "main",
        hotline_contexts: Collection[str] = ("hotline",),
        callback_contexts: Collection[str] = ("callback",),
        cdr_timezone: tzinfo | None = None,
        timezones: Mapping[str, tzinfo] | None = None,
        flush_interval: float = 0.2,
        batch_size: int = 200,
    ) -> None:
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive, got {flush_interval}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        names_ = [pbx] if isinstance(pbx, str) else list(pbx)
        if not names_:
            raise ValueError("at least one PBX name is needed")
        self._repository = repository
        zones = timezones or {}
        self._builders = {
            name: CallLogBuilder(
                name,
                clock,
                hotline_contexts=hotline_contexts,
                callback_contexts=callback_contexts,
                cdr_timezone=zones.get(name, cdr_timezone),
            )
            for name in names_
        }
        self._stale: list[tuple[str, set[str]]] = []  # resyncs whose store side is to do
        self._sessions: dict[str, ActionSender] = {}
        self._probes: set[str] = set()  # PBXs whose clock to ask (after a login)
        self._probe_failed: set[str] = set()
        self._said: dict[str, timedelta] = {}  # the offsets logged
        self._default = names_[0]
        self._interval = flush_interval
        self._batch = batch_size
        self._waiting = 0  # changes since the last flush, to wake the task early
        self._retry: dict[tuple[str, str], CallRecord] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.stored = 0  # rows written so far
        self.failed_flushes = 0
        self._failing = 0  # consecutive flushes that failed; 0 when the store takes them
        self._last_error = ""
        self._errors_seen: set[str] = set()

    @classmethod
    def from_config(
        cls, config: Config, repository: CallRecordRepository, clock: Clock, **kwargs: Any
    ) -> CallLogService:
        """One builder per configured PBX. Cdr times follow each PBX's own clock
        (learned from its events), read in ``pbx.<name>.timezone`` until then, else UTC;
        never in ``gateway.timezone``, the zone of the people, not of the PBX host."""
        contexts = sorted({p.hotline_context for p in config.pbx})
        zones: dict[str, tzinfo] = {}
        for section in config.pbx:
            name = section.timezone
            if not name:
                continue
            try:
                zones[section.name] = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(
                    f"pbx.{section.name}.timezone",
                    config.source,
                    f"{name!r} is not a timezone (e.g. UTC, Asia/Shanghai)",
                ) from None
        return cls(
            repository,
            clock,
            pbx=[p.name for p in config.pbx],
            hotline_contexts=contexts,
            callback_contexts=(config.callbacks.originate_context,),
            timezones=zones,
            **kwargs,
        )

    # ---------------------------------------------------------------- wiring

    def connect(self, session: EventSource, pbx: str | None = None) -> None:
        """Listen to one AMI session's events and resync reports."""
        builder = self.builder(pbx)

        def on_event(frame: Frame) -> None:
            self._fed(builder.feed(frame))

        session.add_listener(on_event, EVENTS)
        session.add_resync_listener(self.on_resync)
        if hasattr(session, "action"):  # an AMI session: ask its clock after each login
            self._sessions[builder.pbx] = session  # type: ignore[assignment]

    def builder(self, pbx: str | None = None) -> CallLogBuilder:
        name = pbx or self._default
        try:
            return self._builders[name]
        except KeyError:
            raise GatewayError(
                f"call log: unknown PBX {name!r} (known: {', '.join(self._builders)})"
            ) from None

    def on_event(self, frame: Frame) -> None:
        """Listener for the default PBX's session."""
        self._fed(self._builders[self._default].feed(frame))

    def on_pbx_event(self, pbx: str, frame: Frame) -> None:
        """Listener for a manager that names the PBX of each event."""
        builder = self._builders.get(pbx)
        if builder is None:
            log.warning("call log: event from unknown PBX %r ignored", pbx)
            return
        self._fed(builder.feed(frame))

    def on_resync(self, report: Any) -> None:
        """After a (re)connect. ``report`` is the session's resync report (``pbx``,
        ``survived`` and ``appeared`` channels), or an iterable of live Uniqueids,
        Linkedids or ``CoreShowChannel`` frames for the default PBX."""
        pbx = getattr(report, "pbx", None)
        if hasattr(report, "survived"):
            channels = [*report.survived, *getattr(report, "appeared", ())]
            live: list[str | Frame] = [_as_frame(c) for c in channels]
        else:
            live = list(report)
        builder = self._builders.get(pbx or self._default)
        if builder is None:
            log.warning("call log: resync of unknown PBX %r ignored", pbx)
            return
        closed = builder.resync(live)
        if closed:
            log.info(
                "call log %s: %d call(s) ended while the link was down", builder.pbx, len(closed)
            )
        # Records left open in the store by an earlier run (killed, restarted) whose
        # call is not live are closed by the flush task, after this resync's records.
        keep = builder.open_linkedids()
        for item in live:
            if isinstance(item, Frame):
                keep.update(
                    v for v in (item.get(names.H_LINKEDID), item.get(names.H_UNIQUEID)) if v
                )
            else:
                keep.add(item)
        self._stale.append((builder.pbx, keep))
        if builder.pbx in self._sessions:
            self._probes.add(builder.pbx)
        self._fed(True)
        if self._wake is not None:
            self._wake.set()

    def attach(
        self,
        linkedid: str,
        *,
        pbx: str | None = None,
        ivr_path: Sequence[str] | None = None,
        case_id: int | None = None,
        recording: str | None = None,
    ) -> None:
        """What the flow runner knows of a call: see :meth:`CallLogBuilder.attach`."""
        self.builder(pbx).attach(linkedid, ivr_path=ivr_path, case_id=case_id, recording=recording)
        self._fed(True)

    def pbx_clocks(self) -> list[PbxClock]:
        """What the call log knows of each PBX's clock, for ``run --check`` and /health."""
        return [
            PbxClock(
                pbx=b.pbx,
                offset=b.pbx_offset,
                learned_at=b.pbx_offset_learned_at,
                configured=b.configured_timezone,
            )
            for b in self._builders.values()
        ]

    def expect_originate(self, action_id: str, pbx: str | None = None) -> None:
        """The gateway is about to send an Originate with this ActionID: log it outbound."""
        self.builder(pbx).expect_originate(action_id)

    def _say_clocks(self) -> None:
        """Log each PBX's clock offset once, and again when it changes."""
        for builder in self._builders.values():
            offset = builder.pbx_offset
            if offset is not None and self._said.get(builder.pbx) != offset:
                self._said[builder.pbx] = offset
                log.info(
                    "call log %s: the PBX clock runs at UTC%s", builder.pbx, format_offset(offset)
                )

    def _fed(self, changed: bool) -> None:
        if changed:
            self._waiting += 1
            if self._waiting >= self._batch and self._wake is not None:
                self._wake.set()

    # ------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> CallLogService:
        if self._task is not None:
            raise RuntimeError("the call log is already running")
        self._stopping = False
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="calllog-flush")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            assert self._wake is not None
            self._wake.set()
            try:
                await task
            finally:
                await self.flush()

    def __del__(self) -> None:
        if getattr(self, "_task", None) is not None:
            warnings.warn("call log service was never stopped", ResourceWarning, stacklevel=1)

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            try:
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if not self._stopping:
                await self.flush()
                await self._probe_clocks()

    async def _probe_clocks(self) -> None:
        """Ask each freshly logged-in PBX its UTC offset (Cdr times are its local time)."""
        probes, self._probes = self._probes, set()
        for pbx in sorted(probes):
            session = self._sessions.get(pbx)
            if session is None:
                continue
            try:
                offset = await probe_pbx_offset(session, reply_timeout=2.0)
            except Exception as exc:  # refused, not connected, timed out: learn it from Cdrs
                if pbx not in self._probe_failed:
                    self._probe_failed.add(pbx)
                    log.warning(
                        "call log %s: could not ask the PBX its clock (%s); it is learned from"
                        " its first call's Cdr",
                        pbx,
                        exc,
                    )
                continue
            self._probe_failed.discard(pbx)
            self._builders[pbx].set_pbx_offset(offset)
        self._say_clocks()

    async def flush(self) -> int:
        """Store every changed record now; return the rows written. A store error is
        logged and the records are kept for the next flush."""
        pending = self._retry
        self._retry = {}
        self._waiting = 0
        stale, self._stale = self._stale, []
        for builder in self._builders.values():
            for record in builder.drain():
                pending[(record.pbx, record.linkedid)] = record  # the newest state wins
        if not pending and not stale:
            return 0
        records = list(pending.values())
        written = 0
        for start in range(0, len(records), self._batch):
            chunk = records[start : start + self._batch]
            try:
                written += await self._repository.upsert(chunk)
            except Exception as exc:  # a store error, a full disk: keep them for the next flush
                self._failed(exc, f"storing {len(chunk)} record(s)")
                for record in records[start:]:
                    self._retry.setdefault((record.pbx, record.linkedid), record)
                break
        self.stored += written
        self._say_clocks()
        if not self._retry and self._failing:
            log.info("call log: records stored again after %d failed flushes", self._failing)
            self._failing = 0
        if self._retry:
            self._stale[:0] = stale  # after the records it depends on are stored
            return written
        for index, (pbx, keep) in enumerate(stale):
            # Calls that began since the resync are open in the builder: not stale.
            keep = keep | self._builders[pbx].open_linkedids()
            try:
                closed = await self._repository.close_not_live(pbx, keep, NOTE_CLOSED_AT_RESYNC)
            except Exception as exc:
                self._failed(exc, f"closing records of ended calls of {pbx}")
                self._stale[:0] = stale[index:]
                break
            if closed:
                log.info(
                    "call log %s: %d record(s) left open by an earlier run closed", pbx, len(closed)
                )
            written += len(closed)
        return written

    def _failed(self, exc: Exception, doing: str) -> None:
        """A flush failed: the records stay for the next one. Each kind of error is logged
        once with its traceback; while it repeats (a store locked for seconds, a full
        disk) it is only counted, and :meth:`check` tells ``/health``."""
        self.failed_flushes += 1
        self._failing += 1
        kind = f"{type(exc).__name__}: {exc}"
        self._last_error = f"{doing}: {kind}"
        if kind in self._errors_seen:
            log.debug("call log: %s failed again (%s), will retry", doing, kind)
            return
        self._errors_seen.add(kind)
        log.error("call log: %s failed, will retry", doing, exc_info=exc)

    def check(self) -> None:
        """Raise :class:`ComponentDegraded` while the call log cannot store its records."""
        if self._failing:
            raise ComponentDegraded(
                f"call log: {self._failing} failed flushes, last {self._last_error}"
            )


def _as_frame(channel: LiveChannel) -> Frame:
    """A live channel of a resync report, in the shape of a ``CoreShowChannel`` event."""
    frame = Frame()
    frame[names.H_EVENT] = names.EV_CORE_SHOW_CHANNEL
    frame[names.H_CHANNEL] = channel.channel
    frame[names.H_UNIQUEID] = channel.uniqueid
    frame[names.H_LINKEDID] = channel.linkedid or channel.uniqueid
    caller = getattr(channel, "caller_number", "")
    if caller:
        frame[names.H_CALLER_ID_NUM] = caller
    return frame
