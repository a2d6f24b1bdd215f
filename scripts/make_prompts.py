"""Render the gateway's Chinese voice prompts (see recordings/README.md).

Run it through ``scripts/make-prompts``. The prompts come from four places, later
ones winning on the same name:

1. the pieces numbers and dates are spoken with (``digits/0`` … ``pieces/nian``),
   listed in ``PIECES`` below;
2. the names of the units of the demo city (``unit/<code>``);
3. the categories and kinds of business followed up (``category/<code>``,
   ``kind/<code>``) from ``gateway/callbacks/catalogue.toml``;
4. ``recordings/prompts.yaml``: what the flows play, name → text.

Each prompt ``a/b`` becomes ``recordings/zh/a/b.wav`` (8 kHz, mono, 16-bit PCM)
and ``recordings/zh/a/b.txt`` (its exact text). The voice is espeak-ng's
Mandarin, a stand-in until studio recordings replace it. ``generated.json`` in
``recordings/zh`` lists the checksum of every generated WAV, so a studio
recording put in place of one is recognised and never overwritten or removed
silently.

``--check`` needs neither espeak-ng nor sox: it verifies that every prompt has a
well-formed WAV and a matching .txt, and that nothing is left over.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import wave
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from gateway.callbacks.catalogue import load_catalogue
from gateway.errors import GatewayError
from gateway.store.seed import demo_city

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = "recordings"
LANGUAGE = "zh"
CATALOGUE_FILE = "prompts.yaml"
MANIFEST = "generated.json"

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2  # bytes: 16-bit
CHANNELS = 1
#: Below this RMS (of 32767) a recording counts as silent (about -50 dBFS).
SILENCE_RMS = 100.0

#: espeak-ng's plain ``cmn`` voice reads the tone digits of its own pinyin in
#: English ("ni three hao three"); ``cmn-latn-pinyin`` speaks them as tones.
DEFAULT_VOICE = "cmn-latn-pinyin"
DEFAULT_SPEED = 180  # words per minute: about four syllables a second

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(/[A-Za-z0-9][A-Za-z0-9_-]*)*$")

#: Pieces that numbers, dates, times and phone numbers are assembled from.
PIECES: dict[str, str] = {
    "digits/0": "零",
    "digits/1": "一",
    "digits/2": "二",
    "digits/3": "三",
    "digits/4": "四",
    "digits/5": "五",
    "digits/6": "六",
    "digits/7": "七",
    "digits/8": "八",
    "digits/9": "九",
    "digits/yao": "幺",  # 1 inside a phone or case number
    "digits/liang": "两",  # 2 before a measure word: 两点, 两千
    "pieces/shi": "十",
    "pieces/bai": "百",
    "pieces/qian": "千",
    "pieces/wan": "万",
    "pieces/nian": "年",
    "pieces/yue": "月",
    "pieces/ri": "日",
    "pieces/hao": "号",
    "pieces/dian": "点",
    "pieces/fen": "分",
    "pieces/ban": "半",
    "pieces/xingqi": "星期",  # 星期 + 一…六, 星期 + 日
    "pieces/shangwu": "上午",
    "pieces/xiawu": "下午",
    "pieces/tian": "天",
    "pieces/ge": "个",
    "pieces/dash": "杠",
    "pieces/star": "星号",
    "pieces/pound": "井号",
    # Latin letters of codes and plates, said the way Chinese speakers spell them
    **{f"letters/{c}": c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
}

#: Name prefixes of prompts spliced into sentences: they get less silence around them.
SPLICED_PREFIXES = ("digits/", "letters/", "pieces/", "unit/", "kind/", "category/")


class PromptError(Exception):
    """A prompt source is malformed or a tool failed; the message says which and why."""


@dataclass(frozen=True)
class WavInfo:
    rate: int
    channels: int
    width: int
    frames: int
    rms: float

    @property
    def seconds(self) -> float:
        return self.frames / self.rate if self.rate else 0.0


# --- what should exist -------------------------------------------------------


def load_prompts_yaml(path: Path) -> dict[str, str]:
    """The flows' prompts: a mapping name → text (or name → {text: ...})."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise PromptError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PromptError(f"{path}: must be a mapping of prompt name to text")
    prompts: dict[str, str] = {}
    for name, value in data.items():
        text = value.get("text") if isinstance(value, dict) else value
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise PromptError(
                f"{path}: {name!r}: a prompt name is ASCII words joined by '/', "
                "e.g. hotline/welcome (no extension)"
            )
        if not isinstance(text, str) or not text.strip():
            raise PromptError(f"{path}: {name}: the text must be a non-empty string")
        prompts[name] = text.strip()
    return prompts


