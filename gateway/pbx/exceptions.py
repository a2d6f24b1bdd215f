"""Errors of the PBX link. Each carries the facts that explain it.

::

    AmiError
    ├── AmiLoginError        (pbx, username, message from Asterisk)
    ├── AmiConnectionLost    (pbx, while doing what)
    ├── AmiNotConnected      (pbx, what was asked, why): no link within the wait
    ├── AmiActionTimeout     (pbx, action, action_id, seconds)
    ├── AmiActionFailed      (pbx, action, action_id, message)
    ├── OriginateOutcomeUnknown (pbx, action_id, channel, why): sent, answer never seen
    ├── AgiCommandFailed     (channel, command, code, text)
    └── ChannelHungUp        (channel): the caller is gone; caught once by the flow engine
        └── ChannelLinkLost  (channel): the AMI link dropped; the caller may still be there
"""

from __future__ import annotations

from gateway.errors import GatewayError


class AmiError(GatewayError):
    """Something went wrong on an AMI link."""


class AmiLoginError(AmiError):
    def __init__(self, pbx: str, username: str, message: str) -> None:
        super().__init__(f"PBX {pbx}: login as {username!r} refused: {message}")
        self.pbx = pbx
        self.username = username
        self.message = message


class AmiConnectionLost(AmiError):
    def __init__(self, pbx: str, during: str) -> None:
        super().__init__(f"PBX {pbx}: connection lost during {during}")
        self.pbx = pbx
        self.during = during


class AmiNotConnected(AmiError):
    def __init__(self, pbx: str, action: str, reason: str) -> None:
        super().__init__(f"PBX {pbx}: cannot send {action}: {reason}")
        self.pbx = pbx
        self.action = action
        self.reason = reason


class AmiActionTimeout(AmiError):
    def __init__(self, pbx: str, action: str, action_id: str, seconds: float) -> None:
        super().__init__(f"PBX {pbx}: no answer to {action} ({action_id}) in {seconds:g}s")
        self.pbx = pbx
        self.action = action
        self.action_id = action_id
        self.seconds = seconds


class AmiActionFailed(AmiError):
    def __init__(self, pbx: str, action: str, action_id: str, message: str) -> None:
        super().__init__(f"PBX {pbx}: {action} ({action_id}) failed: {message}")
        self.pbx = pbx
        self.action = action
        self.action_id = action_id
        self.message = message


class OriginateOutcomeUnknown(AmiError):
    """An Originate went out but its outcome never came back (the link dropped, or no
    ``OriginateResponse`` in time): the call may be ringing or up right now. Not a
    failure: whoever placed it keeps the attempt open until the call log or the PBX
    settles it. The call carries ``GATEWAY_CALL_ID`` = ``action_id``."""

    def __init__(self, pbx: str, action_id: str, channel: str, why: str) -> None:
        super().__init__(f"PBX {pbx}: outcome of Originate {action_id} to {channel} unknown: {why}")
        self.pbx = pbx
        self.action_id = action_id
        self.channel = channel
        self.why = why


class AgiCommandFailed(AmiError):
    def __init__(self, channel: str, command: str, code: int, text: str) -> None:
        super().__init__(f"channel {channel}: AGI {command!r} answered {code} {text}")
        self.channel = channel
        self.command = command
        self.code = code
        self.text = text


class ChannelHungUp(AmiError):
    """The caller hung up (or the channel is gone); whatever was running stops."""

    def __init__(self, channel: str, during: str = "") -> None:
        super().__init__(f"channel {channel} hung up" + (f" during {during}" if during else ""))
        self.channel = channel
        self.during = during


class ChannelLinkLost(ChannelHungUp):
    """The AMI link dropped under a live call: the gateway can no longer drive it, but the
    caller did not hang up (Asterisk keeps the call and the dialplan may go on)."""
