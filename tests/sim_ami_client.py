"""A raw AMI client over TCP for the simulated PBX's tests: FrameParser, no library in between."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

from gateway.ami.frames import Frame, FrameError, FrameParser, serialize


class RawAmi:
    """Sends actions and collects every frame the server sends, in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = FrameParser()
        self.frames: list[Frame] = []
        self.errors: list[FrameError] = []
        self.raw = bytearray()
        self._seen = 0
        self._counter = 0
        self._new = asyncio.Event()
        self.closed = asyncio.Event()
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, port: int) -> RawAmi:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self.raw += data
                for item in self.parser.feed(data):
                    if isinstance(item, FrameError):
                        self.errors.append(item)
                    else:
                        self.frames.append(item)
                self._new.set()
        except ConnectionError:
            pass
        finally:
            self.closed.set()
            self._new.set()

    def send(self, action: str, *headers: tuple[str, str], action_id: str | None = None) -> str:
        self._counter += 1
        aid = action_id or f"t-{self._counter}"
        self.writer.write(serialize([("Action", action), ("ActionID", aid), *headers]))
        return aid

    async def wait_for(self, match: Callable[[Frame], bool], timeout: float = 5.0) -> Frame:  # noqa: ASYNC109
        """The first frame (from the start) matching ``match``."""
        async with asyncio.timeout(timeout):
            index = 0
            while True:
                while index < len(self.frames):
                    frame = self.frames[index]
                    index += 1
                    if match(frame):
                        return frame
                if self.closed.is_set():
                    raise ConnectionError("the server closed the connection")
                self._new.clear()
                await self._new.wait()

    async def response(self, action_id: str, timeout: float = 5.0) -> Frame:  # noqa: ASYNC109
        return await self.wait_for(
            lambda f: "Response" in f and f.get("ActionID") == action_id, timeout
        )

    async def event(self, name: str, timeout: float = 5.0, **headers: str) -> Frame:  # noqa: ASYNC109
        return await self.wait_for(
            lambda f: f.get("Event") == name and all(f.get(k) == v for k, v in headers.items()),
            timeout,
        )

    async def action(self, action: str, *headers: tuple[str, str], timeout: float = 5.0) -> Frame:  # noqa: ASYNC109
        return await self.response(self.send(action, *headers), timeout)

    async def login(
        self, user: str = "gateway", secret: str = "s3cret", events: str = "on"
    ) -> Frame:
        return await self.action(
            "Login", ("Username", user), ("Secret", secret), ("Events", events)
        )

    async def login_md5(self, user: str = "gateway", secret: str = "s3cret") -> Frame:
        challenge = await self.action("Challenge", ("AuthType", "MD5"))
        key = hashlib.md5((challenge["Challenge"] + secret).encode()).hexdigest()
        return await self.action("Login", ("AuthType", "MD5"), ("Username", user), ("Key", key))

    async def agi(self, channel: str, command: str, command_id: str, timeout: float = 5.0) -> Frame:  # noqa: ASYNC109
        """Queue an AGI command; return its AsyncAGIExec."""
        reply = await self.action(
            "AGI", ("Channel", channel), ("Command", command), ("CommandID", command_id)
        )
        assert reply["Response"] == "Success", reply
        return await self.event("AsyncAGIExec", timeout, CommandId=command_id)

    def events(self, name: str) -> list[Frame]:
        return [f for f in self.frames if f.get("Event") == name]

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
