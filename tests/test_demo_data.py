"""The demo wipes only a data folder it made itself: an operator's store is never lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.demo.commands import MARKER, _prepare


def test_a_foreign_store_is_refused_and_kept(tmp_path: Path) -> None:
    """A folder holding a store without the demo's marker stops the demo, untouched."""
    store = tmp_path / "gateway.sqlite3"
    store.write_bytes(b"operator data")
    with pytest.raises(SystemExit, match="not the demo's"):
        _prepare(tmp_path)
    assert store.read_bytes() == b"operator data"


def test_a_folder_of_other_files_is_refused_and_kept(tmp_path: Path) -> None:
    """Any non-empty folder the demo did not make is refused, even without a store."""
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not the demo's"):
        _prepare(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_empty_folder_is_used(tmp_path: Path) -> None:
    """An existing empty folder is fine."""
    _prepare(tmp_path)
    assert (tmp_path / MARKER).is_file()


def test_the_demos_own_folder_is_renewed(tmp_path: Path) -> None:
    """The previous demo's folder (with the marker) is emptied and marked again."""
    folder = tmp_path / "gateway-data"
    folder.mkdir()
    (folder / MARKER).write_text("made by the demo")
    (folder / "gateway.sqlite3").write_bytes(b"old demo")
    _prepare(folder)
    assert sorted(p.name for p in folder.iterdir()) == [MARKER]


def test_a_new_folder_is_made(tmp_path: Path) -> None:
    """A data folder that does not exist yet is created with the marker."""
    folder = tmp_path / "new" / "gateway-data"
    _prepare(folder)
    assert (folder / MARKER).is_file()
