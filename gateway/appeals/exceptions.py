"""What the appeals service refuses; each carries the facts that explain it.

::

    AppealError                (gateway.errors.GatewayError)
    ├── BadSubmission          a field is missing or malformed: ``field``
    ├── ChannelRefused         unknown channel, or a credential of another channel
    ├── ReferenceConflict      the channel's reference came before with other content
    ├── NoSuchCase             ``number``
    ├── CaseChangeRefused      a merge, split or lifecycle step that cannot be done, and why
    ├── NotPermitted           the acting officer is not of a unit that may take this step
    └── TermsError             the terms file or appeals.category_units does not hold together
"""

from __future__ import annotations

from gateway.errors import GatewayError


class AppealError(GatewayError):
    """Something the appeals service refuses."""


class BadSubmission(AppealError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ChannelRefused(AppealError):
    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"channel {channel!r}: {reason}")
        self.channel = channel
        self.reason = reason


class ReferenceConflict(AppealError):
    def __init__(self, channel: str, reference: str) -> None:
        super().__init__(
            f"reference {reference!r} of channel {channel!r} was submitted before"
            " with different content"
        )
        self.channel = channel
        self.reference = reference


class NoSuchCase(AppealError):
    def __init__(self, number: str) -> None:
        super().__init__(f"no case {number!r}")
        self.number = number


class CaseChangeRefused(AppealError):
    def __init__(self, number: str, reason: str) -> None:
        super().__init__(f"case {number}: {reason}")
        self.number = number
        self.reason = reason


class NotPermitted(AppealError):
    """The officer named as ``actor`` is on file, but not of a unit that may take the step."""

    def __init__(self, number: str, actor: str, step: str, reason: str) -> None:
        super().__init__(f"case {number}: actor {actor!r} may not {step} it: {reason}")
        self.number = number
        self.actor = actor
        self.step = step
        self.reason = reason
        self.field = "actor"


class TermsError(AppealError):
    """The terms file or a category's default unit setting does not hold together."""
