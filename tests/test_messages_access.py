"""`run --check` on the PBX's host: can Asterisk's user write callers' voice messages?

The PBX's user here is a uid that is not this process's (Asterisk runs as its own
user); folders are made with explicit modes, so the tests need no root and no chown.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from gateway import config as config_module
from gateway.run import _check_messages_folder
from gateway.site.access import write_problem

PBX_UID = 65534 if os.geteuid() != 65534 else 65533
DAY = ("2026", "11", "30")


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder under the system's temporary folder that others may enter (pytest's own
    temporary folders are private to this user, which the checks would rightly name)."""
    folder = Path(tempfile.mkdtemp(prefix="gateway-access-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def folder_with(path: Path, mode: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    return path


def problem(folder: Path, *, groups: set[int] | None = None, umask: int = 0o022) -> str | None:
    """What the PBX (not this user; in ``groups``) would meet, the gateway being this process."""
    return write_problem(
        folder,
        DAY,
        PBX_UID,
        groups if groups is not None else {PBX_UID},
        euid=os.geteuid(),
        egid=os.getegid(),
        umask=umask,
    )


def test_a_folder_only_the_gateway_can_write_is_caught(tmp_path: Path) -> None:
    """Owned by the gateway, 0755: the PBX cannot write the day folder the gateway makes."""
    messages = folder_with(tmp_path / "messages", 0o755)
    assert problem(messages) == (
        f"asterisk cannot write in {messages}/2026/11/30, made by the gateway with mode 755"
    )


def test_a_folder_the_pbx_cannot_enter_is_caught(tmp_path: Path) -> None:
    """A closed folder on the way (0700) is named as the one the PBX cannot enter."""
    data = folder_with(tmp_path / "data", 0o700)
    assert problem(data / "messages") == f"asterisk cannot enter {data} (no search permission)"


def test_a_shared_group_folder_with_set_group_id_passes(tmp_path: Path) -> None:
    """Group-writable and set-group-ID, umask 002: the PBX in that group writes every day's folder;
    without set-group-ID the day folders take the gateway's own group and it cannot."""
    gid = os.getegid()
    messages = folder_with(tmp_path / "messages", 0o2775)
    assert problem(messages, groups={PBX_UID, gid}, umask=0o002) is None
    plain = folder_with(tmp_path / "plain", 0o775)
    assert problem(plain, groups={PBX_UID, gid}, umask=0o002) is None  # same group by luck
    assert problem(plain, groups={PBX_UID}, umask=0o002) is not None
    # With umask 022 even set-group-ID does not help: the day folders are 2755.
    assert "mode 2755" in str(problem(messages, groups={PBX_UID, gid}, umask=0o022))


def test_existing_day_folders_are_judged_as_they_are(tmp_path: Path) -> None:
    """Today's folder, already there and closed, is caught even under an open parent."""
    messages = folder_with(tmp_path / "messages", 0o777)
    for level in range(1, 4):
        folder_with(messages.joinpath(*DAY[:level]), 0o777)
    assert problem(messages) is None
    messages.joinpath(*DAY).chmod(0o755)
    assert problem(messages) == f"asterisk cannot write in {messages}/2026/11/30"


def _config(data_dir: Path) -> config_module.Config:
    return config_module.load(None, env={}, overrides=[f"gateway.data_dir={data_dir}"])


def test_run_check_fails_on_a_messages_folder_the_pbx_cannot_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The check part of `run` logs the problem as an error and reports failure, or passes."""
    day = date(2026, 11, 30)
    messages = folder_with(tmp_path / "data" / "messages", 0o777)
    for level in range(1, 4):
        folder_with(messages.joinpath(*DAY[:level]), 0o777)
    config = _config(tmp_path / "data")
    with caplog.at_level(logging.INFO, logger="gateway.run"):
        assert _check_messages_folder(config, user_name="nobody", today=day)
        messages.joinpath(*DAY).chmod(0o755)
        assert not _check_messages_folder(config, user_name="nobody", today=day)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"messages: nobody cannot write in {messages}/2026/11/30; "
        "callers' voice messages would be lost"
    ]


def test_without_the_pbx_user_here_the_folder_is_not_judged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On a host without the PBX's user the check passes, saying that it could not look."""
    config = _config(tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="gateway.run"):
        assert _check_messages_folder(config, user_name="no-such-pbx-user")
    assert "is not checked" in caplog.text
