"""Link supervision: connect, log in, keep the link alive, reconnect with backoff.

Login is plain or MD5-challenge by configuration; a refused secret is an
:class:`AmiLoginError`, retried ``login_attempts`` times with backoff and then
given up (logged). Reconnects use exponential backoff with jitter between
``reconnect_min`` and ``reconnect_max``. We ping every ``ping_interval``; no
``Pong`` within ``ping_timeout`` declares the link dead. After each login the
link runs the session's ``on_up`` step (the resync) before serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable

from gateway.ami import names as n
from gateway.clock import Clock
from gateway.config import PbxSection
from gateway.pbx.dispatch import Dispatcher
from gateway.pbx.exceptions import (
    AmiActionFailed,
    AmiActionTimeout,
    AmiConnectionLost,
    AmiError,
    AmiLoginError,
    AmiNotConnected,
)
from gateway.pbx.transport import AmiProtocol

log = logging.getLogger(__name__)

LOGOFF_TIMEOUT = 1.0  # seconds given to a polite Logoff on close


def backoff_delay(attempt: int, low: float, high: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: about ``low * 2**attempt``, capped at ``high``,
    drawn from its upper half so reconnecting gateways do not stampede together."""
    if attempt < 0:
        raise ValueError(f"attempt must be ≥ 0, got {attempt}")
    ceiling = min(high, low * (2 ** min(attempt, 32)))
    return rng.uniform(ceiling / 2, ceiling)


