"""The site files the gateway runs with, as shipped in the package, and a site folder made of them.

A site folder holds what an operator edits: ``gateway.toml``, the flows
(``flows/*.yaml``) and the voice prompts (``recordings/prompts.yaml`` and
``recordings/zh/``). The package carries the shipped ones as package data
(in a source checkout, ``flows``, ``recordings`` and ``gateway.example.toml`` here
are links to the checkout's own), so an installed gateway can write a site
folder anywhere (``gateway init DIR``) and the demo runs from any folder.
Relative paths in a configuration file are read from the file's folder
(``gateway.config``), so ``gateway -c DIR/gateway.toml …`` works from anywhere.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from gateway.errors import GatewayError

SHIPPED = Path(__file__).parent
SHIPPED_FLOWS = SHIPPED / "flows"
SHIPPED_RECORDINGS = SHIPPED / "recordings"
SHIPPED_PROMPTS = SHIPPED_RECORDINGS / "prompts.yaml"
SHIPPED_EXAMPLE = SHIPPED / "gateway.example.toml"

CONFIG_NAME = "gateway.toml"
#: What a site folder is made of, relative to it; ``gateway init`` refuses a folder
#: that already holds any of them.
SITE_ENTRIES = (CONFIG_NAME, "flows", "recordings")


class SiteError(GatewayError):
    """A site folder cannot be written; the message says where and why."""


def shipped_files() -> Iterator[tuple[Path, Path]]:
    """Each shipped site file and where it goes in a site folder (gateway.toml last)."""
    for flow in sorted(SHIPPED_FLOWS.glob("*.yaml")):
        yield flow, Path("flows") / flow.name
    yield SHIPPED_PROMPTS, Path("recordings") / SHIPPED_PROMPTS.name
    zh = SHIPPED_RECORDINGS / "zh"
    for prompt in sorted(zh.rglob("*")):
        if prompt.suffix in (".wav", ".txt") and prompt.is_file():
            yield prompt, Path("recordings") / "zh" / prompt.relative_to(zh)
    yield SHIPPED_EXAMPLE, Path(CONFIG_NAME)


def init_site(target: Path) -> list[Path]:
    """Write a site folder at ``target`` from the shipped files; return what was written.

    ``target`` may exist (empty, or holding other files) but must hold none of
    :data:`SITE_ENTRIES`: nothing is ever overwritten. Blocking: run in a thread.
    """
    if target.exists() and not target.is_dir():
        raise SiteError(f"{target} exists and is not a folder")
    taken = [name for name in SITE_ENTRIES if (target / name).exists()]
    if taken:
        raise SiteError(
            f"{target} already holds {', '.join(taken)}; nothing written "
            "(choose an empty folder, or move them away first)"
        )
    files = list(shipped_files())
    missing = [str(source) for source, _ in files if not source.is_file()]
    if missing or not any(dest.parts[0] == "flows" for _, dest in files):
        raise SiteError(f"the installed gateway lacks its site files ({SHIPPED}); reinstall it")
    written: list[Path] = []
    try:
        for source, dest in files:
            path = target / dest
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, path)
            written.append(path)
    except OSError as exc:
        raise SiteError(f"cannot write {target}: {exc.strerror or exc}") from None
    return written
