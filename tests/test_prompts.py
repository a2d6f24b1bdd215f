"""The voice prompts in recordings/zh and the generator that renders them.

The committed WAVs are checked with the standard library only, so these tests
pass on a machine without espeak-ng or sox; the one test that renders for real
is skipped there.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import struct
import sys
import wave
from array import array
from pathlib import Path
from types import ModuleType

import pytest

from gateway.callbacks.catalogue import load_catalogue

ROOT = Path(__file__).resolve().parent.parent
ZH = ROOT / "recordings" / "zh"
MAX_FOLDER_BYTES = 15 * 1024 * 1024


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_prompts", ROOT / "scripts" / "make_prompts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_prompts"] = module
    spec.loader.exec_module(module)
    return module


mp = _load_generator()
WAVS = sorted(ZH.rglob("*.wav"))
WANTED: dict[str, str] = mp.wanted_prompts(ROOT)


def _rms(path: Path) -> tuple[wave._wave_params, float]:
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        data = wav.readframes(params.nframes)
    samples = array("h")
    samples.frombytes(data[: len(data) - len(data) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    rms = math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0
    return params, rms


def _name(path: Path) -> str:
    return path.relative_to(ZH).with_suffix("").as_posix()


# --- the committed recordings ------------------------------------------------------


def test_recordings_exist() -> None:
    """The recordings folder holds the rendered prompts (they are committed, not built)."""
    assert len(WAVS) >= len(WANTED) > 100


@pytest.mark.parametrize("path", WAVS, ids=[_name(p) for p in WAVS])
def test_wav_is_8khz_mono_16bit_and_not_silent(path: Path) -> None:
    """Each WAV is a RIFF/WAVE PCM file at 8000 Hz, mono, 16-bit, with audible audio."""
    head = path.read_bytes()[:12]
    assert head[:4] == b"RIFF" and head[8:12] == b"WAVE"
    params, rms = _rms(path)
    assert (params.framerate, params.nchannels, params.sampwidth) == (8000, 1, 2)
    assert params.comptype == "NONE"
    assert params.nframes > 0
    assert rms > 100, f"RMS {rms:.0f}: silent"


@pytest.mark.parametrize("path", WAVS, ids=[_name(p) for p in WAVS])
def test_wav_length_is_plausible_for_its_text(path: Path) -> None:
    """A prompt lasts at least a syllable and at most about half a second a character."""
    text = path.with_suffix(".txt").read_text("utf-8").strip()
    params, _ = _rms(path)
    seconds = params.nframes / params.framerate
    assert 0.15 <= seconds <= 1.5 + 0.5 * len(text), f"{seconds:.2f} s for {text!r}"


def test_every_wav_has_its_text_and_every_text_its_wav() -> None:
    """Each .wav has a .txt beside it and each .txt a .wav."""
    texts = sorted(ZH.rglob("*.txt"))
    assert [p.with_suffix(".txt") for p in WAVS] == texts


def test_every_prompt_has_its_recording_with_the_current_text() -> None:
    """Every piece, unit, kind and prompts.yaml entry has a WAV whose .txt holds its text."""
    missing = [n for n in WANTED if not (ZH / f"{n}.wav").is_file()]
    stale = [
        n
        for n in WANTED
        if (ZH / f"{n}.txt").is_file()
        and (ZH / f"{n}.txt").read_text("utf-8").removesuffix("\n") != WANTED[n]
    ]
    assert missing == [], "run scripts/make-prompts"
    assert stale == [], "run scripts/make-prompts"


def test_no_orphan_recordings() -> None:
    """No WAV or text is left whose name no catalogue lists."""
    orphans = sorted({_name(p) for p in [*WAVS, *ZH.rglob("*.txt")]} - set(WANTED))
    assert orphans == []


def test_catalogue_sources_are_all_covered() -> None:
    """The wanted set includes the pieces, the demo city's units and the 22 kinds and the
    appeals desk's answers."""
    assert WANTED["digits/0"] == "零" and WANTED["digits/yao"] == "幺"
    assert WANTED["unit/LZ-DC-01"] == "东关派出所"
    assert WANTED["kind/id_card"] == "居民身份证"
    kinds = {f"kind/{kind.code}": kind.name for kind in load_catalogue()}
    assert len(kinds) == 23 and kinds.items() <= WANTED.items()
    prompts_yaml = ROOT / "recordings" / "prompts.yaml"
    if prompts_yaml.exists():
        for name, text in mp.load_prompts_yaml(prompts_yaml).items():
            assert WANTED[name] == text


def test_folder_stays_small() -> None:
    """The recordings folder stays well under 15 MB."""
    size = sum(p.stat().st_size for p in ZH.rglob("*") if p.is_file())
    assert size < MAX_FOLDER_BYTES


