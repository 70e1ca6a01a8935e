"""The metering table: rows in, sums and recent durations out (SQLite in a temp dir)."""

from __future__ import annotations

import pytest

from corral.store.metering import MeteringStore, RecentInvocations, UsageSums


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
    assert (recent.invocations, recent.p50_ms, recent.p99_ms) == (3, 2.0, 3.0)
    assert (recent.errors, recent.cold_starts) == (1, 1)
    assert store.recent("f", 100.0) == RecentInvocations(0, 0, 0, None, None)


@pytest.mark.parametrize(
    ("values", "p50", "p99"),
    [
        ([5.0], 5.0, 5.0),
        ([1.0, 2.0], 1.0, 2.0),
        ([4.0, 1.0, 3.0, 2.0], 2.0, 4.0),
        (list(map(float, range(100, 0, -1))), 50.0, 99.0),
        (list(map(float, range(1, 201))), 100.0, 198.0),
    ],
)
def test_recent_percentiles_are_nearest_rank(store, values, p50, p99):
    store.insert([row(10.0 + i, duration_ms=v) for i, v in enumerate(values)])
    recent = store.recent("f", 0.0)
    assert (recent.invocations, recent.p50_ms, recent.p99_ms) == (len(values), p50, p99)


def test_compaction_rolls_old_records_into_hours_and_usage_stays_exact(store):
    hour = 3600.0
    old = [row(10 * hour + 1), row(10 * hour + 2, billed=5, memory_mb=256), row(11 * hour)]
    old += [row(10 * hour + 5, "g", billed=7)]
    new = [row(12 * hour + 1, billed=3)]
    store.insert(old + new)
    before = store.usage(None, 13 * hour, None)
    # Whole hours only: 12:30 rolls up the hours that end by 12:00.
    assert store.compact(12 * hour + 1800) == 4
    assert store.compact(12 * hour + 1800) == 0
    assert store.usage(None, 13 * hour, None) == before
    assert store.usage(10 * hour, 11 * hour, "f") == [UsageSums("f", 2, 7, 128 * 2 + 256 * 5)]
    assert store.usage(12 * hour, 13 * hour, None) == [UsageSums("f", 1, 3, 128 * 3)]
    with store.engine.connect() as conn:
        (left,) = conn.exec_driver_sql("SELECT count(*) FROM invocation_records").one()
    assert left == 1
    # Rolled up again later, an hour already summed adds up.
    store.insert([row(11 * hour + 10)])
    store.compact(12 * hour)
    assert store.usage(11 * hour, 12 * hour, "f") == [UsageSums("f", 2, 4, 128 * 4)]


def test_records_survive_reopening(tmp_path):
    first = MeteringStore.sqlite(tmp_path / "metering.db")
    first.insert([row(1.0)])
    first.close()
    second = MeteringStore.sqlite(tmp_path / "metering.db")
    assert second.usage(None, 2.0, None) == [UsageSums("f", 1, 2, 256)]
    second.close()
