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


def test_a_pdfs_font_subsetting_does_not_fill_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """fontTools' INFO lines (every glyph kept when a report's font is subset) stay out
    of the log at INFO; its warnings still come through."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    try:
        monkeypatch.setattr(sys, "stderr", out)
        logs.setup("INFO")
        logging.getLogger("fontTools.subset").info("Glyph names: ['.notdef', 'cid00001']")
        logging.getLogger("fontTools.subset").warning("a table could not be subset")
        logging.getLogger("gateway.reports").info("report daily made")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        logging.getLogger("fontTools").setLevel(logging.NOTSET)
    text = out.getvalue()
    assert "Glyph names" not in text
    assert "a table could not be subset" in text and "report daily made" in text
