"""The durable queue of asynchronous work: Event invocations and destination deliveries.

SQLite in the embedded mode (table `event_queue`, on the shared engine); `EventQueue` is
the interface a cluster queue (NATS JetStream) will implement. An event is written and
committed before the caller is told 202; it leaves the queue only when its work is done
(or given up). Work is leased while it runs: a lease from a killed server is released
at start-up, so the event runs again: delivery is at least once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

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


class EventQueue(Protocol):
    changed: asyncio.Event  # set when an event is added (the dispatcher waits on it)

    def put(self, event: NewEvent) -> None: ...
    def lease(self, limit: int, lease_s: float) -> list[QueuedEvent]: ...
    def complete(self, event_id: int) -> None: ...
    def reschedule(self, event_id: int, attempts: int, not_before: float) -> None: ...
    def next_due(self) -> float | None: ...
    def stats(self) -> QueueStats: ...
    def release_leases(self) -> int: ...


_COLUMNS = (
    event_queue.c.id,
    event_queue.c.request_id,
    event_queue.c.target,
    event_queue.c.destination,
    event_queue.c.qualifier,
    event_queue.c.payload,
    event_queue.c.trace_id,
    event_queue.c.enqueued_at,
    event_queue.c.attempts,
)


class SqliteEventQueue:
    """Every call is one short transaction; `put` commits before it returns."""

    def __init__(self, db: Database) -> None:
        self.engine = db.engine
        self.changed = asyncio.Event()

    def put(self, event: NewEvent) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                insert(event_queue).values(
                    request_id=event.request_id,
                    target=event.target,
                    destination=event.destination,
                    qualifier=event.qualifier,
                    payload=event.payload,
                    trace_id=event.trace_id,
                    enqueued_at=now,
                    attempts=0,
                    not_before=now,
                )
            )
        self.changed.set()

    def lease(self, limit: int, lease_s: float) -> list[QueuedEvent]:
        """Up to `limit` due events, oldest first, leased for `lease_s` seconds."""
        now = time.time()
        due = (
            select(*_COLUMNS)
            .where(event_queue.c.not_before <= now)
            .where(or_(event_queue.c.leased_until.is_(None), event_queue.c.leased_until < now))
            .order_by(event_queue.c.not_before, event_queue.c.id)
            .limit(limit)
        )
        with self.engine.begin() as conn:
            events = [QueuedEvent(*row) for row in conn.execute(due)]
            if events:
                conn.execute(
                    update(event_queue)
                    .where(event_queue.c.id.in_([e.id for e in events]))
                    .values(leased_until=now + lease_s)
                )
        return events

    def complete(self, event_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(event_queue).where(event_queue.c.id == event_id))

    def reschedule(self, event_id: int, attempts: int, not_before: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(event_queue)
                .where(event_queue.c.id == event_id)
                .values(attempts=attempts, not_before=not_before, leased_until=None)
            )

    def next_due(self) -> float | None:
        """When the earliest unleased event becomes due (epoch seconds), if any."""
        query = select(func.min(event_queue.c.not_before)).where(
            event_queue.c.leased_until.is_(None)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def stats(self) -> QueueStats:
        now = time.time()
        query = select(
            func.count(),
            func.count(event_queue.c.leased_until),
            func.min(event_queue.c.enqueued_at),
        )
        with self.engine.connect() as conn:
            depth, running, oldest = conn.execute(query).one()
        return QueueStats(int(depth), int(running), max(0.0, now - oldest) if oldest else 0.0)

    def release_leases(self) -> int:
        """At start-up: whatever a previous server was running is due again."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(event_queue)
                .where(event_queue.c.leased_until.is_not(None))
                .values(leased_until=None)
            )
        return done.rowcount
