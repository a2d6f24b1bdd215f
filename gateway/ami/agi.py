"""AsyncAGI, the pure part: the AGI environment, command results, command text.

Asterisk 12+ sends the AGI environment URL-encoded in the ``Env`` header of
``AsyncAGIStart`` and each command's reply URL-encoded in the ``Result`` header
of ``AsyncAGIExec``. Nothing here does I/O; the session in ``gateway.pbx`` moves
the text.

Results look like ``200 result=49`` (the digit 1), ``200 result= (timeout)``,
``200 result=0 (timeout) endpos=1234``, ``200 result=1 (value)`` (GET VARIABLE),
``511 Command Not Permitted on a dead channel or intercept routine``,
``510 Invalid or unknown command`` or the multi-line usage reply
``520-Invalid command syntax.  Proper usage follows:`` … ``520 End of proper usage.``.

Command arguments are split by Asterisk on blanks, with double quotes grouping
and a backslash escaping; :func:`quote_arg` writes an argument so it arrives
whole (an empty one as ``""``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote

from gateway.errors import GatewayError

AGI_SUCCESS = 200
AGI_INVALID_COMMAND = 510
AGI_DEAD_CHANNEL = 511
AGI_USAGE = 520

# What ``CHANNEL STATUS`` answers for a channel that is up (AST_STATE_UP); -1: no channel.
CHANNEL_STATE_UP = 6

_DIGITS = frozenset("0123456789*#ABCD")


class AgiParseError(GatewayError, ValueError):
    """An AGI result or environment that cannot be read; ``raw`` is what came."""

    def __init__(self, raw: str, reason: str) -> None:
        super().__init__(f"unreadable AGI text {raw[:120]!r}: {reason}")
        self.raw = raw
        self.reason = reason


class AgiArgumentError(GatewayError, ValueError):
    """An AGI command argument that cannot be sent (names the argument)."""

    def __init__(self, argument: str, value: object, reason: str) -> None:
        super().__init__(f"AGI argument {argument}={value!r}: {reason}")
        self.argument = argument
        self.value = value
        self.reason = reason


# ---------------------------------------------------------------------------
# The environment


@dataclass(frozen=True)
class AgiEnvironment:
    """The AGI environment of one call (``agi_`` prefix dropped in the fields).

    ``values`` keeps every key as sent (with its ``agi_`` prefix), including
    ``agi_arg_N`` and any key a newer Asterisk adds.
    """

    request: str = ""
    channel: str = ""
    language: str = ""
    type: str = ""
    uniqueid: str = ""
    version: str = ""
    callerid: str = ""
    calleridname: str = ""
    callingpres: str = ""
    dnid: str = ""
    rdnis: str = ""
    context: str = ""
    extension: str = ""
    priority: str = ""
    enhanced: str = ""
    accountcode: str = ""
    threadid: str = ""
    values: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def args(self) -> tuple[str, ...]:
        """``agi_arg_1`` … in order (the arguments of ``AGI(agi:async,…)``)."""
        out: list[str] = []
        n = 1
        while f"agi_arg_{n}" in self.values:
            out.append(self.values[f"agi_arg_{n}"])
            n += 1
        return tuple(out)

    @property
    def dialled_number(self) -> str:
        """``agi_dnid`` when Asterisk knew it, else ``agi_extension``."""
        if self.dnid and self.dnid != "unknown":
            return self.dnid
        return self.extension


_ENV_FIELDS = frozenset(name for name in AgiEnvironment.__dataclass_fields__ if name != "values")


def parse_env(encoded: str) -> AgiEnvironment:
    """Decode the URL-encoded ``Env`` header of ``AsyncAGIStart``.

    Lines are ``agi_key: value``; the environment ends at the first empty line.
    A line without ``: `` raises :class:`AgiParseError`.
    """
    text = unquote(encoded)
    values: dict[str, str] = {}
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if not line:
            if values:
                break
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or " " in key:
            raise AgiParseError(encoded, f"line without 'agi_key: value': {line[:80]!r}")
        values[key] = value[1:] if value.startswith(" ") else value
    if not values:
        raise AgiParseError(encoded, "empty AGI environment")
    known = {
        key[4:]: value
        for key, value in values.items()
        if key.startswith("agi_") and key[4:] in _ENV_FIELDS
    }
    return AgiEnvironment(**known, values=MappingProxyType(values))


# ---------------------------------------------------------------------------
# Results

_FIRST_LINE = re.compile(r"^(\d{3})([ -])(.*)$")
_RESULT = re.compile(r"^result=(\S*)\s*(.*)$")
_KEY_VALUE = re.compile(r"(\w+)=(\S*)")


@dataclass(frozen=True)
class AgiResult:
    """One AGI reply: ``code`` (200, 510, 511, 520), the raw ``result`` value
    (a string: GET DATA digits keep their leading zeros; empty after a timeout),
    ``data`` (the text in parentheses: ``timeout``, ``dtmf``, ``writefile``, a
    variable's value), ``text`` (the reply after its code, for logs and errors:
    ``result=-1 (writefile)``, ``Invalid or unknown command``) and ``endpos``."""

    code: int
    result: str
    data: str
    text: str
    endpos: int | None = None

    @property
    def ok(self) -> bool:
        return self.code == AGI_SUCCESS

    @property
    def value(self) -> int | None:
        """``result`` as a number, or None when it is empty or not a number."""
        try:
            return int(self.result)
        except ValueError:
            return None

    @property
    def timed_out(self) -> bool:
        return self.data == "timeout"

    @property
    def is_hangup(self) -> bool:
        """The reply itself says the channel is gone: 511, or ``(hangup)``.

        A bare ``result=-1`` does not: an application (``EXEC Queue`` after the
        seat hung up) or a missing prompt answers -1 while the caller is still
        there; only the channel's state (``CHANNEL STATUS``) tells."""
        if self.code == AGI_DEAD_CHANNEL:
            return True
        return self.code == AGI_SUCCESS and self.data == "hangup"

    @property
    def write_failed(self) -> bool:
        """``RECORD FILE`` could not open its file (``result=-1 (writefile)``)."""
        return self.code == AGI_SUCCESS and self.result == "-1" and self.data == "writefile"

    @property
    def digit(self) -> str | None:
        """The digit of a WAIT FOR DIGIT / STREAM FILE result (its ASCII code), if any."""
        value = self.value
        if value is None or value <= 0:
            return None
        try:
            return chr(value)
        except (ValueError, OverflowError):
            return None


