"""Prometheus metrics of invocations, and the collectors `/metrics` reads them through.

The invoke path only bumps plain integers on a per-(function, version) record made once;
prometheus-client's own Counter/Histogram children take a lock per update (1.6 us per
counter increment, 3.7 us per histogram observation on this machine, against ~1 us for the
three updates here), so the families are built from the records at scrape time instead.
Gauges of state (concurrency, queue, environments) are read from their owners at scrape
time. Everything runs on the event loop thread; scraping included.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from corral.model.function import FunctionConfig
from corral.model.invocation import InvocationResult, billed_ms
from corral.store.queue import FunctionQueueStats
from corral.telemetry import EVENT, SYNC

# Upper bounds in ms (exposed in seconds): 0.1 ms (a warm no-op) to 900 s (the longest
# timeout Lambda allows).
DURATION_BUCKETS_MS = (
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500,
    1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
)  # fmt: skip
_BUCKET_LABELS = [floatToGoString(b / 1000) for b in DURATION_BUCKETS_MS] + ["+Inf"]


class _Histogram:
    __slots__ = ("counts", "sum_ms")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS_MS) + 1)  # per bucket, last one +Inf
        self.sum_ms = 0.0

    def observe(self, value_ms: float) -> None:
        # bisect_left: the first bound >= value, as `le` is inclusive
        self.counts[bisect_left(DURATION_BUCKETS_MS, value_ms)] += 1
        self.sum_ms += value_ms

    def buckets(self) -> list[tuple[str, int]]:
        total, out = 0, []
        for label, count in zip(_BUCKET_LABELS, self.counts, strict=True):
            total += count
            out.append((label, total))
        return out


class _FunctionRecord:
    """The counters of one (function, version); created at its first invocation."""

    __slots__ = (
        "billed_ms",
        "cold_starts",
        "duration",
        "event_error",
        "event_success",
        "init_duration",
        "sync_error",
        "sync_success",
    )

    def __init__(self) -> None:
        self.sync_success = self.sync_error = 0
        self.event_success = self.event_error = 0
        self.billed_ms = 0
        self.cold_starts = 0
        self.duration = _Histogram()
        self.init_duration = _Histogram()


class InvocationMetrics(Collector):
    """Counts invocations as InvokeService reports them (an `InvocationObserver`)."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], _FunctionRecord] = {}
        self._throttles: dict[tuple[str, str], int] = {}  # by (function, type)

    def completed(
        self, config: FunctionConfig, kind: str, request_id: str, result: InvocationResult
    ) -> None:
        """One finished invocation (`kind` SYNC or EVENT). Never waits."""
        record = self._records.get((config.name, config.version))
        if record is None:
            record = self._records[(config.name, config.version)] = _FunctionRecord()
        if kind == SYNC:
            if result.function_error is None:
                record.sync_success += 1
            else:
                record.sync_error += 1
        elif result.function_error is None:
            record.event_success += 1
        else:
            record.event_error += 1
        # Inlined histogram observations: this runs on every invoke.
        duration_ms = result.duration_ms
        histogram = record.duration
        histogram.counts[bisect_left(DURATION_BUCKETS_MS, duration_ms)] += 1
        histogram.sum_ms += duration_ms
        init_ms = result.init_duration_ms
        record.billed_ms += billed_ms(duration_ms, init_ms)
        if init_ms is not None:
            record.cold_starts += 1
            record.init_duration.observe(init_ms)

    def throttled(self, function_name: str, kind: str) -> None:
        key = (function_name, kind)
        self._throttles[key] = self._throttles.get(key, 0) + 1

    def forget(self, function_name: str) -> None:
        """Drop a deleted function's series."""
        for key in [k for k in self._records if k[0] == function_name]:
            del self._records[key]
        for key in [k for k in self._throttles if k[0] == function_name]:
            del self._throttles[key]

    def function_names(self) -> set[str]:
        return {name for name, _ in self._records} | {name for name, _ in self._throttles}

    def collect(self) -> Iterator[Metric]:
        labels = ["function", "version"]
        invocations = CounterMetricFamily(
            "corral_invocations",
            "Finished invocations by type (sync, event) and result (success, error).",
            labels=[*labels, "type", "result"],
        )
        errors = CounterMetricFamily(
            "corral_errors", "Invocations that ended in a function error.", labels=labels
        )
        billed = CounterMetricFamily(
            "corral_billed_duration_milliseconds",
            "Billed duration as in REPORT (1 ms steps, at least 1 ms, Init Duration included).",
            labels=labels,
        )
        cold = CounterMetricFamily(
            "corral_cold_starts", "Invocations that started a new environment.", labels=labels
        )
        duration = HistogramMetricFamily(
            "corral_duration_seconds", "Invocation duration, as in REPORT.", labels=labels
        )
        init = HistogramMetricFamily(
            "corral_init_duration_seconds", "Init Duration of cold starts.", labels=labels
        )
        for (name, version), r in sorted(self._records.items()):
            for kind, result, value in (
                (SYNC, "success", r.sync_success),
                (SYNC, "error", r.sync_error),
                (EVENT, "success", r.event_success),
                (EVENT, "error", r.event_error),
            ):
                invocations.add_metric([name, version, kind, result], value)
            errors.add_metric([name, version], r.sync_error + r.event_error)
            billed.add_metric([name, version], r.billed_ms)
            cold.add_metric([name, version], r.cold_starts)
            duration.add_metric([name, version], r.duration.buckets(), r.duration.sum_ms / 1000)
            init.add_metric(
                [name, version], r.init_duration.buckets(), r.init_duration.sum_ms / 1000
            )
        throttles = CounterMetricFamily(
            "corral_throttles",
            "Requests refused for lack of concurrency (event ones are retried later).",
            labels=["function", "type"],
        )
        for (name, kind), value in sorted(self._throttles.items()):
            throttles.add_metric([name, kind], value)
        yield from (invocations, errors, throttles, duration, billed, cold, init)


