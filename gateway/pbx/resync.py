"""Resync: which channels are live on the PBX, and what a (re)connect found.

The tracker follows ``Newchannel``/``Hangup`` while the link is up, remembers
the live set when the link drops, and after each login compares it with the
PBX's ``CoreShowChannels`` list: calls that survived the outage, calls lost
while we were away, calls that appeared, and the AsyncAGI calls to hand back to
the dialplan because no flow serves them any more (and those that may be running
an application such a call's flow started, to hand back when it returns). A
``Hangup`` seen after the list was asked for wins over the list, and a
``Newchannel`` seen then adds to it: Asterisk sends the events raised while it
builds the list after the list's ``Complete``, and listeners get the report
after those events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from gateway.ami import names as n
from gateway.ami.frames import Frame
from gateway.clock import Clock
from gateway.pbx.values import ChannelInfo, ResyncReport

log = logging.getLogger(__name__)


class ChannelTracker:
    """Live channels of one PBX by ``Uniqueid``, and the resync that reconciles them."""

    def __init__(self, pbx: str, clock: Clock) -> None:
        self._pbx = pbx
        self._clock = clock
        self.live: dict[str, ChannelInfo] = {}  # uniqueid → channel
        self._at_loss: dict[str, ChannelInfo] | None = None
        self._hung_up: set[str] | None = None  # hung up since the list was asked for
        self._began: set[str] | None = None  # created since the list was asked for

    def ev_newchannel(self, frame: Frame) -> None:
        uid = frame.get(n.H_UNIQUEID)
        if uid:
            self.live[uid] = ChannelInfo(
                channel=frame.get(n.H_CHANNEL, ""),
                uniqueid=uid,
                linkedid=frame.get(n.H_LINKEDID, uid),
                caller_number=frame.get(n.H_CALLER_ID_NUM, ""),
            )
            if self._began is not None:
                self._began.add(uid)

    def ev_hangup(self, frame: Frame) -> None:
        uid = frame.get(n.H_UNIQUEID)
        if uid:
            self.live.pop(uid, None)
            if self._hung_up is not None:
                self._hung_up.add(uid)

    def begin(self) -> None:
        """The channel list is about to be asked for: from now on a Hangup wins over it
        and a Newchannel adds to it."""
        self._hung_up = set()
        self._began = set()

    def link_lost(self) -> None:
        if self._at_loss is None:
            self._at_loss = dict(self.live)

    def reconcile(
        self,
        items: Iterable[Frame],
        *,
        reconnect: bool,
        orphaned: set[str],
        serving: Callable[[str], bool],
    ) -> ResyncReport:
        """Compare the PBX's channel list with what we knew; ``orphaned`` are the
        AGI channels a link loss cut off, ``serving`` tells a channel a flow serves."""
        alive: dict[str, ChannelInfo] = {}
        hung_up, self._hung_up = self._hung_up or set(), None
        began, self._began = self._began or set(), None
        for item in items:
            info = listed_channel(item)
            if info is not None and info.uniqueid not in hung_up:
                alive[info.uniqueid] = info
        for uid in began - hung_up:
            # Too new for the list, but live: listeners have seen its events already.
            info = self.live.get(uid)
            if info is not None:
                alive.setdefault(uid, info)
        known = self._at_loss if self._at_loss is not None else {}
        survived = tuple(alive[uid] for uid in known if uid in alive)  # as the PBX sees it now
        lost = tuple(info for uid, info in known.items() if uid not in alive and uid in self.live)
        appeared = tuple(info for uid, info in alive.items() if uid not in known)
        for info in lost:
            self.live.pop(info.uniqueid, None)
        self.live.update(alive)
        self._at_loss = None
        released: list[str] = []
        maybe: list[str] = []
        for info in survived:
            if info.channel in orphaned or _waits_in_asyncagi(info, serving):
                released.append(info.channel)
        for info in appeared:
            if _waits_in_asyncagi(info, serving):
                released.append(info.channel)
            elif _may_run_inside_asyncagi(info, serving):
                maybe.append(info.channel)
        log.info(
            "PBX %s: resync: %d live, %d survived, %d lost, %d appeared",
            self._pbx,
            len(alive),
            len(survived),
            len(lost),
            len(appeared),
        )
        return ResyncReport(
            pbx=self._pbx,
            at=self._clock.now(),
            reconnect=reconnect,
            survived=survived,
            lost=lost,
            appeared=appeared,
            released=tuple(released),
            maybe_in_asyncagi=tuple(maybe),
        )


def listed_channel(item: Frame) -> ChannelInfo | None:
    """A channel of ``CoreShowChannels``' list; None for an item with no Uniqueid."""
    uid = item.get(n.H_UNIQUEID) or item.get_ci(n.H_UNIQUEID) or ""
    if not uid:
        return None
    return ChannelInfo(
        channel=item.get(n.H_CHANNEL, ""),
        uniqueid=uid,
        linkedid=item.get(n.H_LINKEDID) or item.get_ci(n.H_LINKEDID) or uid,
        caller_number=item.get(n.H_CALLER_ID_NUM, ""),
        application=f"{item.get('Application', '')}({item.get('ApplicationData', '')})",
    )


def asyncagi_orphans(
    items: Iterable[Frame], serving: Callable[[str], bool]
) -> tuple[list[str], list[str]]:
    """Of a channel list, the calls waiting in AsyncAGI that no flow serves, and those
    that may run an application inside an AsyncAGI session no flow serves: what a
    gateway that takes over a PBX's AsyncAGI calls from a dead one hands back."""
    released: list[str] = []
    maybe: list[str] = []
    for item in items:
        info = listed_channel(item)
        if info is None:
            continue
        if _waits_in_asyncagi(info, serving):
            released.append(info.channel)
        elif _may_run_inside_asyncagi(info, serving):
            maybe.append(info.channel)
    return released, maybe


def _waits_in_asyncagi(info: ChannelInfo, serving: Callable[[str], bool]) -> bool:
    """A call that reached AGI(agi:async) while nobody listened (one that appeared, or a
    callback answered during the outage) waits in silence: its AsyncAGIStart is gone, so
    no flow can take it. It is handed back to the dialplan (the hotline context queues it
    for an agent; the callback context hangs up and the attempt settles as unknown)."""
    return info.application.startswith("AGI(agi:async") and not serving(info.channel)


def _may_run_inside_asyncagi(info: ChannelInfo, serving: Callable[[str], bool]) -> bool:
    """A call that appeared running a dialplan application may be running it for an
    AsyncAGI session: a flow's ``EXEC Queue`` whose gateway was killed meanwhile (a link
    loss leaves the call among the orphans instead). When the application returns, the
    call waits at AsyncAGI's command poll for a command nobody will send. The channel
    list cannot tell (it names the application, not the AGI around it); Asterisk can:
    it queues an AGI command for a channel in AsyncAGI and refuses it for any other.
    A channel with no application yet, and the called side of a Dial or a queue
    ("(Outgoing Line)"), never runs AGI."""
    app = info.application
    return (
        app not in ("", "()")
        and not app.startswith("AGI(")
        and not app.endswith("(Outgoing Line))")
        and not serving(info.channel)
    )
