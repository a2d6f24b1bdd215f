"""The client's address behind load balancers: ``X-Forwarded-For`` from trusted proxies.

Several gateways behind one load balancer all see the balancer's address as the
peer. The limits on wrong tokens and passwords are kept per client address, and the
audit log names it, so a request that comes from a proxy listed in
``web.trusted_proxies`` takes its client's address from ``X-Forwarded-For``: the
header's addresses are read from the right (the nearest hop first), trusted proxies
are skipped, and the first address that is not one is the client. From any other
peer the header is ignored: a client cannot choose its own address by sending it.
A header that cannot be read (an entry that is not an address) is ignored too, and
the proxy's address is kept, so a malformed header never lets anyone out of a limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:4711"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:4711"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def forwarded_client(
    remote: str | None, header: str | None, trusted: Sequence[Network]
) -> str | None:
    """The client's address for a request from peer ``remote`` with ``X-Forwarded-For``
    ``header``: ``remote`` itself unless it is a trusted proxy that forwarded one."""
    peer = _address(remote or "")
    if peer is None or not header or not any(peer in net for net in trusted):
        return remote
    hops = [part for part in header.split(",") if part.strip()]
    if not hops:
        return remote
    for text in reversed(hops):
        hop = _address(text)
        if hop is None:
            return remote  # unreadable: keep the proxy's address, never a guess
        if not any(hop in net for net in trusted):
            return str(hop)
    return str(_address(hops[0]))  # every hop is a proxy: the first one sent it


def proxies_middleware(
    trusted_proxies: Sequence[str],
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware that gives each request its client's address (``request.remote``)."""
    trusted = [ipaddress.ip_network(text, strict=False) for text in trusted_proxies]

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if trusted:
            client = forwarded_client(
                request.remote, request.headers.get("X-Forwarded-For"), trusted
            )
            if client is not None and client != request.remote:
                request = request.clone(remote=client)
        return await handler(request)

    return middleware
