"""Function logs: log groups (`/aws/lambda/NAME`), one stream per environment, events.

Writes are buffered in memory and stored on a short timer (FLUSH_DELAY_S), so the invoke
path makes no write syscall of its own: an environment hands over its output and platform
lines with a timestamp, and the flush stores each stream's new whole lines as one chunk
(`corral.store.logs`; lines become events when read). Protection against a chatty function:
- a rate guard per environment (`LogLimits.stream_bytes_per_s` of function output per
  second; platform lines are never dropped): the excess is dropped and one line (in JSON
  format a `platform.logsDropped` record) says how much;
- lines are cut at CloudWatch's 256 KB event limit;
- a byte cap per log group: past it, the oldest events are dropped; and a cap on all
  groups together, past which the server's oldest events go, whatever their group;
- retention (PutRetentionPolicy) applied by `sweep`, which the server runs periodically.
Readers that follow a function's log (`read`) wait on an event that each flush sets.
Use from the event loop thread only; queries (`query`, `read`) run in worker threads, each
with its own read-only connection, so scanning megabytes of events never holds the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from corral.model import logs as model
from corral.model.report import logs_dropped_record
from corral.store.logs import LogDatabase, LogReader, LogReads, segment, segments_time_range

_time = time.time
log = logging.getLogger("corral.logs")

FLUSH_DELAY_S = 0.05
CHECKPOINT_BYTES = 4 * 1024 * 1024  # written to the WAL before a checkpoint is due
READ_LIMIT_BYTES = 1 << 20
QUERY_THREADS = 2
DAY_MS = 86_400_000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LogLimits:
    group_max_bytes: int = 100 * 1024 * 1024
    stream_bytes_per_s: int = 2 * 1024 * 1024
    total_max_bytes: int = 1024 * 1024 * 1024


class LogStream:
    """One environment's stream; created with `FunctionLogs.open_stream`."""

    __slots__ = (
        "__weakref__",
        "carry",
        "carry_ms",
        "carry_seen",
        "cutting",
        "dropped_bytes",
        "dropped_lines",
        "dropping",
        "function",
        "group",
        "json_format",
        "line_bytes",
        "line_open",
        "min_level",
        "name",
        "pending",
        "stream_id",
        "window_bytes",
        "window_start",
    )

    def __init__(
        self, function: str, group: str, name: str, json_format: bool, min_level: int = 0
    ) -> None:
        self.function = function
        self.group = group
        self.name = name
        self.json_format = json_format
        self.min_level = min_level  # ApplicationLogLevel's rank (model.level_rank); 0: all
        self.pending: list[tuple[int, bytes, bool]] = []  # ms, data, is function output
        self.carry = b""  # output after its last newline, not an event yet
        self.carry_ms = 0
        self.carry_seen = False
        self.cutting = False  # the rest of a line cut at EVENT_MAX_BYTES is being dropped
        self.stream_id: int | None = None
        self.window_start = 0.0
        self.window_bytes = 0
        self.dropped_bytes = 0
        self.dropped_lines = 0
        self.dropping = False  # the rest of a dropped line is being dropped
        self.line_open = False  # the last output accepted ended inside a line
        self.line_bytes = 0  # of that line, accepted so far


