"""Log groups, streams and events on disk: SQLite in its own file (`logs.db`).

Events are stored in chunks: one row per stream per flush, holding that flush's lines as
segments `b"<timestamp ms> <length>\\n" + <length bytes of whole lines>`, the lines of a
segment sharing its timestamp; a chunk is parsed into events (one per non-empty line,
cut at EVENT_MAX_BYTES) only when read, so storing costs no per-line work. The invoke path
never touches this; the buffered writer in `corral.telemetry.logs` inserts a few chunks
per flush, and a chunk is also the unit that caps and retention delete. Stored bytes are
counted per group and per stream. `LogDatabase` (the writer) is used from the event loop
thread only, with short bounded calls; queries that scan events (up to megabytes) read
through a `LogReader` of their own, a read-only connection used from a worker thread
(WAL lets it read while the loop writes).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from corral.model.logs import split_lines

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_groups (
    name TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    retention_days INTEGER,
    stored_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS log_streams (
    id INTEGER PRIMARY KEY,
    group_name TEXT NOT NULL,
    name TEXT NOT NULL,
    function TEXT,
    created_ms INTEGER NOT NULL,
    first_event_ms INTEGER,
    last_event_ms INTEGER,
    last_ingestion_ms INTEGER,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    UNIQUE (group_name, name)
);
CREATE INDEX IF NOT EXISTS log_streams_function ON log_streams (function);
CREATE TABLE IF NOT EXISTS log_chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id INTEGER NOT NULL,
    group_name TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    ingestion_ms INTEGER NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_chunks_stream ON log_chunks (stream_id, id);
CREATE INDEX IF NOT EXISTS log_chunks_group_time ON log_chunks (group_name, first_ms);
CREATE INDEX IF NOT EXISTS log_chunks_group_end ON log_chunks (group_name, last_ms);
"""


@dataclass(frozen=True, slots=True)
class GroupRow:
    name: str
    created_ms: int
    retention_days: int | None
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class StreamRow:
    id: int
    group_name: str
    name: str
    created_ms: int
    first_event_ms: int | None
    last_event_ms: int | None
    last_ingestion_ms: int | None
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class Chunk:
    id: int
    stream_id: int
    first_ms: int
    last_ms: int
    ingestion_ms: int
    data: bytes

    def events(self) -> list[tuple[int, str]]:
        """[(timestamp_ms, message), ...] in the order they were written."""
        return parse_segments(self.data)


def segment(timestamp_ms: int, lines: bytes) -> bytes:
    """One stored segment: `lines` (whole lines, ending in a newline) at one timestamp."""
    return b"%d %d\n" % (timestamp_ms, len(lines)) + lines


def segments_time_range(segments: list[bytes]) -> tuple[int, int]:
    """The first and last timestamp of `segments` (as `segment` made them, in time order)."""
    first, last = segments[0], segments[-1]
    return int(first[: first.index(b" ")]), int(last[: last.index(b" ")])


def parse_segments(data: bytes) -> list[tuple[int, str]]:
    events = []
    pos, size = 0, len(data)
    while pos < size:
        eol = data.index(b"\n", pos)
        stamp, length = data[pos:eol].split(b" ")
        start, pos = eol + 1, eol + 1 + int(length)
        ts = int(stamp)
        messages, _ = split_lines(data[start:pos])
        events.extend((ts, message) for message in messages)
    return events


_GROUP_COLUMNS = "name, created_ms, retention_days, stored_bytes"
_STREAM_COLUMNS = (
    "id, group_name, name, created_ms, first_event_ms, last_event_ms, last_ingestion_ms, "
    "stored_bytes"
)
_CHUNK_COLUMNS = "id, stream_id, first_ms, last_ms, ingestion_ms, data"