def unit_prompts(seed_text: str, source: str) -> dict[str, str]:
    """``unit/<code>`` → the unit's name, for every unit of a seed file."""
    try:
        data = tomllib.loads(seed_text)
    except tomllib.TOMLDecodeError as exc:
        raise PromptError(f"{source}: not valid TOML: {exc}") from None
    prompts: dict[str, str] = {}
    for index, unit in enumerate(data.get("unit", [])):
        code, name = unit.get("code"), unit.get("name")
        if not isinstance(code, str) or not NAME_PATTERN.match(code):
            raise PromptError(f"{source}: unit[{index}]: code {code!r} cannot name a prompt")
        if not isinstance(name, str) or not name.strip():
            raise PromptError(f"{source}: unit[{index}] ({code}): name is missing")
        prompts[f"unit/{code}"] = name.strip()
    return prompts


def catalogue_prompts(catalogue_path: Path | None = None) -> dict[str, str]:
    """``category/<code>`` and ``kind/<code>`` → their names."""
    catalogue = load_catalogue(catalogue_path)
    prompts = {f"category/{c.code}": c.name for c in catalogue.categories}
    prompts.update({f"kind/{k.code}": k.name for k in catalogue.kinds})
    return prompts


def wanted_prompts(
    root: Path = ROOT, *, units: Path | None = None, catalogue: Path | None = None
) -> dict[str, str]:
    """Every prompt that should exist, name → text (prompts.yaml wins on a shared name)."""
    prompts = dict(PIECES)
    if units is None:
        prompts.update(unit_prompts(demo_city(), "demo-city.toml"))
    else:
        prompts.update(unit_prompts(units.read_text("utf-8"), str(units)))
    prompts.update(catalogue_prompts(catalogue))
    flows = root / RECORDINGS / CATALOGUE_FILE
    if flows.exists():
        prompts.update(load_prompts_yaml(flows))
    return dict(sorted(prompts.items()))


#: Words the synthesiser's dictionary reads wrongly, in tone-numbered pinyin
#: (the voice reads Latin text as pinyin). Longest words are replaced first.
PRONUNCIATIONS: dict[str, str] = {
    "重新": "chong2 xin1",
    "重听": "chong2 ting1",
    "重复": "chong2 fu4",
    "重拨": "chong2 bo1",
    "地点": "di4 dian3",
    "当地": "dang1 di4",
    "属地": "shu3 di4",
    "地址": "di4 zhi3",
    "接处警": "jie1 chu3 jing3",
    "处警": "chu3 jing3",
    "处理": "chu3 li3",
    "处罚": "chu3 fa2",
    "调解": "tiao2 jie3",
    "尽快": "jin3 kuai4",
}
_PRONUNCIATION = re.compile("|".join(sorted(PRONUNCIATIONS, key=len, reverse=True)))
#: Sentence ends: a prompt ending otherwise is a fragment spliced into a sentence.
SENTENCE_ENDS = ("。", "！", "？", ".", "!", "?")


def spoken_text(text: str) -> str:
    """What the synthesiser is given for ``text`` (the .txt keeps ``text`` as written).

    Runs of 3+ digits are read one by one with 幺 for 1, as a Chinese operator
    reads 110 or a hotline number ("12号" stays a number), and the words of
    :data:`PRONUNCIATIONS` are given as pinyin.
    """
    digits = "零幺二三四五六七八九"

    def by_digit(match: re.Match[str]) -> str:
        return "".join("杠" if ch == "-" else digits[int(ch)] for ch in match.group(0))

    text = re.sub(r"\d{3,}(?:-\d+)*", by_digit, text)
    return _PRONUNCIATION.sub(lambda m: f" {PRONUNCIATIONS[m.group(0)]} ", text)


def is_spliced(name: str, text: str) -> bool:
    """Pieces and sentence fragments get little silence: they are played between others."""
    return name.startswith(SPLICED_PREFIXES) or not text.endswith(SENTENCE_ENDS)


# --- inspecting what exists ----------------------------------------------------