def test_check_mode_finds_nothing_wrong() -> None:
    """``make-prompts --check`` passes on the committed recordings."""
    assert mp.check(ROOT, WANTED) == []


# --- the generator, on a scratch tree -----------------------------------------------


def _tone(path: Path, *, rate: int = 8000, amplitude: int = 8000, seconds: float = 0.5) -> None:
    frames = int(rate * seconds)
    samples = [int(amplitude * math.sin(2 * math.pi * 440 * i / rate)) for i in range(frames)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(struct.pack(f"<{frames}h", *samples))


@pytest.fixture
def fake_render(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the synthesiser by a tone whose length follows the text; record what was rendered."""
    rendered: list[str] = []

    def render(text: str, out: Path, *, voice: str, speed: int, spliced: bool) -> None:
        rendered.append(text)
        _tone(out, amplitude=1000 + 100 * len(text), seconds=0.2 * len(text))

    monkeypatch.setattr(mp, "render", render)
    return rendered


def _generate(
    root: Path, wanted: dict[str, str], force: bool = False, speed: int = 180
) -> tuple[list[str], list[str]]:
    return mp.generate(root, wanted, force=force, voice="cmn-latn-pinyin", speed=speed)  # type: ignore[no-any-return]


def test_generator_writes_wav_and_text_then_skips_them(
    tmp_path: Path, fake_render: list[str]
) -> None:
    """A first run renders each prompt and its .txt; a second run renders nothing."""
    wanted = {"hotline/welcome": "您好", "digits/0": "零"}
    lines, warnings = _generate(tmp_path, wanted)
    assert sorted(fake_render) == ["您好", "零"] and warnings == []
    zh = tmp_path / "recordings" / "zh"
    assert (zh / "hotline" / "welcome.txt").read_text("utf-8") == "您好\n"
    assert mp.check(tmp_path, wanted) == []
    fake_render.clear()
    lines, _ = _generate(tmp_path, wanted)
    assert fake_render == [] and lines[-1] == "0 written, 2 up to date, 0 removed"


def test_generator_renders_a_changed_text_again(tmp_path: Path, fake_render: list[str]) -> None:
    """A prompt whose text changed is rendered again and its .txt updated."""
    _generate(tmp_path, {"hotline/welcome": "您好"})
    fake_render.clear()
    _generate(tmp_path, {"hotline/welcome": "您好，欢迎"})
    assert fake_render == ["您好，欢迎"]
    txt = tmp_path / "recordings" / "zh" / "hotline" / "welcome.txt"
    assert txt.read_text("utf-8") == "您好，欢迎\n"


def test_force_renders_everything(tmp_path: Path, fake_render: list[str]) -> None:
    """--force renders prompts that are up to date."""
    _generate(tmp_path, {"a/b": "一"})
    fake_render.clear()
    _generate(tmp_path, {"a/b": "一"}, force=True)
    assert fake_render == ["一"]


def test_a_change_of_rendering_renders_generated_prompts_again(
    tmp_path: Path, fake_render: list[str]
) -> None:
    """A new speed (or pronunciation) re-renders generated prompts but leaves studio ones."""
    _generate(tmp_path, {"a/b": "一", "a/c": "二"})
    studio = tmp_path / "recordings" / "zh" / "a" / "c.wav"
    _tone(studio, amplitude=12000, seconds=0.9)
    fake_render.clear()
    _, warnings = _generate(tmp_path, {"a/b": "一", "a/c": "二"}, speed=150)
    assert fake_render == ["一"] and warnings == []
    manifest = json.loads((tmp_path / "recordings" / "zh" / "generated.json").read_text("utf-8"))
    assert manifest["generated"]["a/b"]["render"] == "espeak-ng cmn-latn-pinyin 150 wpm spliced: 一"


def test_unreadable_manifest_is_reported(tmp_path: Path) -> None:
    """A damaged generated.json stops the generator with the file named and the way out."""
    zh = tmp_path / "recordings" / "zh"
    zh.mkdir(parents=True)
    (zh / "generated.json").write_text('{"generated": {"a/b": "old"}}', "utf-8")
    with pytest.raises(mp.PromptError, match=r"generated\.json: unreadable .* --force"):
        _generate(tmp_path, {"a/b": "一"})


def test_generator_removes_names_that_left_the_catalogue(
    tmp_path: Path, fake_render: list[str]
) -> None:
    """Generated files of a name no longer listed are removed, empty folders too."""
    _generate(tmp_path, {"a/b": "一", "old/gone": "二"})
    lines, warnings = _generate(tmp_path, {"a/b": "一"})
    zh = tmp_path / "recordings" / "zh"
    assert "removed old/gone" in lines and warnings == []
    assert not (zh / "old").exists()
    manifest = json.loads((zh / "generated.json").read_text("utf-8"))
    assert list(manifest["generated"]) == ["a/b"]


def test_studio_recording_is_kept_when_up_to_date(tmp_path: Path, fake_render: list[str]) -> None:
    """A studio WAV put in place of a generated one, .txt kept, is left alone."""
    _generate(tmp_path, {"a/b": "一"})
    wav = tmp_path / "recordings" / "zh" / "a" / "b.wav"
    _tone(wav, amplitude=12000, seconds=0.9)
    studio = wav.read_bytes()
    fake_render.clear()
    _, warnings = _generate(tmp_path, {"a/b": "一"})
    assert fake_render == [] and warnings == [] and wav.read_bytes() == studio


def test_stale_studio_recording_is_not_overwritten(tmp_path: Path, fake_render: list[str]) -> None:
    """When a studio-recorded prompt's text changes, the recording stays and a warning says so."""
    _generate(tmp_path, {"a/b": "一"})
    wav = tmp_path / "recordings" / "zh" / "a" / "b.wav"
    _tone(wav, amplitude=12000, seconds=0.9)
    studio = wav.read_bytes()
    fake_render.clear()
    _, warnings = _generate(tmp_path, {"a/b": "一二"})
    assert fake_render == [] and wav.read_bytes() == studio
    assert len(warnings) == 1 and "a/b: the studio recording is stale" in warnings[0]
    assert any("a/b.txt says '一'" in p for p in mp.check(tmp_path, {"a/b": "一二"}))
    _generate(tmp_path, {"a/b": "一二"}, force=True)
    assert fake_render == ["一二"] and wav.read_bytes() != studio


def test_orphan_studio_recording_is_kept_and_reported(
    tmp_path: Path, fake_render: list[str]
) -> None:
    """A studio WAV whose name left the catalogue is not deleted; the check reports it."""
    zh = tmp_path / "recordings" / "zh"
    _tone(zh / "old" / "studio.wav")
    (zh / "old" / "studio.txt").write_text("旧\n", "utf-8")
    _, warnings = _generate(tmp_path, {"a/b": "一"})
    assert (zh / "old" / "studio.wav").exists()
    assert any("old/studio: a studio recording no catalogue names" in w for w in warnings)
    assert any(
        "old/studio.wav is not in any catalogue" in p for p in mp.check(tmp_path, {"a/b": "一"})
    )


def test_check_reports_each_kind_of_problem(tmp_path: Path) -> None:
    """The check names a missing prompt, a stale text, a wrong rate, a silent file and a stray."""
    zh = tmp_path / "recordings" / "zh"
    _tone(zh / "ok.wav")
    (zh / "ok.txt").write_text("好\n", "utf-8")
    _tone(zh / "stale.wav")
    (zh / "stale.txt").write_text("旧\n", "utf-8")
    _tone(zh / "wide.wav", rate=16000)
    (zh / "wide.txt").write_text("宽\n", "utf-8")
    _tone(zh / "quiet.wav", amplitude=0)
    (zh / "quiet.txt").write_text("静\n", "utf-8")
    (zh / "broken.wav").write_bytes(b"RIFF\x00\x00")
    (zh / "broken.txt").write_text("坏\n", "utf-8")
    _tone(zh / "stray.wav")
    wanted = {
        "ok": "好",
        "stale": "新",
        "wide": "宽",
        "quiet": "静",
        "broken": "坏",
        "absent": "无",
    }
    problems = "\n".join(mp.check(tmp_path, wanted))
    assert "absent: missing recordings/zh/absent.wav" in problems
    assert "absent: missing recordings/zh/absent.txt" in problems
    assert "stale.txt says '旧', the catalogue says '新'" in problems
    assert "wide.wav: 16000 Hz, the PBX wants 8000 Hz" in problems
    assert "quiet.wav: silent" in problems
    assert "broken.wav: not a readable PCM WAV file" in problems
    assert "stray.wav is not in any catalogue" in problems
    assert "ok" not in {p.split(":")[0] for p in mp.check(tmp_path, wanted)}


def test_prompts_yaml_entries_override_pieces(tmp_path: Path) -> None:
    """prompts.yaml wins over a built-in piece of the same name and adds its own prompts."""
    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / "prompts.yaml").write_text(
        "digits/1: 幺\nhotline/welcome: 您好\nsurvey/ask:\n  text: 请评价\n", "utf-8"
    )
    wanted = mp.wanted_prompts(tmp_path)
    assert wanted["digits/1"] == "幺"
    assert wanted["hotline/welcome"] == "您好" and wanted["survey/ask"] == "请评价"
    assert wanted["unit/LZ-DC-01"] == "东关派出所"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("hotline/welcome.wav: 您好\n", "'hotline/welcome.wav': a prompt name"),
        ("../escape: 您好\n", "'../escape': a prompt name"),
        ("hotline/welcome: ''\n", "hotline/welcome: the text must be a non-empty string"),
        ("hotline/welcome: [1, 2]\n", "hotline/welcome: the text must be"),
        ("hotline/welcome: : :\n", "not valid YAML"),
    ],
)
def test_bad_prompts_yaml_is_refused(tmp_path: Path, text: str, reason: str) -> None:
    """A malformed prompts.yaml raises an error naming the file and the entry."""
    path = tmp_path / "prompts.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(mp.PromptError) as info:
        mp.load_prompts_yaml(path)
    assert str(path) in str(info.value) and reason in str(info.value)


