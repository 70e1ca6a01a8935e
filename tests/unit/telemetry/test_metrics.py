"""The invocation metrics and the scrape-time gauges, read back through prometheus-client's
own exposition and parser."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from corral.model.function import FunctionConfig
from corral.model.invocation import InvocationResult, billed_ms
from corral.store.queue import FunctionQueueStats
from corral.telemetry.metrics import DURATION_BUCKETS_MS, InvocationMetrics, StateCollector

CONFIG = FunctionConfig("f", "r", "python3.11", "app.handler", "x", "0" * 64, 1)
V1 = FunctionConfig("f", "r", "python3.11", "app.handler", "x", "0" * 64, 1, version="1")


def samples(registry: CollectorRegistry) -> dict[tuple, float]:
    """{(sample name, sorted label items): value} of everything the registry exposes."""
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def result(duration_ms: float, init_ms: float | None = None, error: str | None = None):
    return InvocationResult(b"{}", error, b"", duration_ms, init_ms)


def registry_with(metrics: InvocationMetrics) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(metrics)
    return registry


def test_invocations_counted_by_function_version_type_and_result():
    metrics = InvocationMetrics()
    for _ in range(3):
        metrics.completed(CONFIG, "sync", "r", result(1.0))
    metrics.completed(CONFIG, "sync", "r", result(1.0, error="Unhandled"))
    metrics.completed(CONFIG, "event", "r", result(1.0))
    metrics.completed(V1, "event", "r", result(1.0, error="Unhandled"))
    s = samples(registry_with(metrics))

    def invocations(version, kind, outcome):
        labels = {"function": "f", "version": version, "type": kind, "result": outcome}
        return s[("corral_invocations_total", tuple(sorted(labels.items())))]

    assert invocations("$LATEST", "sync", "success") == 3
    assert invocations("$LATEST", "sync", "error") == 1
    assert invocations("$LATEST", "event", "success") == 1
    assert invocations("1", "event", "error") == 1
    assert s[("corral_errors_total", (("function", "f"), ("version", "$LATEST")))] == 1
    assert s[("corral_errors_total", (("function", "f"), ("version", "1")))] == 1


@pytest.mark.parametrize("duration_ms", [0.0, 0.1, 0.31, 1.0, 1.0001, 899_999.5, 2e6])
def test_billed_duration_matches_billed_ms(duration_ms):
    metrics = InvocationMetrics()
    metrics.completed(CONFIG, "sync", "r", result(duration_ms))
    s = samples(registry_with(metrics))
    key = ("corral_billed_duration_milliseconds_total", (("function", "f"), ("version", "$LATEST")))
    assert s[key] == billed_ms(duration_ms)


def test_duration_histogram_buckets_are_cumulative_and_inclusive():
    metrics = InvocationMetrics()
    for duration_ms in (0.05, 0.1, 0.3, 5.0, 1_000_000.0):
        metrics.completed(CONFIG, "sync", "r", result(duration_ms))
    s = samples(registry_with(metrics))

    def bucket(le: str) -> float:
        labels = (("function", "f"), ("le", le), ("version", "$LATEST"))
        return s[("corral_duration_seconds_bucket", labels)]

    assert bucket("0.0001") == 2  # 0.05 ms and exactly 0.1 ms
    assert bucket("0.0005") == 3
    assert bucket("0.005") == 4
    assert bucket("900.0") == 4
    assert bucket("+Inf") == 5
    labels = (("function", "f"), ("version", "$LATEST"))
    assert s[("corral_duration_seconds_count", labels)] == 5
    assert s[("corral_duration_seconds_sum", labels)] == pytest.approx(1_000_005.45 / 1000)
    assert len(DURATION_BUCKETS_MS) == 22


def test_cold_starts_and_init_duration():
    metrics = InvocationMetrics()
    metrics.completed(CONFIG, "sync", "r", result(3.0, init_ms=80.0))
    metrics.completed(CONFIG, "sync", "r", result(3.0))
    s = samples(registry_with(metrics))
    labels = (("function", "f"), ("version", "$LATEST"))
    assert s[("corral_cold_starts_total", labels)] == 1
    assert s[("corral_init_duration_seconds_count", labels)] == 1
    assert s[("corral_init_duration_seconds_sum", labels)] == pytest.approx(0.08)


def test_throttles_by_function_and_type():
    metrics = InvocationMetrics()
    metrics.throttled("f", "sync")
    metrics.throttled("f", "sync")
    metrics.throttled("f", "event")
    s = samples(registry_with(metrics))
    assert s[("corral_throttles_total", (("function", "f"), ("type", "sync")))] == 2
    assert s[("corral_throttles_total", (("function", "f"), ("type", "event")))] == 1


def test_forget_drops_a_deleted_functions_series():
    metrics = InvocationMetrics()
    metrics.completed(CONFIG, "sync", "r", result(1.0))
    metrics.throttled("f", "sync")
    metrics.forget("f")
    assert not any(labels for (_, labels) in samples(registry_with(metrics)))


def test_state_gauges_are_read_at_scrape_time():
    metrics = InvocationMetrics()
    metrics.completed(CONFIG, "sync", "r", result(1.0))
    running = {"g": 2}
    environments = [("f", "$LATEST", "idle"), ("f", "$LATEST", "busy"), ("f", "$LATEST", "idle")]
    queue = [
        FunctionQueueStats("function", "g", depth=4, running=1, oldest_age_s=2.5),
        FunctionQueueStats("webhook", "", depth=2, running=0, oldest_age_s=1.0),
    ]
    registry = registry_with(metrics)
    registry.register(
        StateCollector(
            metrics,
            lambda: running,
            lambda: environments,
            lambda: queue,
            ["starting", "idle", "busy", "stopped"],
        )
    )
    s = samples(registry)
    assert s[("corral_concurrent_executions", (("function", "f"),))] == 0
    assert s[("corral_concurrent_executions", (("function", "g"),))] == 2
    g, f = (("function", "g"), ("target", "function")), (("function", "f"), ("target", "function"))
    hooks = (("function", ""), ("target", "webhook"))
    assert s[("corral_async_queue_depth", g)] == 4
    assert s[("corral_async_queue_running", g)] == 1
    assert s[("corral_async_queue_oldest_event_age_seconds", g)] == 2.5
    assert s[("corral_async_queue_depth", hooks)] == 2
    # f has invocations and nothing queued: 0, not absent.
    assert s[("corral_async_queue_depth", f)] == 0
    assert s[("corral_async_queue_oldest_event_age_seconds", f)] == 0

    def envs(state: str) -> float:
        labels = (("function", "f"), ("state", state), ("version", "$LATEST"))
        return s[("corral_environments", labels)]

    assert (envs("idle"), envs("busy"), envs("starting"), envs("stopped")) == (2, 1, 0, 0)
    running["g"] = 0
    environments.clear()
    s = samples(registry)
    assert s[("corral_concurrent_executions", (("function", "g"),))] == 0
    assert not any(name == "corral_environments" for name, _ in s)
