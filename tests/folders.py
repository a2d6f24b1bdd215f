"""A folder the simulated PBX cannot create files in, for the RECORD FILE failure tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# sysfs refuses new files even to root, who ignores a folder's permission bits.
_SYSFS = Path("/sys/kernel")


def _writable(folder: Path) -> bool:
    probe = folder / f".probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder that exists but where no file can be created: a read-only folder under
    ``tmp_path`` (made writable again by the caller's cleanup), or sysfs when running
    as root. Skips the test when neither refuses writes."""
    folder = tmp_path / "read-only"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o555)
    if not _writable(folder):
        return folder
    folder.chmod(0o755)
    if _SYSFS.is_dir() and not _writable(_SYSFS):
        return _SYSFS
    pytest.skip("no folder here refuses to create files")