def read_wav(path: Path) -> WavInfo:
    """The format of a WAV file and the RMS of its samples (16-bit only)."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            frames = wav.getnframes()
            data = wav.readframes(frames)
    except (wave.Error, EOFError, OSError) as exc:
        raise PromptError(f"{path}: not a readable PCM WAV file: {exc}") from None
    rms = 0.0
    if width == 2 and data:
        samples = array("h")
        samples.frombytes(data[: len(data) - len(data) % 2])
        if sys.byteorder == "big":
            samples.byteswap()
        rms = (sum(s * s for s in samples) / len(samples)) ** 0.5
    return WavInfo(rate, channels, width, frames, rms)


def wav_problems(path: Path) -> list[str]:
    """Why a WAV is unfit for the PBX, or nothing."""
    try:
        info = read_wav(path)
    except PromptError as exc:
        return [str(exc)]
    problems = []
    if info.rate != SAMPLE_RATE:
        problems.append(f"{path}: {info.rate} Hz, the PBX wants {SAMPLE_RATE} Hz")
    if info.channels != CHANNELS:
        problems.append(f"{path}: {info.channels} channels, the PBX wants mono")
    if info.width != SAMPLE_WIDTH:
        problems.append(f"{path}: {8 * info.width}-bit samples, the PBX wants 16-bit")
    if info.frames == 0:
        problems.append(f"{path}: no audio")
    elif info.width == SAMPLE_WIDTH and info.rms < SILENCE_RMS:
        problems.append(f"{path}: silent (RMS {info.rms:.0f})")
    return problems


def existing_files(zh: Path) -> dict[str, set[str]]:
    """Prompt name → the suffixes present (".wav", ".txt") under ``zh``."""
    found: dict[str, set[str]] = {}
    for path in zh.rglob("*"):
        if path.is_file() and path.suffix in (".wav", ".txt"):
            name = path.relative_to(zh).with_suffix("").as_posix()
            found.setdefault(name, set()).add(path.suffix)
    return found


def read_text_file(path: Path) -> str | None:
    try:
        return path.read_text("utf-8").removesuffix("\n")
    except (OSError, UnicodeDecodeError):
        return None


def check(root: Path, wanted: Mapping[str, str]) -> list[str]:
    """Every problem with the recordings under ``root``: missing, stale, malformed, left over."""
    zh = root / RECORDINGS / LANGUAGE
    problems: list[str] = []
    found = existing_files(zh) if zh.is_dir() else {}
    for name, text in wanted.items():
        wav, txt = zh / f"{name}.wav", zh / f"{name}.txt"
        if ".wav" not in found.get(name, set()):
            problems.append(f"{name}: missing {wav.relative_to(root)}")
        else:
            problems.extend(wav_problems(wav))
        if ".txt" not in found.get(name, set()):
            problems.append(f"{name}: missing {txt.relative_to(root)}")
        elif read_text_file(txt) != text:
            problems.append(
                f"{name}: {txt.relative_to(root)} says {read_text_file(txt)!r}, "
                f"the catalogue says {text!r}"
            )
    for name in sorted(set(found) - set(wanted)):
        for suffix in sorted(found[name]):
            problems.append(
                f"{name}: {(zh / (name + suffix)).relative_to(root)} is not in any catalogue"
            )
    return problems


# --- rendering -----------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Generated:
    """What the generator wrote for one prompt: the WAV's checksum and how it was rendered."""

    sha256: str
    render: str


def render_key(name: str, text: str, voice: str, speed: int) -> str:
    """Everything the audio depends on: a change re-renders a generated prompt."""
    shape = "spliced" if is_spliced(name, text) else "sentence"
    return f"espeak-ng {voice} {speed} wpm {shape}: {spoken_text(text)}"


