"""The example Asterisk configuration in asterisk/: keys Asterisk 22 accepts, sounds that exist.

Asterisk reads an unknown key in a queue as "Unknown keyword in queue" (a warning,
and the setting is lost), so every key the shipped files use is checked against
what the reading module of Asterisk 22 accepts. The tables below list those keys
per file and section, from Asterisk 22's documentation and sample configuration
(``queues.conf.sample``, ``manager.conf.sample``, ``cdr_manager.conf.sample``,
``cel.conf.sample``; app_queue's ``queue_set_param``). Keys removed before 22 are
listed apart with the reason, so that they are refused with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASTERISK = ROOT / "asterisk"
ZH = ROOT / "recordings" / "zh"

# A queue's own keys (app_queue, Asterisk 22).
QUEUE_KEYS = frozenset(
    """
    musicclass music musiconhold announce context timeout ringinuse setinterfacevar
    setqueuevar setqueueentryvar monitor-format membergosub queue-youarenext
    queue-thereare queue-callswaiting queue-quantity1 queue-quantity2 queue-holdtime
    queue-minutes queue-minute queue-seconds queue-thankyou queue-callerannounce
    queue-reporthold announce-frequency announce-to-first-user min-announce-frequency
    announce-round-seconds announce-holdtime announce-position announce-position-only-up
    announce-position-limit periodic-announce
    periodic-announce-frequency relative-periodic-announce random-periodic-announce
    retry wrapuptime penaltymemberslimit autofill autopause autopausedelay
    autopausebusy autopauseunavail maxlen servicelevel strategy joinempty
    leavewhenempty reportholdtime memberdelay weight timeoutrestart defaultrule
    timeoutpriority member
    """.split()
)
# Keys that existed once and are gone by Asterisk 22, with why.
REMOVED = {
    ("queues.conf", "eventwhencalled"): "removed in Asterisk 12: queue events are always sent",
    ("queues.conf", "eventmemberstatus"): "removed in Asterisk 12: member events are always sent",
    ("queues.conf", "monitor-type"): "removed with Monitor in Asterisk 21: MixMonitor only",
    ("queues.conf", "membermacro"): "removed with app_macro in Asterisk 21: use membergosub",
    ("queues.conf", "keepstats"): "removed in Asterisk 12",
    ("queues.conf", "updatecdr"): "removed in Asterisk 12",
}

# file → section ("*" for any other section) → accepted keys (None: any key).
KNOWN: dict[str, dict[str, frozenset[str] | None]] = {
    "queues.conf": {
        "general": frozenset(
            {
                "persistentmembers",
                "autofill",
                "shared_lastcall",
                "negative_penalty_invalid",
                "log_membername_as_agent",
                "force_longest_waiting_caller",
            }
        ),
        "*": QUEUE_KEYS,
    },
    "manager.conf": {
        "general": frozenset(
            {
                "enabled",
                "webenabled",
                "port",
                "bindaddr",
                "tlsenable",
                "tlsbindaddr",
                "tlscertfile",
                "tlsprivatekey",
                "tlscipher",
                "allowmultiplelogin",
                "displayconnects",
                "timestampevents",
                "channelvars",
                "debug",
                "authtimeout",
                "authlimit",
                "httptimeout",
            }
        ),
        "*": frozenset(
            {
                "secret",
                "deny",
                "permit",
                "acl",
                "read",
                "write",
                "writetimeout",
                "displayconnects",
                "allowmultiplelogin",
                "eventfilter",
                "setvar",
            }
        ),
    },
    "cdr_manager.conf": {"general": frozenset({"enabled"}), "mappings": None},
    "cel.conf": {
        "general": frozenset({"enable", "apps", "events", "dateformat"}),
        "manager": frozenset({"enabled", "show_user_defined"}),
    },
    "extensions.conf": {
        "general": frozenset(
            {
                "static",
                "writeprotect",
                "autofallthrough",
                "extenpatternmatchnew",
                "clearglobalvars",
                "userscontext",
            }
        ),
        "globals": None,
        "*": frozenset({"exten", "same", "include", "switch", "ignorepat"}),
    },
}
# Queue keys that name a sound file (a comma-separated list for periodic-announce).
SOUND_KEYS = frozenset(
    k for k in QUEUE_KEYS if k.startswith("queue-") or k in ("announce", "periodic-announce")
)
# Dialplan applications whose first argument names sound files joined by '&'.
PLAYING_APPS = ("Playback", "Background", "ControlPlayback")


@dataclass
class ConfFile:
    name: str
    # section → [(line number, key, value)]
    sections: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)


def parse_conf(path: Path) -> ConfFile:
    """Read an Asterisk .conf file as Asterisk does: [sections], key = value or
    key => value, ';' comments (a '\\;' is a literal semicolon)."""
    conf = ConfFile(path.name)
    section: str | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = re.split(r"(?<!\\);", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        header = re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line)
        if header:
            section = header.group(1)
            conf.sections.setdefault(section, [])
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}:{number}: not 'key = value': {raw!r}"
        assert section is not None, f"{path.name}:{number}: a key before any [section]"
        conf.sections[section].append((number, key.strip(), value.lstrip(">").strip()))
    return conf


CONF_FILES = sorted(ASTERISK.glob("*.conf"))


def unknown_keys(conf: ConfFile) -> list[str]:
    """One line per key the file's Asterisk 22 module would not accept."""
    tables = KNOWN[conf.name]
    problems = []
    for section, entries in conf.sections.items():
        accepted = tables.get(section, tables.get("*"))
        for number, key, _ in entries:
            removed = REMOVED.get((conf.name, key.lower()))
            if removed:
                problems.append(f"{conf.name}:{number}: [{section}] {key}: {removed}")
            elif accepted is not None and key.lower() not in accepted:
                problems.append(f"{conf.name}:{number}: [{section}] {key}: unknown to Asterisk 22")
    return problems