class FunctionLogs:
    """The log store of one server: writer (buffered), caps, retention, follow-readers."""

    def __init__(self, root: Path, limits: LogLimits | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.db = LogDatabase(root / "logs.db")
        self.limits = limits or LogLimits()
        self._dirty: dict[int, LogStream] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        self._closing = False
        self._changed: dict[str, asyncio.Event] = {}  # by function
        self._closed = asyncio.Event()
        self._open: weakref.WeakSet[LogStream] = weakref.WeakSet()
        self._group_bytes = self.db.group_sizes()
        self._since_checkpoint = 0
        self._checkpointing: asyncio.Future[None] | None = None
        self._flushes = 0  # flushes that stored something
        self._flushes_at_maintain = -1
        self._queries = concurrent.futures.ThreadPoolExecutor(
            QUERY_THREADS, thread_name_prefix="corral-logs-query"
        )
        self._local = threading.local()
        self._readers: list[LogReader] = []

    # ---- reading -------------------------------------------------------------------

    async def query(self, call: Callable[[LogReads], T]) -> T:
        """`call(reader)` in a worker thread, after storing what is buffered, so it sees
        every line written so far."""
        self.flush()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._queries, self._run_query, call)

    def _run_query(self, call: Callable[[LogReads], T]) -> T:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = self.db.reader()
            self._readers.append(reader)
        return call(reader)

    # ---- writing -------------------------------------------------------------------

    def open_stream(
        self,
        function: str,
        group: str,
        name: str,
        json_format: bool = False,
        application_log_level: str | None = None,
    ) -> LogStream:
        """A stream for one environment. With `application_log_level` (JSON format),
        output lines that are JSON objects with a lower "level" are not stored."""
        min_level = model.level_rank(application_log_level) if application_log_level else 0
        stream = LogStream(function, group, name, json_format, min_level)
        self._open.add(stream)
        return stream

    def output(self, stream: LogStream, data: bytes) -> None:
        """The function's own output (any bytes; lines are split at flush), rate-guarded
        by whole lines: a line that was begun is finished (up to the event size limit)
        and a line that is dropped is dropped whole, so no fragment is stored; each
        dropped line is counted once."""
        now = time.monotonic()
        if now - stream.window_start >= 1.0:
            if stream.dropped_bytes:
                self._report_dropped(stream)
            stream.window_start = now
            stream.window_bytes = 0
        kept = b""
        if stream.dropping or stream.line_open:  # the rest of a line: drop it, or finish it
            end = data.find(b"\n") + 1
            rest = data[:end] if end else data
            if stream.dropping:
                stream.dropped_bytes += len(rest)
            elif stream.line_bytes + len(rest) > model.EVENT_MAX_BYTES:
                # Cut at CloudWatch's event limit, as flush would: the rest goes, unreported.
                kept = rest[: model.EVENT_MAX_BYTES - stream.line_bytes] + b"\n"
                stream.dropping, stream.line_open = True, False
            else:
                kept = rest
                stream.line_bytes += len(rest)
            data = data[len(rest) :]
            if end:
                stream.dropping = stream.line_open = False
                stream.line_bytes = 0
        room = self.limits.stream_bytes_per_s - stream.window_bytes - len(kept)
        if data and len(data) > room:
            cut = data.rfind(b"\n", 0, max(room, 0)) + 1
            dropped, data = data[cut:], data[:cut]
            stream.dropped_bytes += len(dropped)
            stream.dropped_lines += dropped.count(b"\n") + (not dropped.endswith(b"\n"))
            stream.dropping = not dropped.endswith(b"\n")
        elif data and not data.endswith(b"\n"):
            stream.line_open = True
            stream.line_bytes = len(data) - data.rfind(b"\n") - 1
        data = kept + data
        stream.window_bytes += len(data)
        if data:
            stream.pending.append((int(_time() * 1000), data, True))
        self._mark(stream)

    def platform(self, stream: LogStream, lines: bytes) -> None:
        """Platform lines (START; END and REPORT; ...), each ending in a newline and each
        one event; never dropped. Output dropped before them is reported first, so the
        notice stays with the invocation whose output it was."""
        if stream.dropped_bytes:
            self._report_dropped(stream)
        stream.pending.append((int(_time() * 1000), lines, False))
        self._mark(stream)

    def _mark(self, stream: LogStream) -> None:
        self._dirty[id(stream)] = stream
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(FLUSH_DELAY_S, self.flush)

    def flush(self) -> None:
        """Store every buffered event now."""
        self._flush_handle = None
        dirty, self._dirty = self._dirty, {}
        ingestion_ms = model.now_ms()
        rows = []
        for stream in dirty.values():
            segments = self._segments(stream, ingestion_ms)
            if stream.dropped_bytes or stream.carry:
                self._dirty[id(stream)] = stream  # report or finish them on a later flush
            if not segments:
                continue
            if stream.stream_id is None:
                stream.stream_id = self.db.stream_id(
                    stream.group, stream.name, stream.function, ingestion_ms
                )
            data = b"".join(segments)
            first, last = segments_time_range(segments)
            rows.append((stream.stream_id, stream.group, first, last, ingestion_ms, data))
            self._group_bytes[stream.group] = self._group_bytes.get(stream.group, 0) + len(data)
        if rows:
            self._flushes += 1
            self.db.add_chunks(rows)
            self._since_checkpoint += sum(len(row[5]) for row in rows)
            if self._since_checkpoint >= CHECKPOINT_BYTES:
                self._checkpoint()
            for group in {row[1] for row in rows}:
                self._enforce_cap(group)
            self._enforce_total_cap()
            for function in {s.function for s in dirty.values()}:
                changed = self._changed.pop(function, None)
                if changed is not None:
                    changed.set()
        if self._dirty and self._flush_handle is None and not self._closing:
            self._flush_handle = asyncio.get_running_loop().call_later(FLUSH_DELAY_S, self.flush)

    def _segments(self, stream: LogStream, ingestion_ms: int) -> list[bytes]:
        """The stream's pending output as stored segments (`corral.store.logs`): whole
        lines only; a line's start time is its timestamp. No per-line work here."""
        segments: list[bytes] = []
        pending, stream.pending = stream.pending, []
        for ms, data, is_output in pending:
            if not is_output:
                self._end_carry(stream, segments)
                stream.cutting = False
                segments.append(segment(ms, data))
                continue
            if stream.cutting:
                end = data.find(b"\n")
                stream.cutting = end < 0
                data = b"" if end < 0 else data[end + 1 :]
            at = stream.carry_ms if stream.carry else ms
            data = stream.carry + data
            cut = data.rfind(b"\n") + 1
            if cut:
                lines = data[:cut]
                lines = _level_filtered(stream, lines)
                if lines:
                    segments.append(segment(at, lines))
            stream.carry, stream.carry_ms = data[cut:], (ms if cut else at)
            stream.carry_seen = False
            if len(stream.carry) > model.EVENT_MAX_BYTES:
                stream.carry = stream.carry[: model.EVENT_MAX_BYTES] + b"\n"
                stream.cutting = True
                self._end_carry(stream, segments)
        if stream.carry and stream.carry_seen:  # no newline came for a whole flush
            self._end_carry(stream, segments)
        stream.carry_seen = bool(stream.carry)
        if stream.dropped_bytes and time.monotonic() - stream.window_start >= 1.0:
            line = self._dropped_line(stream, ingestion_ms).encode() + b"\n"
            segments.append(segment(ingestion_ms, line))
            stream.dropped_bytes = stream.dropped_lines = 0
        return segments

    def _report_dropped(self, stream: LogStream) -> None:
        at_ms = model.now_ms()
        line = self._dropped_line(stream, at_ms).encode() + b"\n"
        stream.pending.append((at_ms, line, False))
        stream.dropped_bytes = stream.dropped_lines = 0

    @staticmethod
    def _end_carry(stream: LogStream, segments: list[bytes]) -> None:
        if stream.carry:
            carry = stream.carry if stream.carry.endswith(b"\n") else stream.carry + b"\n"
            carry = _level_filtered(stream, carry)
            if carry:
                segments.append(segment(stream.carry_ms, carry))
            stream.carry = b""

    def _dropped_line(self, stream: LogStream, at_ms: int) -> str:
        reason = (
            f"Function output over {self.limits.stream_bytes_per_s} bytes per second was dropped"
        )
        if stream.json_format:
            record = logs_dropped_record(
                model.iso_ms(at_ms), stream.dropped_lines, stream.dropped_bytes, reason
            )
            return record.decode().rstrip("\n")
        return f"[Corral] {reason}: {stream.dropped_lines} line(s), {stream.dropped_bytes} bytes"

    def _checkpoint(self, truncate: bool = False) -> asyncio.Future[None] | None:
        """Start a WAL checkpoint in a worker thread unless one is running."""
        if self._checkpointing is not None and not self._checkpointing.done():
            return None
        self._since_checkpoint = 0
        loop = asyncio.get_running_loop()
        self._checkpointing = loop.run_in_executor(None, self.db.checkpoint, truncate)
        self._checkpointing.add_done_callback(_log_failure)
        return self._checkpointing

    def _enforce_cap(self, group: str) -> None:
        excess = self._group_bytes.get(group, 0) - self.limits.group_max_bytes
        if excess > 0:
            # A tenth more than needed, so a group at its cap is not trimmed at every flush.
            freed = self.db.drop_oldest(group, excess + self.limits.group_max_bytes // 10)
            self._group_bytes[group] -= freed

    def _enforce_total_cap(self) -> None:
        excess = sum(self._group_bytes.values()) - self.limits.total_max_bytes
        if excess > 0:
            freed = self.db.drop_oldest_anywhere(excess + self.limits.total_max_bytes // 10)
            for group, size in freed.items():
                self._group_bytes[group] = self._group_bytes.get(group, 0) - size

    # ---- the group life cycle ------------------------------------------------------

    def delete_group(self, group: str) -> bool:
        """DeleteLogGroup: False if there is no such group. Environments that write on
        create it anew, as Lambda does."""
        if not self.db.delete_group(group):
            return False
        self._group_bytes.pop(group, None)
        self._forget_stream_ids(group)
        return True

    def _forget_stream_ids(self, group: str) -> None:
        for stream in self._open:
            if stream.group == group:
                stream.stream_id = None

    def sweep(self, now_ms: int | None = None) -> int:
        """Apply every group's retention. Returns the bytes freed."""
        now_ms = model.now_ms() if now_ms is None else now_ms
        freed = 0
        for group, days in self.db.retained_groups():
            gone = self.db.expire(group, now_ms - days * DAY_MS)
            if gone:
                self._group_bytes[group] = self._group_bytes.get(group, 0) - gone
                self._forget_stream_ids(group)  # streams left empty may have been deleted
            freed += gone
        return freed

    def maintain(self) -> asyncio.Future[None] | None:
        """Apply retention and checkpoint the WAL; if nothing was written since the last
        time, truncate the WAL too (an idle log gives its WAL's disk space back)."""
        self.sweep()
        idle = self._flushes == self._flushes_at_maintain
        self._flushes_at_maintain = self._flushes
        return self._checkpoint(truncate=idle)

    async def run_sweeper(self, interval_s: float) -> None:
        """Apply retention every `interval_s`, and checkpoint the WAL, until shutdown."""
        while not self._closing:
            self.maintain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), interval_s)

    # ---- following a function's log (corral logs, /corral/v1/functions/NAME/logs) ----

    async def read(self, function_name: str, offset: int, wait_s: float = 0) -> tuple[bytes, int]:
        """The function's log lines after cursor `offset` (0: from the start) as text, and
        the cursor after them. With `wait_s`, waits up to that long for new lines."""
        data, next_offset = await self._read_from(function_name, offset)
        if not data and wait_s > 0 and not self._closing:
            changed = self._changed.get(function_name)
            if changed is None:
                changed = self._changed[function_name] = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait_s)
            data, next_offset = await self._read_from(function_name, offset)
        return data, next_offset

    async def _read_from(self, function_name: str, offset: int) -> tuple[bytes, int]:
        return await self.query(lambda db: _function_text(db, function_name, offset))

    def release_readers(self) -> None:
        """End every long-poll now and refuse to start new ones (shutdown has begun)."""
        self._closing = True
        for changed in self._changed.values():
            changed.set()
        self._closed.set()

    def close(self) -> None:
        """Store what is buffered and close the database (after the loop's last flush)."""
        self._closing = True
        if self._flush_handle:
            self._flush_handle.cancel()
            self._flush_handle = None
        with contextlib.suppress(RuntimeError):
            self._final_flush()
        self._queries.shutdown(wait=True)
        for reader in self._readers:
            reader.close()
        self.db.close()

    def _final_flush(self) -> None:
        for stream in list(self._dirty.values()):
            stream.carry_seen = True  # nothing more will come: store partial lines too
        self.flush()
        self._flush_handle = None


def _level_filtered(stream: LogStream, lines: bytes) -> bytes:
    """Whole lines of function output without those below ApplicationLogLevel."""
    if model.level_filter_needed(lines, stream.min_level):
        return model.drop_below_level(lines, stream.min_level)
    return lines


def _function_text(db: LogReads, function_name: str, offset: int) -> tuple[bytes, int]:
    """The function's log lines after chunk `offset` as text, and the cursor after them."""
    chunks = db.function_chunks(function_name, offset, READ_LIMIT_BYTES)
    if not chunks:
        return b"", offset
    text = "".join(message + "\n" for chunk in chunks for _, message in chunk.events())
    return text.encode(), chunks[-1].id


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("log checkpoint failed", exc_info=future.exception())