def load_manifest(zh: Path) -> dict[str, Generated]:
    path = zh / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
        return {
            str(name): Generated(str(entry["sha256"]), str(entry["render"]))
            for name, entry in data["generated"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PromptError(f"{path}: unreadable ({exc}); delete it and run with --force") from None


def save_manifest(zh: Path, generated: Mapping[str, Generated]) -> None:
    path = zh / MANIFEST
    body = {
        "about": "WAVs written by make-prompts; another checksum means a studio recording",
        "generated": {
            name: {"sha256": entry.sha256, "render": entry.render}
            for name, entry in sorted(generated.items())
        },
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=1) + "\n", "utf-8")
    os.replace(tmp, path)


def require_tools(voice: str) -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise PromptError(
            f"{' and '.join(missing)} not found. Install them, e.g. on Debian or Ubuntu: "
            "apt-get install espeak-ng sox"
        )
    listed = subprocess.run(
        ["espeak-ng", "--voices=cmn"], capture_output=True, text=True, check=False
    ).stdout
    if voice not in listed.split():
        raise PromptError(
            f"espeak-ng has no voice {voice!r} (its Mandarin voices: "
            f"{', '.join(w for w in listed.split() if w.startswith('cmn')) or 'none'}); "
            "install the espeak-ng-data package or pass --voice"
        )


def render(text: str, out: Path, *, voice: str, speed: int, spliced: bool) -> None:
    """Synthesise ``text`` into ``out``: 8 kHz mono 16-bit, trimmed, normalised, padded."""
    lead, tail = ("0.05", "0.05") if spliced else ("0.15", "0.25")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prompt-") as tmp:
        source, raw = Path(tmp) / "text.txt", Path(tmp) / "raw.wav"
        source.write_text(spoken_text(text), "utf-8")
        staged = out.with_name(out.name + ".part")
        espeak = f"espeak-ng -v {voice} -s {speed} -b 1 -f {{source}} -w {{raw}}"
        # sox: trim the synthesiser's own silence at both ends, resample, normalise, pad
        sox = (
            "sox -R -D {raw} -b 16 -e signed-integer -c 1 -t wav {staged}"
            " silence 1 0.02 0.3% reverse silence 1 0.02 0.3% reverse"
            f" rate -v {SAMPLE_RATE} gain -n -1 pad {lead} {tail}"
        )
        paths = {"source": str(source), "raw": str(raw), "staged": str(staged)}
        for template in (espeak, sox):
            _run([word.format(**paths) for word in template.split()], text)
        os.replace(staged, out)


def _run(command: list[str], text: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PromptError(f"{command[0]} failed on {text!r}: {result.stderr.strip()}")


def generate(
    root: Path,
    wanted: Mapping[str, str],
    *,
    force: bool,
    voice: str,
    speed: int,
) -> tuple[list[str], list[str]]:
    """Bring ``recordings/zh`` in line with ``wanted``; return (lines to print, warnings)."""
    zh = root / RECORDINGS / LANGUAGE
    zh.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(zh)
    lines: list[str] = []
    warnings: list[str] = []
    written = skipped = 0

    def generated_here(name: str, wav: Path) -> Generated | None:
        entry = manifest.get(name)
        return entry if entry is not None and entry.sha256 == sha256(wav) else None

    for name, text in wanted.items():
        wav, txt = zh / f"{name}.wav", zh / f"{name}.txt"
        key = render_key(name, text, voice, speed)
        current = read_text_file(txt) if txt.exists() else None
        ours = generated_here(name, wav) if wav.exists() else None
        if not force and wav.exists() and current == text and (ours is None or ours.render == key):
            skipped += 1  # up to date, or a studio recording of the current text
            continue
        if wav.exists() and ours is None and not force:
            warnings.append(
                f"{name}: the studio recording is stale (text now {text!r}); "
                "re-record it, or run with --force to replace it with a generated one"
            )
            continue
        render(text, wav, voice=voice, speed=speed, spliced=is_spliced(name, text))
        txt.write_text(text + "\n", "utf-8")
        manifest[name] = Generated(sha256(wav), key)
        info = read_wav(wav)
        lines.append(f"wrote {name} ({info.seconds:.2f} s, {len(text)} characters)")
        written += 1
    removed = 0
    for name, suffixes in sorted(existing_files(zh).items()):
        if name in wanted:
            continue
        if ".wav" in suffixes and generated_here(name, zh / f"{name}.wav") is None:
            warnings.append(
                f"{name}: a studio recording no catalogue names; kept, remove it by hand"
            )
            continue
        for suffix in suffixes:
            (zh / (name + suffix)).unlink()
        lines.append(f"removed {name}")
        removed += 1
    _remove_empty_dirs(zh)
    save_manifest(zh, {n: g for n, g in manifest.items() if n in wanted})
    lines.append(f"{written} written, {skipped} up to date, {removed} removed")
    return lines, warnings


def _remove_empty_dirs(zh: Path) -> None:
    for path in sorted((p for p in zh.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(path.iterdir()):
            path.rmdir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make-prompts",
        description="Render the Chinese voice prompts into recordings/zh (8 kHz mono WAV + .txt).",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only verify the recordings; needs neither espeak-ng nor sox",
    )
    parser.add_argument(
        "--force", action="store_true", help="render every prompt again, studio recordings included"
    )
    parser.add_argument("--voice", default=DEFAULT_VOICE, help=f"espeak-ng voice ({DEFAULT_VOICE})")
    parser.add_argument(
        "--speed", type=int, default=DEFAULT_SPEED, help=f"words per minute ({DEFAULT_SPEED})"
    )
    parser.add_argument(
        "--units", type=Path, help="seed file whose units get unit/<code> prompts (the demo city)"
    )
    parser.add_argument(
        "--catalogue",
        type=Path,
        help="catalogue of business for kind/<code> prompts (the bundled one)",
    )
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        wanted = wanted_prompts(args.root, units=args.units, catalogue=args.catalogue)
        if args.check:
            problems = check(args.root, wanted)
            for problem in problems:
                print(problem, file=sys.stderr)
            print(f"{len(wanted)} prompts, {len(problems)} problems")
            return 1 if problems else 0
        require_tools(args.voice)
        lines, warnings = generate(
            args.root, wanted, force=args.force, voice=args.voice, speed=args.speed
        )
    except (PromptError, GatewayError, OSError) as exc:
        print(f"make-prompts: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    problems = check(args.root, wanted)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems or warnings else 0


if __name__ == "__main__":
    sys.exit(main())
