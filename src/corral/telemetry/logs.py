"""Per-function log files: everything a function printed plus START/END/REPORT lines.

One append-only file per function under `<data-dir>/logs/<name>.log`. Writes are buffered
and flushed on a short timer, so the invoke path makes no write syscall of its own;
readers that follow a log wait on an event that each flush sets.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import BinaryIO

FLUSH_DELAY_S = 0.05


class _Log:
    __slots__ = ("changed", "file", "pending")

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.pending = False
        self.changed = asyncio.Event()


class FunctionLogs:
    """Appends to and reads from function logs. Use from the event loop thread only."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._logs: dict[str, _Log] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        self._closing = False

    def path(self, function_name: str) -> Path:
        return self.root / f"{function_name}.log"

    def _log(self, function_name: str) -> _Log:
        log = self._logs.get(function_name)
        if log is None:
            log = _Log(open(self.path(function_name), "ab", buffering=256 * 1024))  # noqa: SIM115
            self._logs[function_name] = log
        return log

    def append(self, function_name: str, data: bytes) -> None:
        """Queue `data` for the function's log; it reaches the file within FLUSH_DELAY_S."""
        log = self._log(function_name)
        log.file.write(data)
        log.pending = True
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(FLUSH_DELAY_S, self.flush)

    def flush(self) -> None:
        self._flush_handle = None
        for log in self._logs.values():
            if log.pending:
                log.pending = False
                log.file.flush()
                log.changed.set()
                log.changed = asyncio.Event()

    async def read(self, function_name: str, offset: int, wait_s: float = 0) -> tuple[bytes, int]:
        """Bytes of the log from `offset`, and the offset after them.

        With `wait_s`, waits up to that long for new output when there is none yet.
        """
        data = self._read_from(function_name, offset)
        if not data and wait_s > 0 and not self._closing:
            changed = self._log(function_name).changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait_s)
            data = self._read_from(function_name, offset)
        return data, offset + len(data)

    def _read_from(self, function_name: str, offset: int, limit: int = 1 << 20) -> bytes:
        try:
            with open(self.path(function_name), "rb") as f:
                f.seek(offset)
                return f.read(limit)
        except FileNotFoundError:
            return b""

    def release_readers(self) -> None:
        """End every long-poll now and refuse to start new ones (shutdown has begun)."""
        self._closing = True
        for log in self._logs.values():
            log.changed.set()

    def close(self) -> None:
        self.flush()
        for log in self._logs.values():
            log.file.close()
        self._logs.clear()
        if self._flush_handle:
            self._flush_handle.cancel()
            self._flush_handle = None
