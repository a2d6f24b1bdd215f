"""One :class:`AmiSession` per configured PBX, started and stopped together."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Self

from gateway.ami.frames import Frame
from gateway.clock import Clock
from gateway.config import PbxSection
from gateway.pbx.agi_router import AgiHandler
from gateway.pbx.values import ResyncListener

if TYPE_CHECKING:
    from gateway.pbx.session import AmiSession

log = logging.getLogger(__name__)


class PbxPool:
    """One :class:`AmiSession` per configured PBX, started and stopped together."""

    def __init__(
        self,
        sections: Iterable[PbxSection],
        *,
        clock: Clock | None = None,
        agi_handler: AgiHandler | None = None,
    ) -> None:
        from gateway.pbx.session import AmiSession

        sections = tuple(sections)
        seen: set[str] = set()
        for section in sections:
            if section.name in seen:
                raise ValueError(f"two PBXs are named {section.name!r}")
            seen.add(section.name)
        self._sessions: dict[str, AmiSession] = {
            s.name: AmiSession(s, clock=clock, agi_handler=agi_handler) for s in sections
        }

    @property
    def sessions(self) -> Mapping[str, AmiSession]:
        return dict(self._sessions)

    def __getitem__(self, name: str) -> AmiSession:
        try:
            return self._sessions[name]
        except KeyError:
            known = sorted(self._sessions)
            raise KeyError(f"no PBX named {name!r}; configured: {known}") from None

    def __iter__(self) -> Iterator[AmiSession]:
        return iter(self._sessions.values())

    def add_listener(
        self, fn: Callable[[str, Frame], None], events: Iterable[str] | None = None
    ) -> None:
        """Call ``fn(pbx_name, frame)`` for the events of every PBX."""
        wanted = None if events is None else tuple(events)
        for session in self._sessions.values():
            session.add_listener(functools.partial(fn, session.name), wanted)

    def add_resync_listener(self, fn: ResyncListener) -> None:
        for session in self._sessions.values():
            session.add_resync_listener(fn)

    def set_agi_handler(self, handler: AgiHandler) -> None:
        for session in self._sessions.values():
            session.set_agi_handler(handler)

    async def __aenter__(self) -> Self:
        started: list[AmiSession] = []
        try:
            for session in self._sessions.values():
                await session.__aenter__()
                started.append(session)
        except BaseException:
            for session in reversed(started):
                await session.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for session in reversed(list(self._sessions.values())):
            try:
                await session.close()
            except Exception:
                log.exception("PBX %s: error while closing", session.name)
