"""Metering's pure parts: prices, percentiles, and batching against a fake store, a
hand-fired timer and an inline executor (no threads, no sleeps)."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

from corral.model.function import FunctionConfig
from corral.model.invocation import InvocationResult
from corral.store.metering import RECORD_COLUMNS, RecentInvocations, UsageSums
from corral.telemetry.metering import (
    FunctionStats,
    Metering,
    PriceTable,
    bill,
    usage_line,
)

LAMBDA_X86 = PriceTable(gb_second_usd=0.0000166667, million_requests_usd=0.20)
CONFIG = FunctionConfig("f", "r", "python3.11", "app.handler", "x", "0" * 64, 1, memory_mb=512)


class FakeStore:
    def __init__(self) -> None:
        self.batches: list[list[tuple]] = []
        self.closed = False

    def insert(self, rows):
        self.batches.append(list(rows))

    def usage(self, since, until, function_name):
        rows = [r for batch in self.batches for r in batch]
        return [UsageSums("f", len(rows), sum(r[6] for r in rows), sum(r[6] * r[7] for r in rows))]

    def recent(self, function_name, since):
        return RecentInvocations(0, 0, 0, None, None)

    def compact(self, before):
        return 0

    def close(self):
        self.closed = True


class InlineExecutor(concurrent.futures.Executor):
    def submit(self, fn, /, *args, **kwargs):
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


class _Handle:
    def __init__(self, callback) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class HandTimer:
    """`call_later` whose callbacks run only when the test fires them."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[float, _Handle]] = []

    def __call__(self, delay_s, callback):
        handle = _Handle(callback)
        self.scheduled.append((delay_s, handle))
        return handle

    def fire(self) -> None:
        pending, self.scheduled = self.scheduled, []
        for _, handle in pending:
            if not handle.cancelled:
                handle.callback()


def metering(store, timer, batch=3) -> Metering:
    return Metering(
        store,
        LAMBDA_X86,
        clock=lambda: 1_000.0,
        flush_delay_s=0.5,
        flush_batch=batch,
        call_later=timer,
        executor=InlineExecutor(),
    )


def result(duration_ms: float, init_ms: float | None = None, error: str | None = None):
    return InvocationResult(b"{}", error, b"", duration_ms, init_ms)


def test_usage_line_prices_requests_and_gb_seconds():
    # 1M requests of 1 s at 1 GB: 1,000,000 GB-s and 1M requests
    line = usage_line(1_000_000, 1_000_000_000, 1024 * 1_000_000_000, LAMBDA_X86)
    assert line.gb_seconds == 1_000_000
    assert line.request_cost_usd == pytest.approx(0.20)
    assert line.compute_cost_usd == pytest.approx(16.6667)
    assert line.cost_usd == pytest.approx(16.8667)


def test_gb_seconds_is_memory_gb_times_billed_seconds():
    line = usage_line(3, 7, 128 * 7, LAMBDA_X86)
    assert line.gb_seconds == pytest.approx(128 / 1024 * 7 / 1000)


def test_bill_totals_sum_the_functions():
    sums = [UsageSums("a", 2, 10, 1280), UsageSums("b", 1, 5, 5120)]
    lines, total = bill(sums, PriceTable(1.0, 1_000_000.0))
    assert set(lines) == {"a", "b"}
    assert (total.requests, total.billed_ms) == (3, 15)
    assert total.gb_seconds == pytest.approx((1280 + 5120) / 1_024_000)
    assert total.cost_usd == pytest.approx(lines["a"].cost_usd + lines["b"].cost_usd)
    assert total.request_cost_usd == 3.0


def test_bill_of_nothing_is_zero():
    lines, total = bill([], LAMBDA_X86)
    assert lines == {}
    assert (total.requests, total.billed_ms, total.cost_usd) == (0, 0, 0)


def test_function_stats_counts_and_ratio():
    stats = FunctionStats.of(RecentInvocations(4, 1, 1, p50_ms=2.0, p99_ms=40.0))
    assert stats.as_json() == {
        "invocations": 4,
        "errors": 1,
        "cold_starts": 1,
        "cold_start_ratio": 0.25,
        "p50_ms": 2.0,
        "p99_ms": 40.0,
    }


def test_function_stats_of_nothing_has_no_percentiles():
    assert FunctionStats.of(RecentInvocations(0, 0, 0, None, None)).as_json() == {
        "invocations": 0,
        "errors": 0,
        "cold_starts": 0,
        "cold_start_ratio": None,
        "p50_ms": None,
        "p99_ms": None,
    }


def test_records_wait_for_the_timer():
    store, timer = FakeStore(), HandTimer()
    meter = metering(store, timer)
    meter.completed(CONFIG, "sync", "r1", result(0.4))
    meter.completed(CONFIG, "sync", "r2", result(0.4))
    assert store.batches == []
    assert [delay for delay, _ in timer.scheduled] == [0.5]  # one timer for the batch
    timer.fire()
    assert [[row[3] for row in batch] for batch in store.batches] == [["r1", "r2"]]


def test_a_full_batch_is_written_at_once_and_cancels_the_timer():
    store, timer = FakeStore(), HandTimer()
    meter = metering(store, timer, batch=3)
    for i in range(4):
        meter.completed(CONFIG, "sync", f"r{i}", result(0.4))
    assert [len(batch) for batch in store.batches] == [3]
    timer.fire()
    assert [len(batch) for batch in store.batches] == [3, 1]


def test_record_row_has_billed_ms_rounded_up_at_least_one_and_init_included():
    store, timer = FakeStore(), HandTimer()
    meter = metering(store, timer, batch=100)
    meter.completed(CONFIG, "sync", "a", result(0.0))
    meter.completed(CONFIG, "event", "b", result(1.0, init_ms=80.5))
    meter.completed(CONFIG, "sync", "c", result(1.01, error="Unhandled"))
    meter.flush()
    rows = [dict(zip(RECORD_COLUMNS, row, strict=True)) for row in store.batches[0]]
    assert [r["billed_ms"] for r in rows] == [1, 82, 2]  # a cold start bills its init
    assert [r["invocation_type"] for r in rows] == ["sync", "event", "sync"]
    assert [r["init_duration_ms"] for r in rows] == [None, 80.5, None]
    assert [r["function_error"] for r in rows] == [None, None, "Unhandled"]
    assert {(r["at"], r["memory_mb"], r["version"]) for r in rows} == {(1000.0, 512, "$LATEST")}


def test_usage_sees_records_not_yet_flushed():
    store, timer = FakeStore(), HandTimer()
    meter = metering(store, timer, batch=100)
    meter.completed(CONFIG, "sync", "a", result(2.5))
    _, total = asyncio.run(meter.usage(None, 2_000.0, None))
    assert (total.requests, total.billed_ms) == (1, 3)
    assert total.gb_seconds == pytest.approx(0.5 * 0.003)


def test_close_writes_what_is_pending():
    store, timer = FakeStore(), HandTimer()
    meter = metering(store, timer, batch=100)
    meter.completed(CONFIG, "sync", "a", result(1.0))
    meter.close()
    assert len(store.batches) == 1
    assert store.closed


def test_throttles_are_not_billed():
    store, timer = FakeStore(), HandTimer()
    meter = metering(store, timer)
    meter.throttled("f", "sync")
    meter.flush()
    assert store.batches == []
