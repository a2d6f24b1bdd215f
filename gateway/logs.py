"""Logging set-up: one format, and phone numbers masked in every line.

Secrets are kept out by type (:class:`gateway.config.Secret` never shows its
value); phone numbers are caught here, since they travel inside AMI frames and
texts: any run of 7+ digits (optionally after ``+``) keeps only its ends.
"""

from __future__ import annotations

import logging
import re

_NUMBER = re.compile(r"(?<![\w.])(\+?\d{3})\d{4,}(\d{4})(?![\w.])")


def mask_numbers(text: str) -> str:
    return _NUMBER.sub(r"\1****\2", text)


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_numbers(super().format(record))


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
