"""AsyncAGI on a simulated channel: the command queue, the commands, and their results.

Results are what res_agi writes (``200 result=49``, ``200 result=0 endpos=8000``,
``510 Invalid or unknown command``…); the session URL-encodes them into the
``Result`` of ``AsyncAGIExec``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import struct
import wave
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from gateway.ami import names as n
from gateway.sim.ami.channel import STATE_UP, SimChannel
from gateway.sim.ami.world import PRIV_AGI, PRIV_CALL, World

log = logging.getLogger("gateway.sim.ami")

RATE = 8000  # samples per second of Asterisk's 8 kHz formats; endpos counts samples


def uri_encode(text: str) -> str:
    """Asterisk's ast_uri_encode with ast_uri_http: unreserved characters kept, the rest %XX."""
    return quote(text, safe="-_.!~*'()")


@dataclass(frozen=True)
class AgiResult:
    line: str  # "200 result=0\n"
    code: int = 200
    text: str = "Success"  # AGIExecEnd Result
    control: str = ""  # "break": leave AsyncAGI; "hangup": the channel is being hung up


def ok(result: str) -> AgiResult:
    return AgiResult(f"200 result={result}\n")


USAGE = {
    "answer": "Usage: ANSWER",
    "asyncagi break": "Usage: ASYNCAGI BREAK",
    "channel status": "Usage: CHANNEL STATUS [<channelname>]",
    "exec": "Usage: EXEC <application> <options>",
    "get data": "Usage: GET DATA <file to be streamed> [timeout] [max digits]",
    "get variable": "Usage: GET VARIABLE <variablename>",
    "get full variable": "Usage: GET FULL VARIABLE <variablename> [<channel name>]",
    "hangup": "Usage: HANGUP [<channelname>]",
    "noop": "Usage: NOOP",
    "record file": (
        "Usage: RECORD FILE <filename> <format> <escape digits> <timeout> "
        "[<offset samples>] [BEEP] [s=<silence>]"
    ),
    "say digits": "Usage: SAY DIGITS <number> <escape digits>",
    "say number": "Usage: SAY NUMBER <number> <escape digits> [gender]",
    "set variable": "Usage: SET VARIABLE <variablename> <value>",
    "stream file": "Usage: STREAM FILE <filename> <escape digits> [<sample offset>]",
    "verbose": "Usage: VERBOSE <message> <level>",
    "wait for digit": "Usage: WAIT FOR DIGIT <timeout>",
}


def usage(key: str) -> AgiResult:
    return AgiResult(
        f"520-Invalid command syntax.  Proper usage follows:\n{USAGE[key]}\n"
        "520 End of proper usage.\n",
        520,
        "Usage",
    )


UNKNOWN = AgiResult("510 Invalid or unknown command\n", 510, "Invalid or unknown command")


def parse_args(command: str) -> list[str]:
    """Split an AGI command line as res_agi does: blanks split, quotes group, \\ escapes."""
    args: list[str] = []
    current: list[str] = []
    in_arg = quoted = escaped = False
    for ch in command:
        if escaped:
            current.append(ch)
            escaped = False
            in_arg = True
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
            in_arg = True
        elif ch in " \t" and not quoted:
            if in_arg:
                args.append("".join(current))
                current = []
                in_arg = False
        else:
            current.append(ch)
            in_arg = True
    if in_arg:
        args.append("".join(current))
    return args


# res_agi's AsyncAGI loop looks at the channel's command queue, and when it is empty
# waits up to 100 ms for the channel before it looks again: a command queued just
# after a result is picked up about 100 ms later (simulated time; scaled by the clock).
POLL_SECONDS = 0.1