class LogReads:
    """The queries, on connection `_db`: shared by the writer and the readers."""

    _db: sqlite3.Connection

    def group(self, name: str) -> GroupRow | None:
        row = self._db.execute(
            f"SELECT {_GROUP_COLUMNS} FROM log_groups WHERE name = ?", (name,)
        ).fetchone()
        return GroupRow(*row) if row else None

    def groups(self, prefix: str = "", contains: str = "") -> list[GroupRow]:
        rows = self._db.execute(
            f"SELECT {_GROUP_COLUMNS} FROM log_groups WHERE substr(name, 1, ?) = ? "
            "AND instr(lower(name), lower(?)) > 0 ORDER BY name",
            (len(prefix), prefix, contains),
        ).fetchall()
        return [GroupRow(*row) for row in rows]

    def stream(self, group: str, name: str) -> StreamRow | None:
        row = self._db.execute(
            f"SELECT {_STREAM_COLUMNS} FROM log_streams WHERE group_name = ? AND name = ?",
            (group, name),
        ).fetchone()
        return StreamRow(*row) if row else None

    def streams(self, group: str, prefix: str = "") -> list[StreamRow]:
        rows = self._db.execute(
            f"SELECT {_STREAM_COLUMNS} FROM log_streams WHERE group_name = ? "
            "AND substr(name, 1, ?) = ? ORDER BY name",
            (group, len(prefix), prefix),
        ).fetchall()
        return [StreamRow(*row) for row in rows]

    def stream_chunks(
        self,
        stream_id: int,
        ids: tuple[int, int],
        time_range: tuple[int, int] = (0, 1 << 62),
        newest_first: bool = False,
    ):
        """Chunks of one stream with ids[0] < id < ids[1] that may hold events in
        [time_range[0], time_range[1]), in id order or reversed."""
        order = "DESC" if newest_first else "ASC"
        return self._chunks(
            f"SELECT {_CHUNK_COLUMNS} FROM log_chunks WHERE stream_id = ? AND id > ? AND id < ? "
            f"AND last_ms >= ? AND first_ms < ? ORDER BY id {order}",
            (stream_id, *ids, *time_range),
        )

    def group_chunks(self, group: str, from_ms: int, to_ms: int, stream_ids: list[int] | None):
        """Chunks of a group that may hold events in [from_ms, to_ms], by first event time."""
        where = "group_name = ? AND last_ms >= ? AND first_ms <= ?"
        params: list = [group, from_ms, to_ms]
        if stream_ids is not None:
            where += f" AND stream_id IN ({', '.join('?' * len(stream_ids))})"
            params += stream_ids
        return self._chunks(
            f"SELECT {_CHUNK_COLUMNS} FROM log_chunks WHERE {where} ORDER BY first_ms, id", params
        )

    def function_chunks(self, function: str, after_id: int, limit_bytes: int) -> list[Chunk]:
        """A function's chunks (all its streams) after chunk `after_id`, about limit_bytes."""
        found, size = [], 0
        for chunk in self._chunks(
            f"SELECT {', '.join('c.' + c for c in _CHUNK_COLUMNS.split(', '))} FROM log_chunks c "
            "JOIN log_streams s ON s.id = c.stream_id WHERE s.function = ? AND c.id > ? "
            "ORDER BY c.id",
            (function, after_id),
        ):
            found.append(chunk)
            size += len(chunk.data)
            if size >= limit_bytes:
                break
        return found

    def _chunks(self, sql: str, params) -> Iterator[Chunk]:
        for row in self._db.execute(sql, params):
            yield Chunk(*row)