def test_unit_codes_that_cannot_name_a_file_are_refused() -> None:
    """A seed unit whose code is not a safe file name is refused with its entry."""
    with pytest.raises(mp.PromptError, match=r"seed\.toml: unit\[0\]: code 'a/\.\./b'"):
        mp.unit_prompts('[[unit]]\ncode = "a/../b"\nname = "甲"\n', "seed.toml")


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("110报警", "幺幺零报警"),
        ("请拨打12345", "请拨打幺二三四五"),
        ("0531-12345", "零五三幺杠幺二三四五"),
        ("12号", "12号"),
        ("您好", "您好"),
    ],
)
def test_long_numbers_are_read_digit_by_digit(text: str, spoken: str) -> None:
    """Runs of three or more digits are spoken one by one with 幺 for 1; short numbers stay."""
    assert mp.spoken_text(text) == spoken


def test_misread_words_are_given_as_pinyin() -> None:
    """Words the dictionary misreads (重新, 处理, 地点 …) reach the synthesiser as pinyin."""
    assert mp.spoken_text("请重新选择。") == "请 chong2 xin1 选择。"
    assert mp.spoken_text("110接处警").split() == ["幺幺零", "jie1", "chu3", "jing3"]
    assert "chu3 li3" in mp.spoken_text("交通事故处理")


