"""One gateway per store: an exclusive lock on a file beside the store.

    with single_gateway(config):   # raises StoreInUse if another process holds it
        ...                        # serve

Only a SQLite store has it: on PostgreSQL several gateways may serve one database.

The lock is ``flock(LOCK_EX | LOCK_NB)`` on ``<store>.lock``, held on an open file
for as long as the process serves. The kernel releases it when the file is closed,
which any exit does, ``kill -9`` included: a crashed gateway never leaves a stale
lock behind, and nothing has to guess from a pid whether its holder still lives (the
pid written into the file is only there to name the holder in the message).

Who takes it: everything that serves or runs the outbox (``gateway run``,
``gateway sms run``, ``gateway sms send --wait`` when no gateway is running).
Commands that only read, or only queue a row, do not. A process that holds it knows
every other outbox worker on the store is dead: :func:`held_here` lets the outbox
reclaim their rows at start instead of waiting for their leases to expire.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from gateway.config import Config
from gateway.errors import GatewayError

_HELD: set[Path] = set()  # stores whose lock this process holds


class StoreInUse(GatewayError):
    """Another process serves this store; the message names it and what to do."""


def lock_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".lock")


def held_here(store_path: Path | None) -> bool:
    """Whether this process holds the lock of ``store_path`` (None, a store with no file
    such as PostgreSQL's: never; other processes may serve it)."""
    return store_path is not None and store_path.resolve() in _HELD


def single_gateway(config: Config) -> StoreLock | contextlib.nullcontext[None]:
    """The lock of the configured store on SQLite; on PostgreSQL, where several gateways
    may serve one database, nothing to take."""
    return StoreLock(config.store_path) if config.on_sqlite else contextlib.nullcontext()


class StoreLock:
    """The exclusive lock of one store (see the module docstring)."""

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self.path = lock_path(store_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`StoreInUse` at once (never waits)."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: already held")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise StoreInUse(
                f"store {self.store_path} is in use by another gateway"
                + (f" (pid {holder})" if holder.isdigit() else "")
                + ": one gateway per store; stop it first (commands that only read may run"
                " beside it)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        _HELD.add(self.store_path.resolve())

    def release(self) -> None:
        if self._fd is None:
            return
        _HELD.discard(self.store_path.resolve())
        fd, self._fd = self._fd, None
        # The file stays: removing it would let a third process lock a new file
        # while a second one still waits on the old one's descriptor.
        os.ftruncate(fd, 0)
        os.close(fd)  # closing releases the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