def parse_result(encoded: str) -> AgiResult:
    """Decode and parse the URL-encoded ``Result`` header of ``AsyncAGIExec``."""
    return parse_result_text(unquote(encoded))


def parse_result_text(text: str) -> AgiResult:
    """Parse a decoded AGI reply (one line, or a ``520-`` multi-line block)."""
    stripped = text.strip("\r\n")
    lines = [line.rstrip("\r") for line in stripped.split("\n")]
    match = _FIRST_LINE.match(lines[0]) if lines and lines[0] else None
    if match is None:
        raise AgiParseError(text, "does not start with a three-digit code")
    code = int(match.group(1))
    rest = match.group(3)
    if match.group(2) == "-":
        # a multi-line reply: the text is every line, the codes stripped
        body = [rest]
        for line in lines[1:]:
            end = _FIRST_LINE.match(line)
            if end is not None and int(end.group(1)) == code and end.group(2) == " ":
                body.append(end.group(3))
                break
            body.append(line)
        return AgiResult(code=code, result="", data="", text="\n".join(body).strip())
    if code != AGI_SUCCESS:
        return AgiResult(code=code, result="", data="", text=rest.strip())
    result_match = _RESULT.match(rest)
    if result_match is None:
        raise AgiParseError(text, "200 reply without 'result='")
    result, tail = result_match.group(1), result_match.group(2)
    data = ""
    if tail.startswith("("):
        close = tail.rfind(")")
        if close < 0:
            raise AgiParseError(text, "unclosed '(' in the result data")
        data = tail[1:close]
        tail = tail[close + 1 :]
    extras = dict(_KEY_VALUE.findall(tail))
    endpos: int | None = None
    if "endpos" in extras:
        try:
            endpos = int(extras["endpos"])
        except ValueError as exc:
            raise AgiParseError(text, f"endpos is not a number: {extras['endpos']!r}") from exc
    return AgiResult(code=code, result=result, data=data, text=rest.strip(), endpos=endpos)


# ---------------------------------------------------------------------------
# Commands


def quote_arg(value: str, name: str = "argument") -> str:
    """Write one argument so Asterisk's AGI parser reads it back whole.

    Plain words go as they are; an empty value is ``""``; blanks, quotes and
    backslashes are quoted and escaped. CR/LF cannot travel in an AMI header and
    are refused.
    """
    if "\r" in value or "\n" in value or "\0" in value:
        raise AgiArgumentError(name, value, "contains a line break or NUL")
    if value and not any(ch in value for ch in ' \t"\\'):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _digits(value: str, name: str) -> str:
    bad = set(value) - _DIGITS
    if bad:
        raise AgiArgumentError(name, value, f"not DTMF digits: {''.join(sorted(bad))!r}")
    return quote_arg(value, name)


