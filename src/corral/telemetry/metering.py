"""Metering: a durable record of every invocation, and the bill and statistics made of them.

The invoke path appends a tuple to a list (no I/O). The list is written as one batch when
it reaches FLUSH_BATCH records or FLUSH_DELAY_S after its first record, whichever comes
first, by a single worker thread; queries run on the same thread after the writes queued
before them, so they always see every finished invocation. `close` writes what is left.
Billing follows Lambda: duration (plus Init Duration on on-demand cold starts) rounded up
to 1 ms (at least 1), GB-seconds = memory GB x billed seconds, plus a price per request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from corral.model.function import FunctionConfig
from corral.model.invocation import InvocationResult, billed_ms
from corral.store.metering import RecentInvocations, UsageSums

log = logging.getLogger("corral.telemetry")

FLUSH_DELAY_S = 0.5
FLUSH_BATCH = 1000
RETENTION_INTERVAL_S = 3600.0  # how often records past their retention are rolled up
MB_MS_PER_GB_SECOND = 1024 * 1000


@dataclass(frozen=True, slots=True)
class PriceTable:
    """USD per GB-second and per million requests (Settings has Lambda's x86 prices,
    https://aws.amazon.com/lambda/pricing/)."""

    gb_second_usd: float
    million_requests_usd: float


@dataclass(frozen=True, slots=True)
class UsageLine:
    """What one function (or all together) used and costs."""

    requests: int
    billed_ms: int
    gb_seconds: float
    request_cost_usd: float
    compute_cost_usd: float

    @property
    def cost_usd(self) -> float:
        return self.request_cost_usd + self.compute_cost_usd

    def as_json(self) -> dict:
        return {
            "requests": self.requests,
            "billed_ms": self.billed_ms,
            "gb_seconds": self.gb_seconds,
            "request_cost_usd": self.request_cost_usd,
            "compute_cost_usd": self.compute_cost_usd,
            "cost_usd": self.cost_usd,
        }


def usage_line(requests: int, billed: int, mb_ms: int, prices: PriceTable) -> UsageLine:
    """`mb_ms` is the sum of memory MB x billed ms: GB-seconds = mb_ms / 1024 / 1000."""
    gb_seconds = mb_ms / MB_MS_PER_GB_SECOND
    return UsageLine(
        requests,
        billed,
        gb_seconds,
        requests * prices.million_requests_usd / 1_000_000,
        gb_seconds * prices.gb_second_usd,
    )


def bill(sums: Sequence[UsageSums], prices: PriceTable) -> tuple[dict[str, UsageLine], UsageLine]:
    """Per function and in total; the total is priced from the summed usage."""
    lines = {s.function_name: usage_line(s.requests, s.billed_ms, s.mb_ms, prices) for s in sums}
    total = usage_line(
        sum(s.requests for s in sums),
        sum(s.billed_ms for s in sums),
        sum(s.mb_ms for s in sums),
        prices,
    )
    return lines, total


@dataclass(frozen=True, slots=True)
class FunctionStats:
    invocations: int
    errors: int
    cold_starts: int
    p50_ms: float | None
    p99_ms: float | None

    @classmethod
    def of(cls, recent: RecentInvocations) -> FunctionStats:
        return cls(
            recent.invocations, recent.errors, recent.cold_starts, recent.p50_ms, recent.p99_ms
        )

    def as_json(self) -> dict:
        n = self.invocations
        return {
            "invocations": n,
            "errors": self.errors,
            "cold_starts": self.cold_starts,
            "cold_start_ratio": self.cold_starts / n if n else None,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
        }


class UsageStore(Protocol):
    """`corral.store.metering.MeteringStore`; blocking, called from the worker thread."""

    def insert(self, rows: Sequence[tuple]) -> None: ...
    def usage(
        self, since: float | None, until: float, function_name: str | None
    ) -> list[UsageSums]: ...
    def recent(self, function_name: str, since: float) -> RecentInvocations: ...
    def compact(self, before: float) -> int: ...
    def close(self) -> None: ...


class Metering:
    """Records invocations (an `InvocationObserver`) and answers usage questions.

    `call_later` and `executor` are the event loop's and a one-thread pool unless given
    (tests pass a hand-fired timer and an inline executor)."""

    def __init__(
        self,
        store: UsageStore,
        prices: PriceTable,
        *,
        clock: Callable[[], float] = time.time,
        flush_delay_s: float = FLUSH_DELAY_S,
        flush_batch: int = FLUSH_BATCH,
        call_later: Callable[[float, Callable[[], None]], asyncio.TimerHandle] | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        self.store = store
        self.prices = prices
        self.clock = clock
        self.flush_delay_s = flush_delay_s
        self.flush_batch = flush_batch
        self._call_later = call_later
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="corral-metering"
        )
        self._pending: list[tuple] = []
        self._timer: asyncio.TimerHandle | None = None
        self._stopping = asyncio.Event()

    # ---- the invoke path --------------------------------------------------------------

    def completed(
        self, config: FunctionConfig, kind: str, request_id: str, result: InvocationResult
    ) -> None:
        """Queue the record of one finished invocation. Never waits."""
        duration_ms = result.duration_ms
        self._pending.append(  # a row of corral.store.metering.RECORD_COLUMNS
            (
                self.clock(),
                config.name,
                config.version,
                request_id,
                kind,
                duration_ms,
                billed_ms(duration_ms, result.init_duration_ms),
                config.memory_mb,
                result.init_duration_ms,
                result.function_error,
            )
        )
        if len(self._pending) >= self.flush_batch:
            self.flush()
        elif self._timer is None:
            call_later = self._call_later or asyncio.get_running_loop().call_later
            self._timer = call_later(self.flush_delay_s, self.flush)

    def throttled(self, function_name: str, kind: str) -> None:
        """A throttled request is not billed."""

    # ---- writing ----------------------------------------------------------------------

    def flush(self) -> concurrent.futures.Future | None:
        """Hand the pending records to the writer thread now. Never waits."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return None
        batch, self._pending = self._pending, []
        future = self._executor.submit(self.store.insert, batch)
        future.add_done_callback(lambda f: self._written(f, batch))
        return future

    def _written(self, future: concurrent.futures.Future, batch: list[tuple]) -> None:
        # On the writer thread. A failed batch is logged and its records dropped: retrying
        # from this thread could only repeat the failure; they are still in the metrics.
        exc = future.exception()
        if exc is not None:
            log.error("could not store %d metering record(s)", len(batch), exc_info=exc)

    # ---- reading ----------------------------------------------------------------------

    async def _query(self, call: Callable[[], object]):
        self.flush()  # queued before the query on the same thread, so it sees them
        return await asyncio.wrap_future(self._executor.submit(call))

    async def usage(
        self, since: float | None, until: float, function_name: str | None
    ) -> tuple[dict[str, UsageLine], UsageLine]:
        """The bill of invocations finished in [since, until), per function and in total."""
        sums = await self._query(lambda: self.store.usage(since, until, function_name))
        return bill(sums, self.prices)

    async def stats(self, function_name: str, window_s: float) -> FunctionStats:
        """Invocations of the function finished in the last `window_s` seconds."""
        since = self.clock() - window_s
        return FunctionStats.of(await self._query(lambda: self.store.recent(function_name, since)))

    # ---- retention --------------------------------------------------------------------

    async def run_retention(
        self, retention_s: float, interval_s: float = RETENTION_INTERVAL_S
    ) -> None:
        """Roll the records older than `retention_s` up into hourly sums (the bill stays
        exact by the hour), at once and then every `interval_s`, until `stop`."""
        while not self._stopping.is_set():
            cutoff = self.clock() - retention_s
            try:
                rolled = await self._query(functools.partial(self.store.compact, cutoff))
            except Exception:
                log.exception("could not roll up old metering records")
            else:
                if rolled:
                    log.info("rolled %d metering record(s) up into hourly sums", rolled)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval_s)

    def stop(self) -> None:
        """End `run_retention`."""
        self._stopping.set()

    def close(self) -> None:
        """Write what is pending and wait for the writer; then close the store. Blocks."""
        self.flush()
        self._executor.shutdown(wait=True)
        self.store.close()