class LogReader(LogReads):
    """A read-only connection for queries in a worker thread (`LogDatabase.reader`)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )

    def close(self) -> None:
        self._db.close()


class LogDatabase(LogReads):
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints (the only fsyncs in WAL mode with synchronous=NORMAL) are run by
        # `checkpoint` from another thread, never by a commit on the event loop.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.executescript(_SCHEMA)
        self._path = path

    def close(self) -> None:
        self._db.close()

    def reader(self) -> LogReader:
        """A new read-only connection to this database, for one worker thread."""
        return LogReader(self._path)

    def checkpoint(self, truncate: bool = False) -> None:
        """Copy the WAL into the database file so it can be reused. Blocking (fsync): run
        it in a worker thread. PASSIVE does not block the writer; with `truncate` (when
        the log is idle) the WAL file is also cut to nothing, giving its disk space back:
        that holds the write lock for the (short) time it takes."""
        db = sqlite3.connect(self._path, isolation_level=None, timeout=0)
        try:
            db.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if truncate else 'PASSIVE'})")
        finally:
            db.close()

    def create_group(self, name: str, created_ms: int) -> bool:
        """False if it exists already."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO log_groups (name, created_ms) VALUES (?, ?)", (name, created_ms)
        )
        return cursor.rowcount == 1

    def delete_group(self, name: str) -> bool:
        with self._transaction():
            gone = self._db.execute("DELETE FROM log_groups WHERE name = ?", (name,)).rowcount
            self._db.execute("DELETE FROM log_chunks WHERE group_name = ?", (name,))
            self._db.execute("DELETE FROM log_streams WHERE group_name = ?", (name,))
        return gone == 1

    def set_retention(self, name: str, days: int | None) -> bool:
        cursor = self._db.execute(
            "UPDATE log_groups SET retention_days = ? WHERE name = ?", (days, name)
        )
        return cursor.rowcount == 1

    def retained_groups(self) -> list[tuple[str, int]]:
        return self._db.execute(
            "SELECT name, retention_days FROM log_groups WHERE retention_days IS NOT NULL"
        ).fetchall()

    def stream_id(self, group: str, name: str, function: str | None, created_ms: int) -> int:
        """The stream's id, creating the group and the stream if missing."""
        self.create_group(group, created_ms)
        self._db.execute(
            "INSERT OR IGNORE INTO log_streams (group_name, name, function, created_ms) "
            "VALUES (?, ?, ?, ?)",
            (group, name, function, created_ms),
        )
        row = self._db.execute(
            "SELECT id FROM log_streams WHERE group_name = ? AND name = ?", (group, name)
        ).fetchone()
        return row[0]

    def add_chunks(self, chunks: list[tuple[int, str, int, int, int, bytes]]) -> None:
        """Rows of (stream id, group, first ms, last ms, ingestion ms, data), one transaction."""
        with self._transaction():
            for stream_id, group, first_ms, last_ms, ingestion_ms, data in chunks:
                size = len(data)
                self._db.execute(
                    "INSERT INTO log_chunks (stream_id, group_name, first_ms, last_ms, "
                    "ingestion_ms, size, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (stream_id, group, first_ms, last_ms, ingestion_ms, size, data),
                )
                self._db.execute(
                    "UPDATE log_streams SET stored_bytes = stored_bytes + ?, "
                    "first_event_ms = min(coalesce(first_event_ms, ?), ?), "
                    "last_event_ms = max(coalesce(last_event_ms, ?), ?), "
                    "last_ingestion_ms = ? WHERE id = ?",
                    (size, first_ms, first_ms, last_ms, last_ms, ingestion_ms, stream_id),
                )
                self._db.execute(
                    "UPDATE log_groups SET stored_bytes = stored_bytes + ? WHERE name = ?",
                    (size, group),
                )

    def drop_oldest(self, group: str, excess_bytes: int) -> int:
        """Delete the group's oldest chunks until `excess_bytes` are freed. Bytes freed."""
        rows = self._db.execute(
            "SELECT id, stream_id, size FROM log_chunks WHERE group_name = ? ORDER BY id",
            (group,),
        )
        doomed, freed = [], 0
        for chunk_id, stream_id, size in rows:
            if freed >= excess_bytes:
                break
            doomed.append((chunk_id, stream_id, size))
            freed += size
        self._delete_chunks(group, doomed)
        return freed

    def drop_oldest_anywhere(self, excess_bytes: int) -> dict[str, int]:
        """Delete the server's oldest chunks, whatever their group, until `excess_bytes`
        are freed. Bytes freed per group."""
        rows = self._db.execute(
            "SELECT id, stream_id, size, group_name FROM log_chunks ORDER BY id"
        )
        doomed: dict[str, list[tuple[int, int, int]]] = {}
        freed = 0
        for chunk_id, stream_id, size, group in rows:
            if freed >= excess_bytes:
                break
            doomed.setdefault(group, []).append((chunk_id, stream_id, size))
            freed += size
        rows.close()
        for group, chunks in doomed.items():
            self._delete_chunks(group, chunks)
        return {group: sum(size for _, _, size in chunks) for group, chunks in doomed.items()}

    def expire(self, group: str, before_ms: int) -> int:
        """Delete the group's chunks whose events are all older than `before_ms`, and the
        streams that this leaves empty and idle since then. Bytes freed."""
        doomed = self._db.execute(
            "SELECT id, stream_id, size FROM log_chunks WHERE group_name = ? AND last_ms < ?",
            (group, before_ms),
        ).fetchall()
        self._delete_chunks(group, doomed)
        self._db.execute(
            "DELETE FROM log_streams WHERE group_name = ? AND coalesce(last_ingestion_ms, "
            "created_ms) < ? AND NOT EXISTS (SELECT 1 FROM log_chunks c WHERE c.stream_id = "
            "log_streams.id)",
            (group, before_ms),
        )
        return sum(size for _, _, size in doomed)

    def _delete_chunks(self, group: str, doomed: list[tuple[int, int, int]]) -> None:
        if not doomed:
            return
        by_stream: dict[int, int] = {}
        for _, stream_id, size in doomed:
            by_stream[stream_id] = by_stream.get(stream_id, 0) + size
        with self._transaction():
            self._db.executemany(
                "DELETE FROM log_chunks WHERE id = ?", [(c,) for c, _, _ in doomed]
            )
            for stream_id, size in by_stream.items():
                # firstEventTimestamp moves on to what is left.
                self._db.execute(
                    "UPDATE log_streams SET stored_bytes = stored_bytes - ?, first_event_ms = "
                    "(SELECT min(first_ms) FROM log_chunks WHERE stream_id = ?) WHERE id = ?",
                    (size, stream_id, stream_id),
                )
            self._db.execute(
                "UPDATE log_groups SET stored_bytes = stored_bytes - ? WHERE name = ?",
                (sum(by_stream.values()), group),
            )

    def group_sizes(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT name, stored_bytes FROM log_groups").fetchall())

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