def test_fragments_get_short_silences() -> None:
    """Pieces and sentence fragments are spliced tightly; whole sentences get room."""
    assert mp.is_spliced("digits/0", "零")
    assert mp.is_spliced("survey/at", "在")
    assert mp.is_spliced("hotline/case_number", "您的诉求编号是：")
    assert not mp.is_spliced("hotline/goodbye", "感谢您的来电，再见。")


def test_missing_tools_are_named_with_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without espeak-ng or sox the generator says which is missing and how to install it."""
    monkeypatch.setattr(mp.shutil, "which", lambda tool: None)
    with pytest.raises(mp.PromptError, match=r"espeak-ng and sox not found.*apt-get install"):
        mp.require_tools("cmn-latn-pinyin")


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="renders for real only where espeak-ng and sox are installed",
)
def test_real_render_gives_a_pbx_ready_wav(tmp_path: Path) -> None:
    """espeak-ng and sox turn a 20-character text into a 2–6 s 8 kHz mono 16-bit WAV."""
    text = "您好，这里是鲁州市公安局民生警务热线，请讲"
    out = tmp_path / "welcome.wav"
    mp.render(text, out, voice=mp.DEFAULT_VOICE, speed=mp.DEFAULT_SPEED, spliced=False)
    params, rms = _rms(out)
    assert (params.framerate, params.nchannels, params.sampwidth) == (8000, 1, 2)
    assert 2.0 <= params.nframes / 8000 <= 6.0
    assert rms > 100
    copy = tmp_path / "again.wav"
    mp.render(text, copy, voice=mp.DEFAULT_VOICE, speed=mp.DEFAULT_SPEED, spliced=False)
    assert copy.read_bytes() == out.read_bytes(), "rendering is reproducible"


def test_check_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--check`` exits 0 on the committed tree and 1 on a tree missing its recordings."""
    assert mp.main(["--check"]) == 0
    assert mp.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "digits/0: missing recordings/zh/digits/0.wav" in err


def test_generate_command_without_tools_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without espeak-ng the command prints how to install it, exits 2 and writes nothing."""
    monkeypatch.setattr(mp.shutil, "which", lambda tool: None)
    assert mp.main(["--root", str(tmp_path)]) == 2
    assert "apt-get install espeak-ng sox" in capsys.readouterr().err
    assert not (tmp_path / "recordings" / "zh").exists()
