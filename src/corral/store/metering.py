"""Metering records, one row per finished invocation, and the sums a bill needs.

Per-invocation rows are kept for a retention period (`compact`); older ones are rolled up
into per-function, per-hour sums (`usage_hours`) that the bill adds, so the bill of any
window stays exact to the hour for them (and exact for the retained rows).

SQLite in its own file (`metering.db`), not the shared `corral.db`: batches are written
from a worker thread, and a batch holding SQLite's write lock must never make the event
loop's single-row writes (an Event invoke's queue insert) wait for it. Only storage here;
batching is `corral.telemetry.metering`, prices too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from math import ceil
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

# Records past their retention, summed per function and hour (`compact`).
usage_hours = Table(
    "usage_hours",
    metadata,
    Column("function_name", String(64), primary_key=True),
    Column("hour", Integer, primary_key=True),  # epoch seconds at the start of the hour
    Column("requests", Integer, nullable=False),
    Column("billed_ms", Integer, nullable=False),
    Column("mb_ms", Integer, nullable=False),
)
HOUR_S = 3600

_COMPACT = (
    "INSERT INTO usage_hours (function_name, hour, requests, billed_ms, mb_ms) "
    "SELECT function_name, CAST(at / 3600 AS INTEGER) * 3600, count(*), sum(billed_ms), "
    "sum(memory_mb * billed_ms) FROM invocation_records WHERE at < ?1 "
    "GROUP BY function_name, CAST(at / 3600 AS INTEGER) "
    "ON CONFLICT (function_name, hour) DO UPDATE SET "
    "requests = requests + excluded.requests, billed_ms = billed_ms + excluded.billed_ms, "
    "mb_ms = mb_ms + excluded.mb_ms"
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
    invocations: int
    errors: int
    cold_starts: int
    p50_ms: float | None
    p99_ms: float | None


def nearest_rank(q: float, count: int) -> int:
    """The 1-based rank of the nearest-rank percentile q (0 < q <= 100) of `count` values."""
    return max(1, ceil(q / 100 * count))


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
        """Sums per function of the records with since <= at < until, and of the rolled-up
        hours that start in that window."""
        r, h = invocation_records.c, usage_hours.c
        records = (
            select(
                r.function_name,
                func.count(),
                func.coalesce(func.sum(r.billed_ms), 0),
                func.coalesce(func.sum(r.memory_mb * r.billed_ms), 0),
            )
            .where(r.at < until)
            .group_by(r.function_name)
        )
        hours = select(h.function_name, h.requests, h.billed_ms, h.mb_ms).where(h.hour < until)
        if since is not None:
            records = records.where(r.at >= since)
            hours = hours.where(h.hour >= since)
        if function_name is not None:
            records = records.where(r.function_name == function_name)
            hours = hours.where(h.function_name == function_name)
        sums: dict[str, list[int]] = {}
        with self.engine.connect() as conn:
            for query in (records, hours):
                for name, count, billed, mb_ms in conn.execute(query):
                    line = sums.setdefault(name, [0, 0, 0])
                    line[0] += int(count)
                    line[1] += int(billed)
                    line[2] += int(mb_ms)
        return [UsageSums(name, *sums[name]) for name in sorted(sums)]

    def recent(self, function_name: str, since: float) -> RecentInvocations:
        """Counts and p50/p99 duration of the function's records since `since`, computed
        by SQLite (two sorted lookups): no per-invocation row reaches Python."""
        with self._raw() as conn:
            where = "function_name = ?1 AND at >= ?2"
            count, errors, cold = conn.execute(
                f"SELECT count(*), count(function_error), count(init_duration_ms) "
                f"FROM invocation_records WHERE {where}",
                (function_name, since),
            ).fetchone()
            percentiles = []
            for q in (50, 99):
                value = None
                if count:
                    (value,) = conn.execute(
                        f"SELECT duration_ms FROM invocation_records WHERE {where} "
                        "ORDER BY duration_ms LIMIT 1 OFFSET ?3",
                        (function_name, since, nearest_rank(q, count) - 1),
                    ).fetchone()
                percentiles.append(value)
        return RecentInvocations(count, errors, cold, *percentiles)

    def compact(self, before: float) -> int:
        """Roll the records of the hours that end by `before` up into `usage_hours` and
        delete them, in one transaction. The number of records rolled up."""
        before = before // HOUR_S * HOUR_S  # whole hours only: no hour is split
        with self._raw() as conn:
            conn.execute(_COMPACT, (before,))
            return conn.execute("DELETE FROM invocation_records WHERE at < ?", (before,)).rowcount

    def close(self) -> None:
        self.engine.dispose()
