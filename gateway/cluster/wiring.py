"""The cluster's part of the gateway application: the leadership and its health check."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from gateway.cluster.leader import Body, Leadership
from gateway.store.postgres import PostgresDatabase
from gateway.web.app import CLOCK, CONFIG, HEALTH_CHECKS, STORE

CLUSTER = web.AppKey("cluster", Leadership)


def add_cluster(app: web.Application, *, candidate: bool = True) -> None:
    """This gateway among the others on the store; before the features that gate on it.
    ``candidate``: whether it may lead (see :class:`Leadership`)."""
    app.cleanup_ctx.append(functools.partial(_cluster_context, candidate))
    app[HEALTH_CHECKS]["cluster"] = _check


def led(app: web.Application, body: Body) -> Body:
    """``body`` run only on the leader; as it is where the application has no cluster
    feature (a part built alone, as in tests)."""
    cluster = app.get(CLUSTER)
    return cluster.led(body) if cluster is not None else body


def others_after(app: web.Application) -> timedelta:
    """How long past their end other gateways' leases are left to them (the clock-skew
    margin, :mod:`gateway.cluster.skew`); none without the cluster feature."""
    cluster = app.get(CLUSTER)
    return cluster.skew.margin if cluster is not None else timedelta(0)


async def _cluster_context(candidate: bool, app: web.Application) -> AsyncIterator[None]:
    config, store = app[CONFIG], app[STORE]
    url = store.db.url if isinstance(store.db, PostgresDatabase) else None
    leadership = Leadership(
        config.gateway.name,
        app[CLOCK],
        url=url,
        max_skew=timedelta(seconds=config.store.max_clock_skew),
        candidate=candidate,
    )
    await leadership.start()
    app[CLUSTER] = leadership
    try:
        yield
    finally:
        await leadership.aclose()


async def _check(app: web.Application) -> dict[str, str]:
    """This gateway's name and who leads; failing while the leadership connection fails,
    the name is another's, or the clock is off the database's beyond the bound."""
    leadership = app[CLUSTER]
    leadership.check()
    leader = await leadership.leader(app[STORE].db)
    return {"name": leadership.name, "leader": leader or "(none yet)"}
