"""Bookings by SMS: a slot booked on the service web sites or WeChat is confirmed,
reminded the evening before and cancelled by text.

* :mod:`.service` — checking, booking (idempotent by the client's reference), cancelling,
  the reminder rule and loop;
* :mod:`.web` — ``POST /api/bookings``, ``GET /api/bookings/{ref}``, ``…/cancel``;
* :mod:`.commands` — ``gateway bookings list`` and ``gateway bookings cancel``;
* :mod:`.exceptions` — what the service refuses, with the facts;
* ``kinds.toml`` — the kinds of business, their names and what to bring.
"""
