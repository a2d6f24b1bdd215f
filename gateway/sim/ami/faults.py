"""Faults the simulated PBX can be told to show, for tests of the gateway's resilience."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

GARBLED_FRAME = b"Event Newchannel \x00\xff\xfe garbled: no colon here\r\n\xc3(\r\n\r\n"


class Faults:
    """Switches read by every session's writer; set them from a test."""

    def __init__(
        self,
        drop: Callable[[], None],
        shutdown: Callable[[bool, bool], Awaitable[None]],
        garble: Callable[[], None],
    ) -> None:
        self._drop = drop
        self._shutdown = shutdown
        self._garble = garble
        self.max_chunk: int | None = None
        self.lf_terminator = False
        self.write_delay = 0.0
        self.pong_delay = 0.0
        self.list_item_delay = 0.0

    def drop_connections(self) -> None:
        """Cut every AMI connection at once (no goodbye), as a crashed PBX or a lost link would."""
        self._drop()

    def garble_next(self) -> None:
        """Each connected session sends one malformed frame before its next frame."""
        self._garble()

    def split_writes(self, max_chunk: int | None = 7) -> None:
        """Write each frame in pieces of at most ``max_chunk`` bytes, cutting inside multi-byte
        UTF-8 characters when a frame has any; ``None`` writes whole frames again."""
        if max_chunk is not None and max_chunk < 1:
            raise ValueError(f"max_chunk must be at least 1, got {max_chunk}")
        self.max_chunk = max_chunk

    def lf_only(self, enabled: bool = True) -> None:
        """End frames with ``\\r\\n\\n`` instead of ``\\r\\n\\r\\n``, as some builds do."""
        self.lf_terminator = enabled

    def slow(self, seconds: float) -> None:
        """Delay every write by ``seconds`` (real time, not scaled); 0 turns it off."""
        if seconds < 0:
            raise ValueError(f"delay must not be negative, got {seconds}")
        self.write_delay = seconds

    def lag_pong(self, seconds: float) -> None:
        """Answer each Ping ``seconds`` late (real time) while events keep flowing, as a
        loaded Asterisk does when the Ping waits behind other actions (its session
        handles one action at a time and sends events between them). 0 turns it off."""
        if seconds < 0:
            raise ValueError(f"delay must not be negative, got {seconds}")
        self.pong_delay = seconds

    def slow_lists(self, seconds: float) -> None:
        """Take ``seconds`` (real time) per CoreShowChannels item, as a PBX with many
        channels does; calls may end meanwhile (their events follow the Complete)."""
        if seconds < 0:
            raise ValueError(f"delay must not be negative, got {seconds}")
        self.list_item_delay = seconds

    async def shutdown(self, *, cleanly: bool = False, restart: bool = False) -> None:
        """Send ``Event: Shutdown`` to every session, then close them and hang up every call."""
        await self._shutdown(cleanly, restart)

    def chunks(self, data: bytes) -> list[bytes]:
        """Cut ``data`` for :meth:`split_writes`."""
        size = self.max_chunk
        if size is None:
            return [data]
        cuts = set(range(size, len(data), size))
        # make sure one cut lands inside the first multi-byte character
        for i, byte in enumerate(data):
            if byte >= 0xC0:
                cuts.add(i + 1)
                break
        out = []
        start = 0
        for cut in sorted(cuts):
            out.append(data[start:cut])
            start = cut
        out.append(data[start:])
        return [c for c in out if c]