@pytest.mark.parametrize("path", CONF_FILES, ids=lambda p: p.name)
def test_every_key_is_one_asterisk_22_accepts(path: Path) -> None:
    """Each shipped .conf uses only keys its Asterisk 22 module reads, none removed."""
    assert path.name in KNOWN, f"{path.name}: add its accepted keys to this test"
    assert unknown_keys(parse_conf(path)) == []


def test_the_key_check_catches_the_keys_asterisk_22_rejects(tmp_path: Path) -> None:
    """The old queue keys are refused with their reason, and a misspelt key too."""
    old = tmp_path / "queues.conf"
    old.write_text(
        "[general]\npersistentmembers = yes\n\n[hotline]\neventwhencalled = yes\n"
        "eventmemberstatus = yes\nmonitor-type = MixMonitor\nringinuse = no\n"
        "annouce-frequency = 60 ; misspelt\n",
        encoding="utf-8",
    )
    problems = unknown_keys(parse_conf(old))
    assert [p.split(": ")[1] for p in problems] == [
        "[hotline] eventwhencalled",
        "[hotline] eventmemberstatus",
        "[hotline] monitor-type",
        "[hotline] annouce-frequency",
    ]
    assert "removed in Asterisk 12" in problems[0] and "unknown" in problems[3]


def _queues() -> dict[str, dict[str, str]]:
    conf = parse_conf(ASTERISK / "queues.conf")
    return {
        name: {k.lower(): v for _, k, v in entries if k != "member"}
        for name, entries in conf.sections.items()
        if name != "general"
    }


def test_a_seat_already_talking_is_not_rung() -> None:
    """Every queue sets ringinuse = no and records nothing itself (the dialplan does)."""
    queues = _queues()
    assert queues, "queues.conf defines no queue"
    for name, keys in queues.items():
        assert keys.get("ringinuse") == "no", name
        assert "monitor-format" not in keys, f"{name}: a second, seat-only recording"


def zh_number_files(number: int) -> list[str]:
    """The files Asterisk 22's Chinese number syntax (say.c) plays for 1 … 99."""
    assert 0 < number < 100
    if number < 10:
        return [f"digits/{number}"]
    files = [f"digits/{number // 10 * 10}"]
    if number % 10:
        files.append(f"digits/{number % 10}")
    return files


def named_sounds() -> dict[str, str]:
    """Every sound a shipped config names → where it is named."""
    sounds: dict[str, str] = {}
    for name, keys in _queues().items():
        for key, value in keys.items():
            if key in SOUND_KEYS and value:
                for sound in value.split(","):
                    sounds[sound.strip()] = f"queues.conf [{name}] {key}"
    dialplan = parse_conf(ASTERISK / "extensions.conf")
    for context, entries in dialplan.sections.items():
        for number, _, value in entries:
            for app, args in re.findall(r"\b(" + "|".join(PLAYING_APPS) + r")\(([^,)]*)", value):
                for sound in args.split("&"):
                    sounds[sound.strip()] = f"extensions.conf:{number} [{context}] {app}"
    return sounds


def test_every_sound_the_configs_name_is_a_chinese_prompt() -> None:
    """Each sound the configs play, and each number piece the queue says, is in recordings/zh."""
    sounds = named_sounds()
    for keys in _queues().values():
        announced = keys.get("announce-position", "yes") != "no"
        holdtime = keys.get("announce-holdtime", "no") != "no"
        if announced or holdtime:
            # Positions up to maxlen (or the limit said instead) and wait minutes up to 99.
            for number in range(1, 100):
                for piece in zh_number_files(number):
                    sounds.setdefault(piece, "Asterisk's Chinese numbers in queue announcements")
        if announced:
            # Not set: Asterisk's English-named defaults, which its zh sounds lack.
            for key in ("queue-youarenext", "queue-thereare", "queue-callswaiting"):
                assert key in keys, f"queues.conf: {key} is not set to a Chinese prompt"
    missing = [
        f"{sound} ({where})"
        for sound, where in sorted(sounds.items())
        if not (ZH / f"{sound}.wav").is_file() or not (ZH / f"{sound}.txt").is_file()
    ]
    assert "queue/youarenext" in sounds
    assert missing == []


def test_the_hotline_records_the_whole_call_under_the_naming_rule() -> None:
    """MixMonitor records from the start of the call (no bridged-only 'b') to the agreed path."""
    dialplan = parse_conf(ASTERISK / "extensions.conf")
    steps = [value for _, key, value in dialplan.sections["hotline"] if key in ("exten", "same")]
    mixmonitor = [s for s in steps if "MixMonitor(" in s]
    assert len(mixmonitor) == 1
    args = mixmonitor[0].split("MixMonitor(", 1)[1].rsplit(")", 1)[0]
    rule = "hotline/${STRFTIME(${EPOCH},,%Y/%m/%d)}/${UNIQUEID}.wav"
    assert args.startswith(rule)
    options = args.removeprefix(rule).removeprefix(",")
    assert "b" not in options
    # Started once the call is answered and before the gateway takes it.
    order = [next(i for i, s in enumerate(steps) if app in s) for app in ("Answer(", "MixMonitor(")]
    agi = next(i for i, s in enumerate(steps) if "AGI(" in s)
    assert order[0] < order[1] < agi
