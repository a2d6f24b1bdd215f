"""The prompt catalogue: every prompt a flow may play, name → Chinese text.

A prompt's name is its file name under ``recordings/zh/`` without extension
(``hotline/welcome``), which is also what ``STREAM FILE`` is given. The flows'
own prompts are listed in ``recordings/prompts.yaml`` (the audio is rendered from
that text); the pieces numbers and dates are said with, and the names of units
and kinds of business, are rendered from other sources and found as
``recordings/zh/<name>.txt``. The catalogue is both; ``prompts.yaml`` wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.ivr.errors import FlowError, Problem
from gateway.ivr.yamlsrc import LineDict, YamlSyntaxError, load_yaml

PROMPT_NAME = re.compile(r"^[a-z0-9_-]+(/[A-Za-z0-9_-]+)+$")


@dataclass(frozen=True)
class PromptCatalogue(Mapping[str, str]):
    """Prompt names and their text; ``source`` is the file it came from."""

    texts: Mapping[str, str]
    source: str = "(built in)"

    def __getitem__(self, name: str) -> str:
        return self.texts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.texts)

    def __len__(self) -> int:
        return len(self.texts)


def parse_catalogue(text: str, source: str) -> PromptCatalogue:
    """Read a catalogue; a malformed one raises :class:`FlowError` naming each bad entry."""
    try:
        raw, duplicates = load_yaml(text)
    except YamlSyntaxError as exc:
        raise FlowError(source, [Problem(source, None, exc.line, exc.reason)]) from None
    if not isinstance(raw, LineDict):
        raise FlowError(source, [Problem(source, None, None, "must map prompt names to text")])
    problems = [Problem(source, None, d.second_line, str(d)) for d in duplicates]
    texts: dict[str, str] = {}
    for name, value in raw.items():
        line = raw.key_lines.get(name)
        if not isinstance(name, str) or not PROMPT_NAME.match(name):
            problems.append(
                Problem(source, None, line, f"prompt name {name!r} must look like 'group/name'")
            )
        elif not isinstance(value, str) or not value.strip():
            problems.append(Problem(source, None, line, f"prompt {name!r} needs its text"))
        else:
            texts[name] = value.strip()
    if problems:
        raise FlowError(source, problems)
    return PromptCatalogue(texts, source)


def recorded_prompts(folder: Path) -> dict[str, str]:
    """Prompts that exist as ``<folder>/<name>.txt`` (with their audio beside them)."""
    texts: dict[str, str] = {}
    if folder.is_dir():
        for txt in sorted(folder.rglob("*.txt")):
            name = txt.relative_to(folder).with_suffix("").as_posix()
            texts[name] = txt.read_text(encoding="utf-8").strip()
    return texts


def load_catalogue(path: Path, recorded: Path | None = None) -> PromptCatalogue:
    """``prompts.yaml`` at ``path`` plus the prompts recorded under ``recorded``
    (default: ``zh/`` beside it). Blocking: call at start-up or in a thread."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = Problem(str(path), None, None, f"cannot read: {exc}")
        raise FlowError(str(path), [problem]) from None
    own = parse_catalogue(text, str(path))
    texts = recorded_prompts(recorded if recorded is not None else path.parent / "zh")
    texts.update(own.texts)
    return PromptCatalogue(texts, str(path))
