"""The durable queue of asynchronous work: Event invocations and destination deliveries.

SQLite in the embedded mode (table `event_queue`, on the shared engine); `EventQueue` is
the interface a cluster queue (NATS JetStream) will implement. An event is written and
committed before the caller is told 202; it leaves the queue only when its work is done
(or given up). Work is leased while it runs: a lease from a killed server is released
at start-up, so the event runs again: delivery is at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Column, Float, Integer, LargeBinary, String, Table, Text

from corral.store.db import Database, metadata

event_queue = Table(
    "event_queue",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),
    Column("target", String(16), nullable=False),  # "function" or "webhook"
    Column("destination", Text, nullable=False),  # function name, or the webhook URL
    Column("qualifier", String(128)),
    Column("payload", LargeBinary, nullable=False),
    Column("trace_id", Text),
    Column("enqueued_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", Float, nullable=False, index=True),
    Column("leased_until", Float),
)


@dataclass(frozen=True, slots=True)
class NewEvent:
    request_id: str
    target: str
    destination: str
    payload: bytes
    qualifier: str | None = None
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    id: int
    request_id: str
    target: str
    destination: str
    qualifier: str | None
    payload: bytes
    trace_id: str | None
    enqueued_at: float
    attempts: int  # attempts made before this one


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int  # events waiting or running
    running: int  # of which leased right now
    oldest_age_s: float  # age of the oldest event, 0 when empty


@dataclass(frozen=True, slots=True)
class FunctionQueueStats:
    """QueueStats of the events for one function (`target` "function"), or of every
    delivery to one other kind of target (`function` "")."""

    target: str
    function: str
    depth: int
    running: int
    oldest_age_s: float


class EventQueue(Protocol):
    changed: asyncio.Event  # set when an event is added (the dispatcher waits on it)

    def put(self, event: NewEvent) -> None: ...
    def lease(self, limit: int, lease_s: float) -> list[QueuedEvent]: ...
    def complete(self, event_id: int) -> None: ...
    def reschedule(self, event_id: int, attempts: int, not_before: float) -> None: ...
    def next_due(self) -> float | None: ...
    def stats(self) -> QueueStats: ...
    def stats_by_function(self) -> list[FunctionQueueStats]: ...
    def release_leases(self) -> int: ...


_SELECT = (
    "SELECT id, request_id, target, destination, qualifier, payload, trace_id, enqueued_at, "
    "attempts FROM event_queue"
)


class SqliteEventQueue:
    """Every call is one short transaction; `put` commits before it returns.

    Statements go to the pooled DB-API connection as plain SQL: through SQLAlchemy Core an
    insert-and-commit costs 0.62 ms here, directly 0.12 ms, and every Event invoke pays it.
    The table itself is declared above, so the schema stays in SQLAlchemy's metadata.
    """

    def __init__(self, db: Database) -> None:
        self.engine = db.engine
        self.changed = asyncio.Event()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        conn = self.engine.raw_connection()
        try:
            cursor = conn.cursor()
            yield cursor
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()  # back to the pool

    def put(self, event: NewEvent) -> None:
        now = time.time()
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO event_queue (request_id, target, destination, qualifier, payload, "
                "trace_id, enqueued_at, attempts, not_before) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (
                    event.request_id,
                    event.target,
                    event.destination,
                    event.qualifier,
                    event.payload,
                    event.trace_id,
                    now,
                    now,
                ),
            )
        self.changed.set()

    def lease(self, limit: int, lease_s: float) -> list[QueuedEvent]:
        """Up to `limit` due events, oldest first, leased for `lease_s` seconds."""
        now = time.time()
        with self._transaction() as cur:
            cur.execute(
                f"{_SELECT} WHERE not_before <= ? AND (leased_until IS NULL OR leased_until < ?) "
                "ORDER BY not_before, id LIMIT ?",
                (now, now, limit),
            )
            events = [QueuedEvent(*row) for row in cur.fetchall()]
            if events:
                marks = ", ".join("?" * len(events))
                cur.execute(
                    f"UPDATE event_queue SET leased_until = ? WHERE id IN ({marks})",
                    (now + lease_s, *(e.id for e in events)),
                )
        return events

    def complete(self, event_id: int) -> None:
        with self._transaction() as cur:
            cur.execute("DELETE FROM event_queue WHERE id = ?", (event_id,))

    def reschedule(self, event_id: int, attempts: int, not_before: float) -> None:
        with self._transaction() as cur:
            cur.execute(
                "UPDATE event_queue SET attempts = ?, not_before = ?, leased_until = NULL "
                "WHERE id = ?",
                (attempts, not_before, event_id),
            )

    def next_due(self) -> float | None:
        """When the earliest unleased event becomes due (epoch seconds), if any."""
        with self._transaction() as cur:
            cur.execute("SELECT min(not_before) FROM event_queue WHERE leased_until IS NULL")
            return cur.fetchone()[0]

    def stats(self) -> QueueStats:
        now = time.time()
        with self._transaction() as cur:
            cur.execute("SELECT count(*), count(leased_until), min(enqueued_at) FROM event_queue")
            depth, running, oldest = cur.fetchone()
        return QueueStats(int(depth), int(running), max(0.0, now - oldest) if oldest else 0.0)

    def stats_by_function(self) -> list[FunctionQueueStats]:
        now = time.time()
        with self._transaction() as cur:
            cur.execute(
                "SELECT target, CASE target WHEN 'function' THEN destination ELSE '' END, "
                "count(*), count(leased_until), min(enqueued_at) FROM event_queue "
                "GROUP BY 1, 2 ORDER BY 1, 2"
            )
            rows = cur.fetchall()
        return [
            FunctionQueueStats(target, name, int(depth), int(running), max(0.0, now - oldest))
            for target, name, depth, running, oldest in rows
        ]

    def release_leases(self) -> int:
        """At start-up: whatever a previous server was running is due again."""
        with self._transaction() as cur:
            cur.execute("UPDATE event_queue SET leased_until = NULL WHERE leased_until IS NOT NULL")
            return cur.rowcount