# Where the scrape-time gauges come from (the composition root passes bound methods).
RunningByFunction = Callable[[], Mapping[str, int]]
EnvironmentStates = Callable[[], Iterable[tuple[str, str, str]]]  # (function, version, state)
QueueStatsSource = Callable[[], Iterable[FunctionQueueStats]]


class StateCollector(Collector):
    """Gauges read when scraped: concurrent executions per function, the async queue, and
    environments by state."""

    def __init__(
        self,
        invocations: InvocationMetrics,
        running: RunningByFunction,
        environments: EnvironmentStates,
        queue_stats: QueueStatsSource,
        states: Iterable[str],
    ) -> None:
        self.invocations = invocations
        self.running = running
        self.environments = environments
        self.queue_stats = queue_stats
        self.states = tuple(states)

    def collect(self) -> Iterator[Metric]:
        running = self.running()
        concurrent = GaugeMetricFamily(
            "corral_concurrent_executions",
            "Invocations running now, all versions together.",
            labels=["function"],
        )
        for name in sorted(self.invocations.function_names() | set(running)):
            concurrent.add_metric([name], running.get(name, 0))
        yield concurrent
        yield from self._queue_gauges()
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for name, version, state in self.environments():
            by_state = counts.get((name, version))
            if by_state is None:
                by_state = counts[(name, version)] = dict.fromkeys(self.states, 0)
            by_state[state] = by_state.get(state, 0) + 1
        environments = GaugeMetricFamily(
            "corral_environments",
            "Execution environments by state.",
            labels=["function", "version", "state"],
        )
        for (name, version), by_state in sorted(counts.items()):
            for state, value in by_state.items():
                environments.add_metric([name, version, state], value)
        yield environments

    def _queue_gauges(self) -> Iterator[Metric]:
        """The async queue per function (label `target` "function"); deliveries to other
        destinations (webhooks) per kind of target, with `function` "". A function with
        invocations and nothing queued shows 0."""
        labels = ["function", "target"]
        depth = GaugeMetricFamily(
            "corral_async_queue_depth", "Event invocations waiting or running.", labels=labels
        )
        running = GaugeMetricFamily(
            "corral_async_queue_running", "Event invocations running now.", labels=labels
        )
        age = GaugeMetricFamily(
            "corral_async_queue_oldest_event_age_seconds",
            "Age of the oldest queued event (0 when none is queued).",
            labels=labels,
        )
        found = {(s.function, s.target): s for s in self.queue_stats()}
        for name in self.invocations.function_names():
            found.setdefault((name, "function"), FunctionQueueStats("function", name, 0, 0, 0.0))
        for key, stats in sorted(found.items()):
            depth.add_metric(list(key), stats.depth)
            running.add_metric(list(key), stats.running)
            age.add_metric(list(key), stats.oldest_age_s)
        yield from (depth, running, age)
