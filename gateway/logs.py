"""Logging set-up: one format, and phone numbers masked in every line.

Secrets are kept out by type (:class:`gateway.config.Secret` never shows its
value); phone numbers are caught here, since they travel inside AMI frames and
texts: any run of 7+ digits (optionally after ``+``) keeps only its ends.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import TextIO

_NUMBER = re.compile(r"(?<![\w.])(\+?\d{3})\d{4,}(\d{4})(?![\w.])")


def mask_numbers(text: str) -> str:
    return _NUMBER.sub(r"\1****\2", text)


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_numbers(super().format(record))


FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class StandardErrorHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged, not the stream it was
    when logging was set up: that one may have been replaced and closed since (a command
    run in-process, by a test or an embedding program), and writing there fails."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


# Libraries that narrate their work at INFO (fontTools lists every glyph it keeps when
# a PDF's font is subset): only their warnings are the operator's business.
QUIET_LIBRARIES = ("fontTools",)


def setup(level: str = "INFO") -> None:
    """Log to standard error, numbers masked."""
    handler = StandardErrorHandler()
    handler.setFormatter(MaskingFormatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    _quiet_libraries()


def _quiet_libraries() -> None:
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def to_file(path: Path, level: str = "INFO") -> None:
    """Log to ``path`` instead, keeping only errors on standard error (the demo's
    console shows its own progress)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    to_file_handler = logging.FileHandler(path, encoding="utf-8")
    to_file_handler.setFormatter(MaskingFormatter(FORMAT))
    console = StandardErrorHandler()
    console.setLevel(logging.ERROR)
    console.setFormatter(MaskingFormatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [to_file_handler, console]
    root.setLevel(level.upper())
    _quiet_libraries()