def _file(value: str, name: str) -> str:
    if not value or not value.strip():
        raise AgiArgumentError(name, value, "empty file name")
    return quote_arg(value, name)


def _non_negative(value: int, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AgiArgumentError(name, value, "must be a whole number ≥ 0")
    return str(value)


def _name(value: str, name: str) -> str:
    if not value or any(ch.isspace() for ch in value):
        raise AgiArgumentError(name, value, "must be one word")
    return quote_arg(value, name)


def cmd_answer() -> str:
    return "ANSWER"


def cmd_hangup() -> str:
    return "HANGUP"


def cmd_channel_status() -> str:
    return "CHANNEL STATUS"


def playback_files(prompts: Sequence[str]) -> str:
    """The argument of ``EXEC Playback a&b&c``: several prompts as one command, played
    without a gap and not interruptible. Asterisk's dialplan applications join files
    with ``&``; the AGI commands STREAM FILE, GET DATA and CONTROL STREAM FILE open
    their argument as one file name and do not."""
    if not prompts:
        raise AgiArgumentError("prompts", prompts, "no prompt to play")
    for prompt in prompts:
        _file(prompt, "prompt")
        if any(ch in prompt for ch in "&,|"):
            raise AgiArgumentError("prompt", prompt, "contains '&', ',' or '|'")
    return "&".join(prompts)


def cmd_break() -> str:
    return "ASYNCAGI BREAK"


def cmd_stream_file(prompt: str, escape_digits: str = "") -> str:
    return f"STREAM FILE {_file(prompt, 'prompt')} {_digits(escape_digits, 'escape_digits')}"


def cmd_get_data(prompt: str, timeout_ms: int, max_digits: int) -> str:
    if max_digits < 1:
        raise AgiArgumentError("max_digits", max_digits, "must be at least 1")
    return (
        f"GET DATA {_file(prompt, 'prompt')} {_non_negative(timeout_ms, 'timeout_ms')} "
        f"{_non_negative(max_digits, 'max_digits')}"
    )


def cmd_wait_for_digit(timeout_ms: int) -> str:
    if timeout_ms != -1:
        _non_negative(timeout_ms, "timeout_ms")
    return f"WAIT FOR DIGIT {timeout_ms}"


def cmd_record_file(
    path: str,
    fmt: str = "wav",
    escape_digits: str = "#",
    timeout_ms: int = 60000,
    beep: bool = True,
    silence_s: int | None = 5,
) -> str:
    """``RECORD FILE path fmt digits timeout [offset|BEEP] [s=silence]``."""
    parts = [
        "RECORD FILE",
        _file(path, "path"),
        _name(fmt, "fmt"),
        _digits(escape_digits, "escape_digits"),
        _non_negative(timeout_ms, "timeout_ms") if timeout_ms != -1 else "-1",
    ]
    if beep:
        parts.append("BEEP")
    elif silence_s is not None:
        parts.append("0")  # sample offset 0: keeps the silence argument in place
    if silence_s is not None:
        if isinstance(silence_s, bool) or not isinstance(silence_s, int) or silence_s < 1:
            raise AgiArgumentError("silence_s", silence_s, "must be a whole number ≥ 1")
        parts.append(f"s={silence_s}")
    return " ".join(parts)


def cmd_set_variable(name: str, value: str) -> str:
    return f"SET VARIABLE {_name(name, 'name')} {quote_arg(value, 'value')}"


def cmd_get_variable(name: str) -> str:
    return f"GET VARIABLE {_name(name, 'name')}"


def cmd_get_full_variable(expression: str) -> str:
    """``GET FULL VARIABLE``: ``${…}`` references in ``expression`` evaluated by Asterisk."""
    if not expression:
        raise AgiArgumentError("expression", expression, "empty expression")
    return f"GET FULL VARIABLE {quote_arg(expression, 'expression')}"


def read_options(variable: str, prompts: Sequence[str], max_digits: int, timeout_ms: int) -> str:
    """The argument of ``EXEC Read``: the prompts joined with ``&`` (played as one command,
    each interruptible by any key), then up to ``max_digits`` keys or # within the timeout,
    into ``variable``; one attempt."""
    if not 1 <= max_digits <= 255:
        raise AgiArgumentError("max_digits", max_digits, "must be 1 to 255")
    seconds = int(_non_negative(timeout_ms, "timeout_ms")) / 1000
    name, files = _name(variable, "variable"), playback_files(prompts)
    return f"{name},{files},{max_digits},,1,{seconds:g}"


def cmd_exec(application: str, options: str = "") -> str:
    app = _name(application, "application")
    if not options:
        return f"EXEC {app}"
    return f"EXEC {app} {quote_arg(options, 'options')}"
