"""Texts that are never lost: templates, segment counts, the outbox and its worker,
and the provider seam onto Twilio.

What other packages call::

    message = await sms.enqueue(to=..., template=..., variables={...},
                                idempotency_key=..., purpose=None, audience=None)
    sms.add_reply_handler(async_fn_taking_InboundText_returning_bool, name="rating")

where ``sms`` is the :class:`gateway.sms.service.SmsService` the web application
keeps under ``gateway.web.sms.SMS``. The worker is
:class:`gateway.sms.outbox.OutboxWorker` (``async with OutboxWorker(sms, provider)``).
This module imports nothing itself, so the store can import the pure policy.
"""
