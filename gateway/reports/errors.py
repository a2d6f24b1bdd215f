"""What a report refuses: one line that says why (the command prints it, the web
answers it with 400)."""

from __future__ import annotations

from gateway.errors import GatewayError


class ReportRefused(GatewayError):
    """A report asked for a day, week, range or unit it cannot cover."""


class FontMissing(GatewayError):
    """No CJK font for the PDFs: the message names where it was looked for."""


class OutOfScope(GatewayError):
    """A report of a unit the viewer's role may not see (answered 403)."""