async def run_async_agi(
    world: World, chan: SimChannel, after_start: Callable[[], None] | None = None
) -> bool:
    """``AGI(agi:async)``: run queued commands until ASYNCAGI BREAK or hangup.

    Returns True when the call ended (hangup), False after ASYNCAGI BREAK.
    """
    chan.app, chan.appdata = "AGI", "agi:async"
    chan.last_app, chan.last_data = "AGI", "agi:async"
    chan.in_agi = True
    world.chan_event(
        n.EV_ASYNC_AGI_START, PRIV_AGI, chan, (n.H_ENV, uri_encode(agi_env(world, chan)))
    )
    if after_start is not None:
        after_start()
    status = "SUCCESS"
    try:
        while True:
            item = await _next_command(world, chan)
            if item is None:
                status = "HANGUP"
                # commands already queued still run (their media reports the hangup)
                while not chan.agi_commands.empty():
                    command, command_id = chan.agi_commands.get_nowait()
                    await _run_one(world, chan, command, command_id)
                break
            command, command_id = item
            result = await _run_one(world, chan, command, command_id)
            if result.control == "break":
                break
            if result.control == "hangup":
                status = "HANGUP"
    finally:
        chan.in_agi = False
        if not chan.gone:
            world.chan_event(n.EV_ASYNC_AGI_END, PRIV_AGI, chan)
            world.set_var(chan, "AGISTATUS", status)
    return chan.hangup_requested


