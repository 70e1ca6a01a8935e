"""Metering records, one row per finished invocation, and the sums a bill needs.

SQLite in its own file (`metering.db`), not the shared `corral.db`: batches are written
from a worker thread, and a batch holding SQLite's write lock must never make the event
loop's single-row writes (an Event invoke's queue insert) wait for it. Only storage here;
batching is `corral.telemetry.metering`, prices and percentiles too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine

from corral.store.db import _sqlite_pragmas

metadata = MetaData()

invocation_records = Table(
    "invocation_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),  # epoch seconds, when it finished
    Column("function_name", String(64), nullable=False),
    Column("version", String(16), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("invocation_type", String(8), nullable=False),  # "sync" or "event"
    Column("duration_ms", Float, nullable=False),
    Column("billed_ms", Integer, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("gb_seconds", Float, nullable=False),
    Column("init_duration_ms", Float),  # set on cold starts
    Column("function_error", String(64)),  # "Unhandled" etc., NULL on success
    Index("invocation_records_function_at", "function_name", "at"),
)

# The column order of the rows `insert` takes; gb_seconds is computed from them.
RECORD_COLUMNS = (
    "at",
    "function_name",
    "version",
    "request_id",
    "invocation_type",
    "duration_ms",
    "billed_ms",
    "memory_mb",
    "init_duration_ms",
    "function_error",
)
_INSERT = (
    f"INSERT INTO invocation_records ({', '.join(RECORD_COLUMNS)}, gb_seconds) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?8 * ?7 / 1024000.0)"
)


@dataclass(frozen=True, slots=True)
class UsageSums:
    function_name: str
    requests: int
    billed_ms: int
    mb_ms: int  # sum of memory_mb x billed_ms: GB-seconds without rounding error


@dataclass(frozen=True, slots=True)
class RecentInvocations:
    durations_ms: list[float]  # ascending
    errors: int
    cold_starts: int


class MeteringStore:
    """Blocking calls: use them from one worker thread (`corral.telemetry.metering`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)

    @classmethod
    def sqlite(cls, path: Path) -> MeteringStore:
        engine = create_engine(f"sqlite:///{path}")
        event.listen(engine, "connect", _sqlite_pragmas)
        return cls(engine)

    @contextlib.contextmanager
    def _raw(self) -> Iterator:
        conn = self.engine.raw_connection()
        try:
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    def insert(self, rows: Sequence[tuple]) -> None:
        """Rows in RECORD_COLUMNS order, as they are, in one transaction (plain DB-API
        executemany: SQLAlchemy Core's insert costs several times more per row)."""
        with self._raw() as conn:
            conn.cursor().executemany(_INSERT, rows)

    def usage(
        self, since: float | None, until: float, function_name: str | None
    ) -> list[UsageSums]:
        """Sums per function of the records with since <= at < until."""
        r = invocation_records.c
        query = (
            select(
                r.function_name,
                func.count(),
                func.coalesce(func.sum(r.billed_ms), 0),
                func.coalesce(func.sum(r.memory_mb * r.billed_ms), 0),
            )
            .where(r.at < until)
            .group_by(r.function_name)
            .order_by(r.function_name)
        )
        if since is not None:
            query = query.where(r.at >= since)
        if function_name is not None:
            query = query.where(r.function_name == function_name)
        with self.engine.connect() as conn:
            return [UsageSums(n, int(c), int(b), int(m)) for n, c, b, m in conn.execute(query)]

    def recent(self, function_name: str, since: float) -> RecentInvocations:
        r = invocation_records.c
        query = (
            select(r.duration_ms, r.function_error, r.init_duration_ms)
            .where(r.function_name == function_name, r.at >= since)
            .order_by(r.duration_ms)
        )
        durations, errors, cold = [], 0, 0
        with self.engine.connect() as conn:
            for duration_ms, error, init_ms in conn.execute(query):
                durations.append(duration_ms)
                errors += error is not None
                cold += init_ms is not None
        return RecentInvocations(durations, errors, cold)

    def close(self) -> None:
        self.engine.dispose()
