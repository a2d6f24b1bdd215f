"""Logging set-up: lines go to the standard error of the moment, numbers masked."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from gateway import logs


def test_a_replaced_standard_error_gets_the_lines_not_the_closed_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Set up under one stderr that is later closed, logging writes to the stderr of the
    moment, with no '--- Logging error ---' (a command run in-process left one behind)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr(sys, "stderr", first)
        logs.setup("INFO")
        first.close()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("gateway.test").info("call from +8613912345678 logged")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    text = second.getvalue()
    assert "Logging error" not in text
    assert "call from +861****5678 logged" in text
