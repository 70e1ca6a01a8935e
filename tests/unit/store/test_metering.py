"""The metering table: rows in, sums and recent durations out (SQLite in a temp dir)."""

from __future__ import annotations

import pytest

from corral.store.metering import MeteringStore, UsageSums


def row(at, name="f", duration_ms=1.5, billed=2, memory_mb=128, init_ms=None, error=None):
    return (at, name, "$LATEST", f"req-{at}", "sync", duration_ms, billed, memory_mb, init_ms,
            error)  # fmt: skip


@pytest.fixture
def store(tmp_path):
    store = MeteringStore.sqlite(tmp_path / "metering.db")
    yield store
    store.close()


def test_usage_sums_per_function_in_a_half_open_window(store):
    store.insert([row(10.0), row(20.0, billed=3, memory_mb=256), row(30.0), row(20.0, "g")])
    assert store.usage(10.0, 30.0, None) == [
        UsageSums("f", 2, 5, 128 * 2 + 256 * 3),
        UsageSums("g", 1, 2, 256),
    ]
    assert store.usage(None, 100.0, "g") == [UsageSums("g", 1, 2, 256)]
    assert store.usage(31.0, 100.0, None) == []


def test_gb_seconds_column_is_memory_gb_times_billed_seconds(store):
    store.insert([row(1.0, billed=7, memory_mb=512)])
    with store.engine.connect() as conn:
        (value,) = conn.exec_driver_sql("SELECT gb_seconds FROM invocation_records").one()
    assert value == pytest.approx(0.5 * 0.007)


def test_recent_durations_sorted_with_errors_and_cold_starts(store):
    store.insert(
        [
            row(5.0, duration_ms=9.0),  # before the window
            row(10.0, duration_ms=3.0, init_ms=50.0),
            row(11.0, duration_ms=1.0, error="Unhandled"),
            row(12.0, duration_ms=2.0),
            row(12.0, "g", duration_ms=0.5),
        ]
    )
    recent = store.recent("f", 10.0)
    assert recent.durations_ms == [1.0, 2.0, 3.0]
    assert (recent.errors, recent.cold_starts) == (1, 1)


def test_records_survive_reopening(tmp_path):
    first = MeteringStore.sqlite(tmp_path / "metering.db")
    first.insert([row(1.0)])
    first.close()
    second = MeteringStore.sqlite(tmp_path / "metering.db")
    assert second.usage(None, 2.0, None) == [UsageSums("f", 1, 2, 256)]
    second.close()