class Link:
    """One PBX's TCP link: the live protocol, and the loop that keeps it up."""

    def __init__(
        self,
        config: PbxSection,
        dispatcher: Dispatcher,
        *,
        clock: Clock,
        rng: random.Random,
        on_up: Callable[[AmiProtocol], Awaitable[None]],
        on_lost: Callable[[], None],
    ) -> None:
        self.config = config
        self.clock = clock
        self._rng = rng
        self._dispatcher = dispatcher
        self._on_up = on_up
        self._on_lost = on_lost
        self.protocol: AmiProtocol | None = None
        self.connected = asyncio.Event()
        self.stopped = asyncio.Event()  # closing, or gave up
        self.started = False
        self.closing = False
        self.failure: AmiError | None = None  # set once the link gave up (login refused)
        self.connects = 0  # successful logins so far

    @property
    def name(self) -> str:
        return self.config.name

    # -- for the session ---------------------------------------------------------

    async def wait_connected(self, within: float | None = None) -> None:
        """Wait until logged in; raise the login error if the link gave up."""
        if not self.connected.is_set() and not self.stopped.is_set():
            waiters = {
                asyncio.ensure_future(self.connected.wait()),
                asyncio.ensure_future(self.stopped.wait()),
            }
            try:
                done, _ = await asyncio.wait(
                    waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)
            if not done:
                raise AmiNotConnected(self.name, "wait", f"not logged in within {within:g}s")
        if self.connected.is_set():
            return
        if self.failure is not None:
            raise self.failure
        raise AmiNotConnected(self.name, "wait", "session closed")

    async def get(self, action: str) -> AmiProtocol:
        """The live protocol, waiting up to ``action_timeout`` for a (re)connect."""
        if self.closing:
            raise AmiNotConnected(self.name, action, "session closed")
        if not self.started:
            raise AmiNotConnected(self.name, action, "session not started")
        if not self.connected.is_set():
            try:
                await self.wait_connected(self.config.action_timeout)
            except AmiNotConnected as exc:
                raise AmiNotConnected(self.name, action, exc.reason) from None
        protocol = self.protocol
        if protocol is None:
            raise AmiNotConnected(self.name, action, "no link")
        return protocol

    async def ping(self, protocol: AmiProtocol) -> float:
        """Round trip of an AMI ``Ping`` on ``protocol``, in seconds."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        reply = await self._dispatcher.request(
            protocol, {n.H_ACTION: n.ACTION_PING}, self.config.ping_timeout
        )
        if reply.response != n.RESPONSE_SUCCESS:
            raise AmiActionFailed(
                self.name, n.ACTION_PING, reply.get(n.H_ACTION_ID, ""), reply.get(n.H_MESSAGE, "")
            )
        return loop.time() - start

    async def logoff(self) -> None:
        """Stop reconnecting; say Logoff politely if logged in (bounded in time)."""
        self.closing = True
        self.stopped.set()
        protocol = self.protocol
        if protocol is not None and self.connected.is_set():
            try:
                await self._dispatcher.request(
                    protocol, {n.H_ACTION: n.ACTION_LOGOFF}, LOGOFF_TIMEOUT
                )
            except (AmiError, ConnectionError) as exc:
                log.info("PBX %s: logoff not acknowledged: %s", self.name, exc)

    async def close(self) -> None:
        """Close the socket and wait until it is closed."""
        protocol = self.protocol
        if protocol is not None:
            protocol.close()
            await protocol.lost
        self.connected.clear()

    def drop(self) -> None:
        """Close the live socket; the loop reconnects (Asterisk said it shuts down)."""
        if self.protocol is not None:
            self.protocol.close()

    # -- the loop ---------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, and reconnect with backoff until closed or given up."""
        cfg = self.config
        attempt = 0
        refused = 0
        while not self.closing:
            before = self.connects
            try:
                await self._connect_and_serve()
            except AmiLoginError as exc:
                refused += 1
                log.error("%s (attempt %d of %d)", exc, refused, cfg.login_attempts)
                if refused >= cfg.login_attempts:
                    log.error("PBX %s: giving up after %d refused logins", self.name, refused)
                    self.failure = exc
                    self.stopped.set()
                    return
            except (OSError, TimeoutError, AmiError) as exc:
                log.warning("PBX %s: link down: %s", self.name, exc or type(exc).__name__)
            if self.connects > before:  # it was up: start the backoff afresh
                attempt = 0
                refused = 0
            if self.closing:
                return
            delay = backoff_delay(attempt, cfg.reconnect_min, cfg.reconnect_max, self._rng)
            attempt += 1
            log.info("PBX %s: reconnecting in %.2fs", self.name, delay)
            await self.clock.sleep(delay)

    async def _connect_and_serve(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(cfg.connect_timeout):
            _, protocol = await loop.create_connection(
                lambda: AmiProtocol(self._dispatcher, self._lost), cfg.host, cfg.port
            )
        self.protocol = protocol
        served = False
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                banner = await protocol.banner
            if banner is None:
                log.warning("PBX %s: no Asterisk banner; going on", self.name)
            await self._login(protocol)
            self.connects += 1
            log.info("PBX %s: logged in as %s (%s)", self.name, cfg.username, banner or "?")
            self.connected.set()
            await self._on_up(protocol)
            served = True
            await self._keep_alive(protocol)
        finally:
            protocol.close()
            await protocol.lost
            if not served:
                self.connected.clear()

    async def _login(self, protocol: AmiProtocol) -> None:
        cfg = self.config
        request = self._dispatcher.request
        login: dict[str, str] = {
            n.H_ACTION: n.ACTION_LOGIN,
            n.H_USERNAME: cfg.username,
            n.H_EVENTS: "on",
        }
        if cfg.auth.lower() == "md5":
            challenge = await request(
                protocol,
                {n.H_ACTION: n.ACTION_CHALLENGE, n.H_AUTH_TYPE: "MD5"},
                cfg.action_timeout,
            )
            token = challenge.get(n.H_CHALLENGE)
            if challenge.response != n.RESPONSE_SUCCESS or not token:
                raise AmiLoginError(
                    self.name,
                    cfg.username,
                    f"MD5 challenge refused: {challenge.get(n.H_MESSAGE, '')}",
                )
            digest = hashlib.md5((token + cfg.secret.reveal()).encode("utf-8")).hexdigest()
            login[n.H_AUTH_TYPE] = "MD5"
            login[n.H_KEY] = digest
        else:
            login[n.H_SECRET] = cfg.secret.reveal()
        reply = await request(protocol, login, cfg.action_timeout)
        if reply.response != n.RESPONSE_SUCCESS:
            raise AmiLoginError(self.name, cfg.username, reply.get(n.H_MESSAGE, "") or "refused")

    async def _keep_alive(self, protocol: AmiProtocol) -> None:
        cfg = self.config
        while True:
            done, _ = await asyncio.wait({protocol.lost}, timeout=cfg.ping_interval)
            if done:
                raise AmiConnectionLost(self.name, "the session")
            try:
                rtt = await self.ping(protocol)
            except AmiActionTimeout:
                log.warning(
                    "PBX %s: no Pong within %gs: link declared dead", self.name, cfg.ping_timeout
                )
                raise AmiConnectionLost(self.name, "keep-alive ping") from None
            log.debug("PBX %s: ping %.1f ms", self.name, rtt * 1000)

    def _lost(self, protocol: AmiProtocol, exc: Exception | None) -> None:
        if protocol is not self.protocol:
            return
        self.connected.clear()
        if not self.closing:
            log.warning("PBX %s: connection lost%s", self.name, f": {exc}" if exc else "")
        self._dispatcher.fail_all()
        self._on_lost()
