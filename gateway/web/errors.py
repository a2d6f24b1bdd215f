"""HTTP errors of the gateway's web side: a status, a stable error id, details."""

from __future__ import annotations

from typing import Any

from gateway.errors import GatewayError


class ApiError(GatewayError):
    """Answered as ``{"error": error_id, "message": ..., "details": {...}}`` with ``status``."""

    def __init__(
        self,
        status: int,
        error_id: str,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message
        self.details = details or {}
        self.headers = headers or {}
