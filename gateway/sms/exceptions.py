"""Everything ``gateway.sms`` raises, in one place::

    GatewayError                      (gateway.errors)
    └── SmsError                      any failure of the text service
        ├── TemplateError             a template file or template is unusable
        │   ├── UnknownTemplate       no template of that name
        │   ├── MissingVariable       a variable the template needs was not given
        │   ├── UnexpectedVariable    a variable the template does not use was given
        │   └── MessageTooLong        the text would exceed its allowed parts
        ├── EmptyBody                 nothing to send
        ├── DuplicateKeyConflict      an idempotency key reused for another text
        ├── NotAnOfficer              "officer" asked for a number not on file as an officer's
        ├── NoSuchMessage             no outbox row with that id
        ├── ReplyNotHandled           a reply handler failed; the reply is offered again
        └── ProviderError             the SMS provider refused or failed a request
            ├── PermanentProviderError  never retried (invalid number, unsubscribed, auth)
            │   └── LookUpInconclusive  too many texts to list back to the first attempt
            └── TransientProviderError  retried by the outbox (429, 5xx, timeout)

Library errors (twilio, aiohttp) are mapped to these at the provider seam with
``raise ... from exc``; nothing above the seam catches a twilio exception.
"""

from __future__ import annotations

from gateway.errors import GatewayError


class SmsError(GatewayError):
    """A text could not be prepared, stored or sent; the message says why."""


class TemplateError(SmsError):
    """A template file or a template is unusable."""

    def __init__(self, template: str, reason: str) -> None:
        super().__init__(f"template {template!r}: {reason}")
        self.template = template
        self.reason = reason


class UnknownTemplate(TemplateError):
    def __init__(self, template: str, known: list[str]) -> None:
        super().__init__(template, f"no such template (known: {', '.join(sorted(known))})")
        self.known = known


class MissingVariable(TemplateError):
    def __init__(self, template: str, variable: str) -> None:
        super().__init__(template, f"variable {variable!r} is missing")
        self.variable = variable


class UnexpectedVariable(TemplateError):
    def __init__(self, template: str, variable: str) -> None:
        super().__init__(template, f"variable {variable!r} is not used by this template")
        self.variable = variable


class MessageTooLong(TemplateError):
    def __init__(self, template: str, parts: int, max_parts: int, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(template, f"needs {parts} parts, at most {max_parts} allowed{extra}")
        self.parts = parts
        self.max_parts = max_parts


class EmptyBody(SmsError):
    def __init__(self, template: str) -> None:
        super().__init__(f"template {template!r}: the text is empty")
        self.template = template


class DuplicateKeyConflict(SmsError):
    """The idempotency key is already used by a text to another number or template."""

    def __init__(self, key: str, existing_id: int) -> None:
        super().__init__(
            f"idempotency key {key!r} already names text #{existing_id} with other content"
        )
        self.key = key
        self.existing_id = existing_id


class NotAnOfficer(SmsError):
    """A text asked to go as an officer's (any hour, no opt-out) to a number that is no
    officer's mobile in the store: whether a number is an officer's is the store's word."""

    def __init__(self, masked_number: str) -> None:
        super().__init__(
            f"audience 'officer' refused: {masked_number} is no officer's mobile on file"
        )


class NoSuchMessage(SmsError):
    def __init__(self, message_id: int) -> None:
        super().__init__(f"no text #{message_id} in the outbox")
        self.message_id = message_id


class ReplyNotHandled(SmsError):
    """A reply handler raised: the reply stays unsettled and is offered again."""

    def __init__(self, reply_id: int, handler: str) -> None:
        super().__init__(f"reply #{reply_id}: handler {handler} failed; it will be offered again")
        self.reply_id = reply_id
        self.handler = handler


class ProviderError(SmsError):
    """The provider refused or failed a request.

    ``code`` is the provider's error code (Twilio's, e.g. 21211) or None; ``status``
    the HTTP status (0 when no answer came: timeout, dropped connection).
    """

    def __init__(self, message: str, *, status: int = 0, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class PermanentProviderError(ProviderError):
    """Sending again cannot succeed: invalid or unsubscribed recipient, bad credentials."""


class TransientProviderError(ProviderError):
    """Worth another try later.

    ``retry_after`` is the provider's ``Retry-After`` in seconds when given;
    ``ambiguous`` is True when the provider may have accepted the text anyway (5xx,
    timeout, dropped connection): the outbox looks it up before sending again.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: int | None = None,
        retry_after: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after
        self.ambiguous = ambiguous


class LookUpInconclusive(PermanentProviderError):
    """A look-up before a re-send could not list every text to the number back to the
    row's first attempt: whether the provider holds it cannot be told, so it is not
    sent again (never twice) and the row fails naming why."""
