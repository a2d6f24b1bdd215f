"""Link supervision: connect, log in, keep the link alive, reconnect with backoff.

Login is plain or MD5-challenge by configuration; a refused secret is an
:class:`AmiLoginError`, logged as an error each time and retried for ever (after
``login_attempts`` quick tries, every ``reconnect_max``); actions and health
checks raise it meanwhile. Reconnects use exponential backoff with jitter
between ``reconnect_min`` and ``reconnect_max``, started afresh only once a
link has stayed up a while. We ping every ``ping_interval``. A busy
PBX is not a dead one: any byte read counts as alive, so a late Pong on a link
that keeps delivering events is waited for; only silence (no byte for
``ping_timeout``, stretched when recent Pongs came late) declares the link dead.
After each login the link runs the session's ``on_up`` step (the resync).
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
    AmiConnectionLost,
    AmiError,
    AmiLoginError,
    AmiNotConnected,
)
from gateway.pbx.transport import AmiProtocol

log = logging.getLogger(__name__)

LOGOFF_TIMEOUT = 1.0  # seconds given to a polite Logoff on close
# A quiet link is declared dead after max(ping_timeout, SLOW_PONG_FACTOR × the smoothed
# Pong round trip) of silence, never more than MAX_SILENCE_FACTOR × ping_timeout.
SLOW_PONG_FACTOR = 4.0
MAX_SILENCE_FACTOR = 6.0
# A link up for max(STABLE_FACTOR × reconnect_min, reconnect_max) seconds resets the backoff.
STABLE_FACTOR = 10.0


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
        self.failure: AmiLoginError | None = None  # the last refusal, until a login succeeds
        self.refused = asyncio.Event()  # set while the last login was refused
        self._up_since: float | None = None  # clock.monotonic() of the last login
        self.connects = 0  # successful logins so far
        self._srtt = 0.0  # smoothed Pong round trip, seconds

    @property
    def name(self) -> str:
        return self.config.name

    # -- for the session ---------------------------------------------------------

    async def wait_connected(self, within: float | None = None) -> None:
        """Wait until logged in; raise the login error if the PBX refused the login."""
        if not self.connected.is_set() and not self.stopped.is_set() and not self.refused.is_set():
            waiters = {
                asyncio.ensure_future(self.connected.wait()),
                asyncio.ensure_future(self.stopped.wait()),
                asyncio.ensure_future(self.refused.wait()),
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
        if self.failure is not None and not self.connected.is_set():
            raise self.failure  # refused: say why at once (health, callers)
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

    def stable_after(self) -> float:
        """How long a link must stay up before its backoff starts afresh: a PBX that
        accepts the login and drops soon after is not retried at the quickest pace."""
        return max(STABLE_FACTOR * self.config.reconnect_min, self.config.reconnect_max)

    async def run(self) -> None:
        """Connect, serve, and reconnect with backoff until closed. A refused login is
        retried for ever: quickly ``login_attempts`` times, then every ``reconnect_max``,
        each refusal logged as an error (``wait_connected`` and actions raise it)."""
        cfg = self.config
        attempt = 0
        refused = 0
        while not self.closing:
            try:
                await self._connect_and_serve()
            except AmiLoginError as exc:
                refused += 1
                self.failure = exc
                self.refused.set()
                log.error("%s (%d refused in a row; retrying until it is accepted)", exc, refused)
                if refused == cfg.login_attempts:
                    log.critical(
                        "PBX %s: %d logins refused: fix the AMI user or secret; retrying every "
                        "%gs meanwhile",
                        self.name,
                        refused,
                        cfg.reconnect_max,
                    )
            except (OSError, TimeoutError, AmiError) as exc:
                log.warning("PBX %s: link down: %s", self.name, exc or type(exc).__name__)
            up_since = self._up_since
            self._up_since = None
            if up_since is not None:
                refused = 0
                if asyncio.get_running_loop().time() - up_since >= self.stable_after():
                    attempt = 0  # it stayed up: start the backoff afresh
            if self.closing:
                return
            if refused >= cfg.login_attempts:
                delay = backoff_delay(0, cfg.reconnect_max, cfg.reconnect_max, self._rng)
            else:
                delay = backoff_delay(attempt, cfg.reconnect_min, cfg.reconnect_max, self._rng)
                attempt += 1
            log.info("PBX %s: reconnecting in %.2fs", self.name, delay)
            await self.clock.sleep(delay)

    async def _connect_and_serve(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(cfg.connect_timeout):
            _, protocol = await loop.create_connection(
                lambda: AmiProtocol(self._dispatcher, self._lost, charset=cfg.charset),
                cfg.host,
                cfg.port,
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
            self._up_since = asyncio.get_running_loop().time()
            self.failure = None
            self.refused.clear()
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
            rtt = await self._keep_alive_ping(protocol)
            log.debug("PBX %s: ping %.1f ms", self.name, rtt * 1000)

    def silence_limit(self) -> float:
        """How long the link may stay silent before it is declared dead: ``ping_timeout``,
        or more when recent Pongs came late (a loaded PBX answers late on a quiet link too)."""
        timeout = self.config.ping_timeout
        return min(max(timeout, SLOW_PONG_FACTOR * self._srtt), MAX_SILENCE_FACTOR * timeout)

    async def _keep_alive_ping(self, protocol: AmiProtocol) -> float:
        """Ping and wait for the Pong as long as the PBX keeps talking: any byte read
        proves it alive; only ``silence_limit()`` seconds with nothing read declares
        the link dead. Returns the round trip."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        pong = asyncio.ensure_future(
            self._dispatcher.request(protocol, {n.H_ACTION: n.ACTION_PING}, None)
        )
        try:
            while True:
                limit = self.silence_limit()
                remaining = max(start, protocol.last_read) + limit - loop.time()
                if remaining <= 0:
                    log.warning(
                        "PBX %s: no Pong and nothing read for %.1fs: link declared dead",
                        self.name,
                        limit,
                    )
                    raise AmiConnectionLost(self.name, "keep-alive ping")
                done, _ = await asyncio.wait({pong}, timeout=remaining)
                if done:
                    break
        finally:
            if not pong.done():
                pong.cancel()
            await asyncio.gather(pong, return_exceptions=True)
        reply = pong.result()
        rtt = loop.time() - start
        self._srtt = rtt if not self._srtt else self._srtt + (rtt - self._srtt) / 8
        if rtt > self.config.ping_timeout:
            log.info(
                "PBX %s: Pong after %.1fs, but the link kept delivering: busy, not dead",
                self.name,
                rtt,
            )
        if reply.response != n.RESPONSE_SUCCESS:
            raise AmiActionFailed(
                self.name, n.ACTION_PING, reply.get(n.H_ACTION_ID, ""), reply.get(n.H_MESSAGE, "")
            )
        return rtt

    def _lost(self, protocol: AmiProtocol, exc: Exception | None) -> None:
        if protocol is not self.protocol:
            return
        self.connected.clear()
        if not self.closing:
            log.warning("PBX %s: connection lost%s", self.name, f": {exc}" if exc else "")
        self._dispatcher.fail_all()
        self._on_lost()
