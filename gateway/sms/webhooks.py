"""Twilio's webhook forms parsed into our own values: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.sms.exceptions import SmsError

# Where Twilio posts to the gateway, under web.public_url.
STATUS_PATH = "/twilio/status"
INBOUND_PATH = "/twilio/inbound"


class BadWebhook(SmsError):
    """A webhook form lacks a field we need; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"webhook field {field}: {reason}")
        self.field = field


@dataclass(frozen=True)
class StatusCallback:
    sid: str
    status: str
    error_code: str | None


@dataclass(frozen=True)
class InboundForm:
    sid: str
    from_number: str
    to_number: str
    body: str


def _required(form: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = form.get(name, "").strip()
        if value:
            return value
    raise BadWebhook(names[0], "missing")


def parse_status_callback(form: Mapping[str, str]) -> StatusCallback:
    sid = _required(form, "MessageSid", "SmsSid")
    status = _required(form, "MessageStatus", "SmsStatus").lower()
    code = form.get("ErrorCode", "").strip() or None
    return StatusCallback(sid, status, code)


def parse_inbound(form: Mapping[str, str]) -> InboundForm:
    return InboundForm(
        sid=_required(form, "MessageSid", "SmsMessageSid", "SmsSid"),
        from_number=_required(form, "From"),
        to_number=form.get("To", "").strip(),
        body=form.get("Body", ""),
    )
