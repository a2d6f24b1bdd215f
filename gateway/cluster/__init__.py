"""Several gateways on one database (PostgreSQL).

* :mod:`~gateway.cluster.identity`: this gateway's name (``[gateway] name``), which
  owns its outbox leases and its callback calls, the same after a restart.
* :mod:`~gateway.cluster.leader`: the leadership (an advisory lock on a connection of
  its own): the periodic and once-a-day jobs run on the gateway that holds it; and per
  PBX, which gateway runs its AsyncAGI calls (every AMI session gets them).
* :mod:`~gateway.cluster.skew`: a gateway whose clock is off the database server's
  claims nothing, and another's lease is taken only a margin past its end.
* :mod:`~gateway.cluster.wiring`: the part of the application: the leadership under
  ``CLUSTER``, its ``/health`` check (this gateway's name, who leads).

Work that is safe on every gateway at once is not gated: the outbox (rows claimed
with ``FOR UPDATE SKIP LOCKED``), the callback claims (under the store's write lock),
the call log, webhooks and the API.
"""