async def _next_command(world: World, chan: SimChannel) -> tuple[str, str] | None:
    """The next queued command, when res_agi's loop would take it: at once if it is
    already queued, else at the first poll (every ``POLL_SECONDS`` from now) after it
    arrives. None once the channel is hung up with nothing queued."""
    if not chan.agi_commands.empty():
        return chan.agi_commands.get_nowait()
    if chan.hangup_requested:
        return None
    looked = world.loop_time()
    getter = asyncio.ensure_future(chan.agi_commands.get())
    hung = asyncio.ensure_future(chan.hungup.wait())
    try:
        await asyncio.wait({getter, hung}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hung.cancel()
        if not getter.done():
            getter.cancel()
        await asyncio.gather(hung, getter, return_exceptions=True)
    if not getter.done() or getter.cancelled():
        return None
    # Waiting on the event rather than polling keeps a thousand idle channels cheap;
    # the command still starts on the poll that would have found it.
    poll = world.real(POLL_SECONDS)
    waited = world.loop_time() - looked
    polls = max(1, math.ceil(waited / poll)) if poll > 0 else 0
    await asyncio.sleep(max(0.0, looked + polls * poll - world.loop_time()))
    return getter.result()


async def _run_one(world: World, chan: SimChannel, command: str, command_id: str) -> AgiResult:
    exec_id = str(world.rng.randrange(100_000_000, 2_147_483_647))
    world.chan_event(
        n.EV_AGI_EXEC_START, PRIV_AGI, chan, ("CommandId", exec_id), (n.H_COMMAND, command)
    )
    try:
        result = await execute(world, chan, command)
    except Exception:
        log.exception("AGI command %r failed in the simulator", command)
        result = AgiResult("200 result=-1\n")
    if not chan.gone:
        world.chan_event(
            n.EV_AGI_EXEC_END,
            PRIV_AGI,
            chan,
            ("CommandId", exec_id),
            (n.H_COMMAND, command),
            ("ResultCode", str(result.code)),
            (n.H_RESULT, result.text),
        )
        extra = [(n.H_COMMAND_ID_EVENT, command_id)] if command_id else []
        world.chan_event(
            n.EV_ASYNC_AGI_EXEC, PRIV_AGI, chan, (n.H_RESULT, uri_encode(result.line)), *extra
        )
    return result


def agi_env(world: World, chan: SimChannel) -> str:
    pairs = [
        ("agi_request", "async"),
        ("agi_channel", chan.name),
        ("agi_language", chan.language),
        ("agi_type", chan.tech),
        ("agi_uniqueid", chan.uniqueid),
        ("agi_version", world.config.version),
        ("agi_callerid", chan.caller_num if chan.caller_num != "<unknown>" else "unknown"),
        (
            "agi_calleridname",
            chan.caller_name if chan.caller_name not in ("", "<unknown>") else "unknown",
        ),
        ("agi_callingpres", "0"),
        ("agi_callingani2", "0"),
        ("agi_callington", "0"),
        ("agi_callingtns", "0"),
        ("agi_dnid", chan.dnid),
        ("agi_rdnis", "unknown"),
        ("agi_context", chan.context),
        ("agi_extension", chan.exten),
        ("agi_priority", str(chan.priority)),
        ("agi_enhanced", "0.0"),
        ("agi_accountcode", chan.accountcode),
        ("agi_threadid", str(140_000_000_000_000 + zlib.crc32(chan.name.encode()))),
    ]
    return "".join(f"{k}: {v}\n" for k, v in pairs) + "\n"


# --- media -----------------------------------------------------------------------


def prompt_seconds(world: World, name: str, language: str) -> float | None:
    """How long a prompt plays (simulated seconds); None if it must exist and does not."""
    folder = world.config.recordings_dir
    if folder is not None:
        base = Path(name) if Path(name).is_absolute() else folder / name
        candidates = [base, base.with_name(base.name + ".wav")]
        if not Path(name).is_absolute():
            candidates.append(folder / language / (name + ".wav"))
        for path in candidates:
            if path.is_file():
                try:
                    with wave.open(str(path), "rb") as wav:
                        return wav.getnframes() / float(wav.getframerate())
                except (wave.Error, EOFError, OSError):
                    return None
        if world.config.strict_sounds:
            return None
    stem = Path(name).name
    if stem == "beep":
        return 0.25
    if name.startswith("digits/"):
        return 0.5
    return 1.0 + (zlib.crc32(stem.encode()) % 30) / 10


async def _await_inbox(
    world: World, chan: SimChannel, deadline: float | None
) -> tuple[str, str] | None:
    """The next thing the caller does before ``deadline`` (loop time), or None at the deadline."""
    if chan.hangup_requested:
        return ("hangup", "")
    if deadline is None:
        return await chan.inbox.get()
    remaining = deadline - world.loop_time()
    if remaining <= 0:
        return None
    try:
        # asyncio.timeout rather than wait_for: no extra task per wait (thousands of callers)
        async with asyncio.timeout(remaining):
            return await chan.inbox.get()
    except TimeoutError:
        return None


def _drain(chan: SimChannel) -> None:
    while not chan.inbox.empty():
        chan.inbox.get_nowait()


async def play(
    world: World, chan: SimChannel, name: str, escape: str, *, listening: bool
) -> tuple[str, str, float] | None:
    """Play a prompt. Returns (how it ended: "done"|"digit"|"hangup", digit, seconds played);
    None if the file does not exist."""
    seconds = prompt_seconds(world, name, chan.language)
    if seconds is None:
        return None
    if chan.caller is not None:
        chan.caller.heard(Path(name).name, listening=listening or bool(escape))
    start = world.loop_time()
    deadline = start + world.real(seconds)
    _drain(chan)
    chan.collecting = bool(escape)
    try:
        while True:
            item = await _await_inbox(world, chan, deadline)
            if item is None:
                return ("done", "", seconds)
            kind, value = item
            played = world.sim(world.loop_time() - start)
            if kind == "hangup":
                return ("hangup", "", played)
            if kind == "digit" and value in escape:
                return ("digit", value, played)
    finally:
        chan.collecting = False


async def collect(
    world: World,
    chan: SimChannel,
    wait_seconds: float | None,
    first: str = "",
    max_digits: int = 1,
    terminators: str = "#",
) -> tuple[str, str]:
    """Collect digits after a prompt: (digits, "done"|"timeout"|"hangup")."""
    digits = first
    if digits and len(digits) >= max_digits:
        return digits, "done"
    chan.collecting = True
    try:
        while True:
            deadline = (
                None if wait_seconds is None else world.loop_time() + world.real(wait_seconds)
            )
            item = await _await_inbox(world, chan, deadline)
            if item is None:
                return digits, "timeout"
            kind, value = item
            if kind == "hangup":
                return digits, "hangup"
            if kind != "digit":
                continue
            if value in terminators:
                return digits, "done"
            digits += value
            if len(digits) >= max_digits:
                return digits, "done"
    finally:
        chan.collecting = False


# --- the commands -------------------------------------------------------------------


async def execute(world: World, chan: SimChannel, command: str) -> AgiResult:
    argv = parse_args(command)
    if not argv:
        return UNKNOWN
    words = [a.lower() for a in argv]
    key2 = " ".join(words[:2])
    key3 = " ".join(words[:3])
    dead = chan.hangup_requested
    if words[0] == "answer":
        if len(argv) != 1:
            return usage("answer")
        if dead:
            return ok("-1")
        world.set_state(chan, STATE_UP)
        return ok("0")
    if key2 == "asyncagi break":
        return AgiResult("200 result=0\n", control="break")
    if words[0] == "noop":
        return ok("0")
    if words[0] == "hangup":
        return _hangup(world, chan, argv)
    if key2 == "stream file":
        if len(argv) not in (4, 5):
            return usage("stream file")
        return await _stream_file(world, chan, argv[2], argv[3])
    if key2 == "get data":
        if not 3 <= len(argv) <= 5:
            return usage("get data")
        return await _get_data(world, chan, argv)
    if key3 == "wait for digit":
        if len(argv) != 4:
            return usage("wait for digit")
        return await _wait_for_digit(world, chan, argv[3])
    if key2 == "record file":
        if len(argv) < 6:
            return usage("record file")
        return await _record_file(world, chan, argv)
    if key2 == "set variable":
        if len(argv) != 4:
            return usage("set variable")
        if "(" in argv[2]:
            # a dialplan function (CHANNEL(hangupsource), CDR(userfield)): no VarSet
            chan.variables[argv[2]] = argv[3]
        else:
            world.set_var(chan, argv[2], argv[3])
        return ok("1")
    if key3 == "get full variable":
        if len(argv) not in (4, 5):
            return usage("get full variable")
        target = chan if len(argv) == 4 else world.find_channel(argv[4])
        if target is None:
            return ok("0")
        return ok(f"1 ({substitute(target, argv[3])})")
    if key2 == "get variable":
        if len(argv) != 3:
            return usage("get variable")
        value = get_variable(chan, argv[2])
        return ok("0") if value is None else ok(f"1 ({value})")
    if key2 == "channel status":
        return ok("-1") if dead else ok(str(chan.state))
    if words[0] == "verbose":
        return ok("1")
    if key2 == "say digits":
        if len(argv) != 4:
            return usage("say digits")
        return await _say_digits(world, chan, argv[2], argv[3])
    if key2 == "say number":
        if not 4 <= len(argv) <= 5:
            return usage("say number")
        return await _say_digits(world, chan, argv[2].lstrip("-"), argv[3])
    if words[0] == "exec":
        if len(argv) < 2:
            return usage("exec")
        res = await run_application(world, chan, argv[1], argv[2] if len(argv) > 2 else "")
        return ok(str(res))
    return UNKNOWN


_REFERENCE = re.compile(r"\$\{([^{}]+)\}")


def substitute(chan: SimChannel, text: str) -> str:
    """``${NAME}`` references replaced by the channel's values (empty when unset)."""
    return _REFERENCE.sub(lambda m: get_variable(chan, m.group(1)) or "", text)


def get_variable(chan: SimChannel, name: str) -> str | None:
    builtin = {
        "CHANNEL": chan.name,
        "UNIQUEID": chan.uniqueid,
        "LINKEDID": chan.linkedid,
        "CALLERID(num)": chan.caller_num,
        "CALLERID(name)": chan.caller_name,
        "CALLERID(all)": f'"{chan.caller_name}" <{chan.caller_num}>',
        "EXTEN": chan.exten,
        "CONTEXT": chan.context,
        "PRIORITY": str(chan.priority),
        "LANGUAGE()": chan.language,
        "CHANNEL(language)": chan.language,
    }
    if name in builtin:
        return builtin[name]
    return chan.variables.get(name)


def _hangup(world: World, chan: SimChannel, argv: list[str]) -> AgiResult:
    if len(argv) > 2:
        return usage("hangup")
    target = chan
    if len(argv) == 2:
        found = world.find_channel(argv[1])
        if found is None:
            return ok("-1")
        target = found
    # AST_SOFTHANGUP_EXPLICIT (32) is what the SoftHangupRequest carries for AGI HANGUP
    target.hangup_cause = 0
    world.request_hangup(target, cause=0, soft_cause=32)
    return AgiResult("200 result=1\n", control="hangup" if target is chan else "")


async def _stream_file(world: World, chan: SimChannel, name: str, escape: str) -> AgiResult:
    if chan.hangup_requested:
        return ok("-1 endpos=0")
    played = await play(world, chan, name, escape, listening=False) if one_file(name) else None
    if played is None:
        log.warning("playback of %r failed: no such file", name)
        return ok("-1 endpos=0")
    how, digit, seconds = played
    endpos = int(seconds * RATE)
    if how == "hangup":
        return ok(f"-1 endpos={endpos}")
    if how == "digit":
        return ok(f"{ord(digit)} endpos={endpos}")
    return ok(f"0 endpos={endpos}")


async def _get_data(world: World, chan: SimChannel, argv: list[str]) -> AgiResult:
    try:
        timeout_ms = int(argv[3]) if len(argv) > 3 else 0
        max_digits = int(argv[4]) if len(argv) > 4 else 1024
    except ValueError:
        return usage("get data")
    if chan.hangup_requested:
        return ok("-1")
    if chan.caller is not None:
        chan.caller.input_requested("get data")
    played = None
    if one_file(argv[2]):
        played = await play(world, chan, argv[2], "0123456789*#ABCD", listening=True)
    if played is None:
        # ast_app_getdata_full: a prompt it cannot open fails the whole command
        log.warning("playback of %r failed: no such file", argv[2])
        return ok("-1")
    how, first, _ = played
    if how == "hangup":
        return ok("-1")
    # Asterisk's default when no timeout is given: the channel's response timeout (6 s)
    timeout = (timeout_ms if timeout_ms > 0 else 6000) / 1000
    if first == "#":
        return ok("")
    digits, how = await collect(world, chan, timeout, first, max_digits)
    if how == "hangup":
        return ok("-1")
    if how == "timeout":
        return ok(f"{digits} (timeout)")
    return ok(digits)


async def _wait_for_digit(world: World, chan: SimChannel, timeout_arg: str) -> AgiResult:
    try:
        timeout_ms = int(timeout_arg)
    except ValueError:
        return usage("wait for digit")
    if chan.hangup_requested:
        return ok("-1")
    if chan.caller is not None:
        chan.caller.input_requested("wait for digit")
    _drain(chan)
    chan.collecting = True
    try:
        deadline = None if timeout_ms < 0 else world.loop_time() + world.real(timeout_ms / 1000)
        while True:
            item = await _await_inbox(world, chan, deadline)
            if item is None:
                return ok("0")
            if item[0] == "hangup":
                return ok("-1")
            if item[0] == "digit":
                return ok(str(ord(item[1])))
    finally:
        chan.collecting = False


async def _say_digits(world: World, chan: SimChannel, number: str, escape: str) -> AgiResult:
    for ch in number:
        if not ch.isdigit():
            continue
        played = await play(world, chan, f"digits/{ch}", escape, listening=False)
        if played is None:
            continue
        how, digit, _ = played
        if how == "hangup":
            return ok("-1")
        if how == "digit":
            return ok(str(ord(digit)))
    return ok("0")


async def _record_file(world: World, chan: SimChannel, argv: list[str]) -> AgiResult:
    name, fmt, escape = argv[2], argv[3], argv[4]
    try:
        timeout_ms = int(argv[5])
    except ValueError:
        return usage("record file")
    beep = False
    silence: float | None = None
    for extra in argv[6:]:
        if extra.lower() == "beep":
            beep = True
        elif extra.lower().startswith("s="):
            try:
                silence = float(extra[2:])
            except ValueError:
                return usage("record file")
    if chan.hangup_requested:
        return ok("-1 (hangup) endpos=0")
    path = _record_path(world, name, fmt)
    # Asterisk opens the file (ast_writefile, O_CREAT|O_WRONLY|O_TRUNC) before the beep:
    # a folder it may not write fails the command at once, whatever the permissions say.
    problem = "unknown format or no such folder" if path is None else _open_for_writing(path)
    if path is None or problem:
        log.warning("record file %r format %r: cannot write: %s", name, fmt, problem)
        return ok("-1 (writefile)")
    if beep:
        played = await play(world, chan, "beep", "", listening=False)
        if played is not None and played[0] == "hangup":
            return ok("-1 (hangup) endpos=0")
    if chan.caller is not None:
        chan.caller.input_requested("record file")
    _drain(chan)
    start = world.loop_time()
    deadline = None if timeout_ms < 0 else start + world.real(timeout_ms / 1000)
    speech = 0.0
    ended = "timeout"
    digit = ""
    until: float | None
    chan.collecting = bool(escape)
    chan.recording = True
    try:
        while True:
            now = world.loop_time()
            if chan.speaking_until > now:
                until = (
                    chan.speaking_until if deadline is None else min(chan.speaking_until, deadline)
                )
                item = await _await_inbox(world, chan, until)
                speech += min(world.loop_time(), chan.speaking_until) - now
                if item is None:
                    if deadline is not None and world.loop_time() >= deadline:
                        break
                    continue
            else:
                until = deadline
                # Asterisk counts silence from the start, spoken or not (res_agi's
                # totalsilence), so a caller who says nothing ends it too.
                if silence is not None:
                    quiet_end = now + world.real(silence)
                    until = quiet_end if until is None else min(quiet_end, until)
                item = await _await_inbox(world, chan, until)
                if item is None:
                    if silence is not None and (deadline is None or world.loop_time() < deadline):
                        ended = "silence"
                    break
            kind, value = item
            if kind == "hangup":
                ended = "hangup"
                break
            if kind == "digit" and value in escape:
                ended, digit = "dtmf", value
                break
    finally:
        chan.collecting = False
        chan.recording = False
    total = world.sim(world.loop_time() - start)
    if ended == "silence" and silence is not None:
        # Asterisk trims the trailing silence, keeping one second of it
        total = max(0.0, total - (silence - 1.0))
    endpos = int(total * RATE)
    speech_s = min(world.sim(speech), total)
    try:
        await asyncio.to_thread(_write_audio, path, fmt, endpos, int(speech_s * RATE))
    except OSError as exc:
        log.warning("record file %s: %s", path, exc)
        return ok("-1 (writefile)")
    if chan.caller is not None:
        chan.caller.outcome.recordings.append(str(path))
    if ended == "hangup":
        return ok(f"-1 (hangup) endpos={endpos}")
    if ended == "dtmf":
        return ok(f"{ord(digit)} (dtmf) endpos={endpos}")
    return ok(f"0 (timeout) endpos={endpos}")


def _open_for_writing(path: Path) -> str:
    """Create (or empty) the file to record into; the reason it cannot be, or "".

    One open(2), done on the loop like the other file checks here: through the thread
    pool it would queue behind the audio being written for other calls."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
    except OSError as exc:
        return exc.strerror or str(exc)
    return ""


def one_file(name: str) -> bool:
    """AGI's STREAM FILE, GET DATA and CONTROL STREAM FILE open their argument as one
    file name: ``a&b`` names no file (only dialplan applications join files with &)."""
    return "&" not in name


FORMATS = {"wav": ".wav", "wav16": ".wav16", "sln": ".sln", "slin": ".sln", "raw": ".raw"}


def _record_path(world: World, name: str, fmt: str) -> Path | None:
    ext = FORMATS.get(fmt.lower())
    if ext is None:
        return None
    base = Path(name)
    if not base.is_absolute():
        if world.config.recordings_dir is None:
            return None
        base = world.config.recordings_dir / base
    if not base.parent.is_dir():
        return None
    return base.with_name(base.name + ext)


def _write_audio(path: Path, fmt: str, samples: int, speech_samples: int) -> None:
    """Write ``samples`` of 8 kHz audio: a pause, ``speech_samples`` of 'voice', then quiet."""
    rate = 16000 if fmt.lower() == "wav16" else RATE
    factor = rate // RATE
    frames = bytearray()
    lead = min(samples, RATE // 5)
    for i in range(samples * factor):
        t = i / rate
        j = i // factor
        if lead <= j < lead + speech_samples:
            envelope = 0.5 + 0.5 * math.sin(2 * math.pi * 3 * t)
            value = (
                6000
                * envelope
                * (math.sin(2 * math.pi * 220 * t) + 0.5 * math.sin(2 * math.pi * 440 * t))
            )
        else:
            value = 0.0
        frames += struct.pack("<h", int(max(-32767, min(32767, value))))
    if path.suffix in (".wav", ".wav16"):
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(bytes(frames))
    else:
        path.write_bytes(bytes(frames))


# --- dialplan applications run by EXEC (or by Originate's Application) -------------------


async def run_application(world: World, chan: SimChannel, app: str, data: str) -> int:
    """Run a dialplan application on the channel; returns what pbx_exec returns."""
    name = app.lower()
    previous = (chan.app, chan.appdata)
    chan.app, chan.appdata = app, data
    chan.last_app, chan.last_data = app, data
    try:
        if chan.hangup_requested:
            return -1
        if name == "queue":
            args = data.split(",")
            try:
                timeout = float(args[4]) if len(args) > 4 and args[4] else None
            except ValueError:
                timeout = None  # Asterisk ignores a timeout it cannot read
            return await world.queue_call(chan, args[0], timeout)
        if name == "read":
            return await _read(world, chan, data)
        if name in ("playback", "background"):
            for file in data.split(",", 1)[0].split("&"):
                played = await play(world, chan, file, "", listening=False)
                if played is not None and played[0] == "hangup":
                    return -1
            return 0
        if name == "wait":
            try:
                seconds = float(data or "0")
            except ValueError:
                seconds = 0.0
            deadline = world.loop_time() + world.real(seconds)
            while True:
                item = await _await_inbox(world, chan, deadline)
                if item is None:
                    return 0
                if item[0] == "hangup":
                    return -1
        if name == "mixmonitor":
            start_mixmonitor(world, chan)
            return 0
        if name == "hangup":
            # Hangup(cause): the cause it names (Normal Clearing without one), soft
            # hang-up AST_SOFTHANGUP_EXPLICIT (32) like AGI's HANGUP
            cause = int(data) if data.isdigit() and int(data) > 0 else 16
            world.request_hangup(chan, cause=cause, soft_cause=32)
            return -1
        if name == "answer":
            world.set_state(chan, STATE_UP)
            return 0
        if name in ("noop", "set", "verbose"):
            if name == "set" and "=" in data:
                key, value = data.split("=", 1)
                world.set_var(chan, key, value)
            return 0
        log.warning("could not find application (%s)", app)
        return -2
    finally:
        if chan.in_agi:
            chan.app, chan.appdata = previous


async def _read(world: World, chan: SimChannel, data: str) -> int:
    """Read(variable,file1&file2…,maxdigits,options,attempts,timeout), as app_read with
    ast_app_getdata: each file plays interruptible by any key, 50 ms allowed for a first
    key between files, then the timeout after the last; # ends the input. Sets the
    variable and READSTATUS (OK, TIMEOUT, HANGUP)."""
    args = data.split(",")
    variable = args[0].strip()
    if not variable:
        log.warning("Read requires a variable name")
        return -1
    files = [f for f in (args[1] if len(args) > 1 else "").split("&") if f]
    try:
        max_digits = int(args[2]) if len(args) > 2 and args[2] else 0
        timeout = float(args[5]) if len(args) > 5 and args[5] else 6.0
    except ValueError:
        max_digits, timeout = 0, 6.0
    if max_digits <= 0 or max_digits > 255:
        max_digits = 255
    if chan.caller is not None:
        chan.caller.input_requested("read")
    digits, how = "", "timeout"
    names = files or [""]
    for index, file in enumerate(names):
        last = index == len(names) - 1
        first = ""
        if file:
            played = await play(world, chan, file, "0123456789*#ABCD", listening=True)
            if played is not None and played[0] == "hangup":
                how = "hangup"
                break
            if played is not None and played[0] == "digit":
                first = played[1]
        if first == "#":
            digits, how = "", "done"
            break
        if first:
            digits, how = await collect(world, chan, timeout, first, max_digits)
            break
        digits, how = await collect(world, chan, timeout if last else 0.05, "", max_digits)
        if digits and how == "timeout" and not last:
            digits, how = await collect(world, chan, timeout, digits, max_digits)
        if digits or how != "timeout" or last:
            break
    world.set_var(chan, variable, digits)
    status = {"hangup": "HANGUP", "timeout": "TIMEOUT"}.get(how, "OK")
    world.set_var(chan, "READSTATUS", status)
    return -1 if how == "hangup" else 0


def start_mixmonitor(world: World, chan: SimChannel) -> None:
    chan.variables["__MIXMONITOR"] = "1"
    world.chan_event(n.EV_MIX_MONITOR_START, PRIV_CALL, chan)
