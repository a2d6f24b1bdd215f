"""The provider seam: the one place that talks to Twilio.

:class:`SmsProvider` is what the outbox needs (send, fetch, find recent texts to a
number, ping); :class:`TwilioProvider` implements it with the ``twilio`` package's
asyncio path (``AsyncTwilioHttpClient`` and ``messages.create_async``), pointed at
``sms.api_base_url``: the real API or :mod:`gateway.sim.twilio`.

Two choices, and why:

* **No retries in the HTTP client.** ``AsyncTwilioHttpClient(max_retries=N)`` wraps
  its session in aiohttp-retry, which re-sends a POST after any 5xx and can send a
  text twice. The client here is built with ``max_retries=None`` (a plain session);
  the outbox alone decides retries, after looking the text up when the first try
  may have landed.
* **Our own ``request``.** :class:`GatewayHttpClient` subclasses
  ``AsyncTwilioHttpClient`` and overrides ``request`` to (a) apply the timeout as an
  ``aiohttp.ClientTimeout`` (the stock one hands a bare float to aiohttp and never
  applies its own default), (b) keep each response's headers for the calling task
  (``Retry-After`` is not carried by ``TwilioRestException``), and (c) log one
  DEBUG line instead of the stock INFO dump of every request.

The base URL is set through ``client.api.base_url``, the public attribute of the
``api`` domain; no ``edge``/``region`` is set, so twilio does not rewrite the host.
Library errors are mapped here to :mod:`gateway.sms.exceptions`.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from gateway.config import SmsSection
from gateway.sms.exceptions import (
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from gateway.sms.policy import is_retryable

log = logging.getLogger(__name__)

_LAST_RESPONSE: contextvars.ContextVar[Response | None] = contextvars.ContextVar(
    "twilio_last_response", default=None
)


@dataclass(frozen=True)
class ProviderMessage:
    """A message as the provider reports it."""

    sid: str
    to: str
    body: str
    status: str  # the provider's word: queued, sent, delivered, undelivered, failed ...
    date_created: datetime | None
    error_code: int | None = None


class SmsProvider(Protocol):
    """What the outbox needs from an SMS provider."""

    @property
    def sender(self) -> str:
        """The From number or Messaging Service SID texts go out from."""
        ...

    async def send(self, to: str, body: str, status_callback: str | None) -> ProviderMessage: ...

    async def fetch(self, sid: str) -> ProviderMessage: ...

    async def recent_to(
        self, to: str, since: datetime, max_messages: int = 1000
    ) -> list[ProviderMessage]:
        """Messages to ``to`` created since ``since``, newest first (at most ``max_messages``)."""
        ...

    async def ping(self) -> None: ...


class GatewayHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """``AsyncTwilioHttpClient`` without retries, with a real timeout, keeping headers."""

    def __init__(self, timeout: float) -> None:
        super().__init__(pool_connections=True, timeout=timeout, logger=log, max_retries=None)

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - twilio's HttpClient signature
        allow_redirects: bool = False,
    ) -> Response:
        assert self.session is not None
        total = timeout if timeout is not None else self.timeout
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = aiohttp.encode_basic_auth(auth[0], auth[1])
        async with self.session.request(
            method.upper(),
            url,
            params=params,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=total),
            allow_redirects=allow_redirects,
        ) as raw:
            text = await raw.text()
            response = Response(raw.status, text, raw.headers)
        log.debug("%s %s -> %s", method.upper(), raw.url.path, raw.status)
        _LAST_RESPONSE.set(response)
        return response


def _retry_after(response: Response | None) -> float | None:
    if response is None or response.headers is None:
        return None
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def map_error(exc: BaseException, action: str) -> ProviderError:
    """A twilio/aiohttp failure as one of ours; ``action`` names what was tried."""
    if isinstance(exc, TwilioRestException):
        code = int(exc.code) if isinstance(exc.code, int) else None
        message = f"{action}: HTTP {exc.status}" + (f", Twilio error {code}" if code else "")
        message += f": {exc.msg}" if exc.msg else ""
        if is_retryable(exc.status, code):
            return TransientProviderError(
                message,
                status=exc.status,
                code=code,
                retry_after=_retry_after(_LAST_RESPONSE.get()) if exc.status == 429 else None,
                ambiguous=exc.status >= 500,
            )
        return PermanentProviderError(message, status=exc.status, code=code)
    if isinstance(exc, aiohttp.ClientConnectorError):
        # The connection was never made: nothing was sent.
        return TransientProviderError(f"{action}: cannot connect: {exc}")
    if isinstance(exc, TimeoutError):
        return TransientProviderError(f"{action}: no answer in time", ambiguous=True)
    if isinstance(exc, aiohttp.ClientError):
        return TransientProviderError(
            f"{action}: connection lost: {exc.__class__.__name__}", ambiguous=True
        )
    if isinstance(exc, TwilioException):
        return TransientProviderError(f"{action}: {exc}", ambiguous=True)
    return ProviderError(f"{action}: {exc!r}")


def _from_instance(instance: Any) -> ProviderMessage:
    return ProviderMessage(
        sid=str(instance.sid),
        to=str(instance.to),
        body=str(instance.body or ""),
        status=str(instance.status),
        date_created=instance.date_created,
        error_code=int(instance.error_code) if instance.error_code else None,
    )


_MAPPED = (TwilioException, aiohttp.ClientError, TimeoutError)


class TwilioProvider:
    """Twilio through its asyncio client. Open with :meth:`open`; closed with the app."""

    def __init__(self, client: Client, http: GatewayHttpClient, config: SmsSection) -> None:
        self._client = client
        self._http = http
        self._config = config
        self._sender = config.messaging_service_sid or config.from_number

    @classmethod
    @asynccontextmanager
    async def open(cls, config: SmsSection) -> AsyncIterator[TwilioProvider]:
        if not config.account_sid or not config.auth_token:
            raise PermanentProviderError("sms.account_sid and sms.auth_token must be set")
        if not config.from_number and not config.messaging_service_sid:
            raise PermanentProviderError("set sms.from_number or sms.messaging_service_sid")
        http = GatewayHttpClient(config.http_timeout)
        try:
            client = Client(
                config.account_sid,
                config.auth_token.reveal(),
                http_client=http,
                environment={},  # configuration comes from gateway.config only
            )
            client.api.base_url = config.api_base_url.rstrip("/")
            yield cls(client, http, config)
        finally:
            await http.close()

    @property
    def sender(self) -> str:
        return self._sender

    async def send(self, to: str, body: str, status_callback: str | None) -> ProviderMessage:
        kwargs: dict[str, Any] = {"to": to, "body": body}
        if self._config.messaging_service_sid:
            kwargs["messaging_service_sid"] = self._config.messaging_service_sid
        else:
            kwargs["from_"] = self._config.from_number
        if status_callback:
            kwargs["status_callback"] = status_callback
        try:
            instance = await self._client.messages.create_async(**kwargs)
        except _MAPPED as exc:
            raise map_error(exc, "send") from exc
        return _from_instance(instance)

    async def fetch(self, sid: str) -> ProviderMessage:
        try:
            instance = await self._client.messages(sid).fetch_async()
        except _MAPPED as exc:
            raise map_error(exc, f"fetch {sid}") from exc
        return _from_instance(instance)

    async def recent_to(
        self, to: str, since: datetime, max_messages: int = 1000
    ) -> list[ProviderMessage]:
        found: list[ProviderMessage] = []
        try:
            page = await self._client.messages.page_async(to=to, page_size=100)
            while page is not None:
                for instance in page:
                    message = _from_instance(instance)
                    if message.date_created is not None and message.date_created < since:
                        return found
                    found.append(message)
                    if len(found) >= max_messages:
                        return found
                page = await page.next_page_async()
        except _MAPPED as exc:
            raise map_error(exc, "list messages") from exc
        return found

    async def ping(self) -> None:
        try:
            await self._client.api.v2010.accounts(self._config.account_sid).fetch_async()
        except _MAPPED as exc:
            raise map_error(exc, "fetch account") from exc
