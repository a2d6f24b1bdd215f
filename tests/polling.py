"""Waiting in tests for something the running system will do, without sleeping blind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def until(check: Callable[[], object], seconds: float = 20.0, every: float = 0.02) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; return it.

    Raises TimeoutError after ``seconds``."""
    async with asyncio.timeout(seconds):
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(every)
