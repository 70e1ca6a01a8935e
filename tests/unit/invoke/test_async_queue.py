"""The dispatcher's rules, against fakes of the queue, the invoker and the configuration."""

from __future__ import annotations

import asyncio
import json
import time

from corral.background import Supervisor
from corral.control.event_config import EventInvokeConfig
from corral.invoke.async_queue import EventDispatcher
from corral.model.arn import Scope
from corral.model.errors import TooManyRequestsException
from corral.model.function import FunctionConfig
from corral.model.invocation import InvocationResult
from corral.store.queue import QueuedEvent

WEBHOOK = "arn:aws:webhook:::http://127.0.0.1:1/hook"
CONFIG = FunctionConfig(
    name="f",
    role="r",
    runtime="python3.11",
    handler="app.handler",
    code_sha256="x",
    code_hexdigest="0" * 64,
    code_size=1,
)


class FakeQueue:
    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.put_events: list = []
        self.completed: list[int] = []
        self.rescheduled: list[tuple[int, int, float]] = []

    def put(self, event) -> None:
        self.put_events.append(event)

    def complete(self, event_id: int) -> None:
        self.completed.append(event_id)

    def reschedule(self, event_id: int, attempts: int, not_before: float) -> None:
        self.rescheduled.append((event_id, attempts, not_before))


class FakeInvoker:
    def __init__(self, outcome) -> None:
        self.outcome = outcome
        self.runs = 0

    def invocation(self, config, request):
        return request

    async def run_queued(self, config, inv):
        self.runs += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class FakeAliases:
    def resolve(self, name, qualifier):
        return CONFIG


class FakeConfigs:
    def __init__(self, settings: EventInvokeConfig) -> None:
        self.settings = settings

    def effective(self, name, qualifier):
        return self.settings


def _deliver(outcome, settings: EventInvokeConfig, age_s: float = 0.0, attempts: int = 0):
    queue, invoker = FakeQueue(), FakeInvoker(outcome)
    dispatcher = EventDispatcher(
        queue, invoker, FakeAliases(), FakeConfigs(settings), Scope(), (60.0, 120.0), Supervisor()
    )
    dispatcher.running = 1
    event = QueuedEvent(
        7, "req", "function", "f", None, b'{"a":1}', None, time.time() - age_s, attempts
    )
    asyncio.run(dispatcher._deliver(event))
    return queue, invoker


def test_an_event_older_than_its_maximum_age_is_dropped_to_on_failure():
    queue, invoker = _deliver(
        InvocationResult(b"1"), EventInvokeConfig(max_event_age_s=60, on_failure=WEBHOOK), 61
    )
    assert invoker.runs == 0
    assert queue.completed == [7]
    (record,) = queue.put_events
    assert json.loads(record.payload)["requestContext"]["condition"] == "EventAgeExceeded"
    assert "responseContext" not in json.loads(record.payload)


def test_a_function_error_is_retried_after_the_first_delay():
    before = time.time()
    queue, _ = _deliver(InvocationResult(b"{}", "Unhandled"), EventInvokeConfig())
    ((event_id, attempts, not_before),) = queue.rescheduled
    assert (event_id, attempts) == (7, 1)
    assert 60 <= not_before - before < 61
    assert queue.completed == []


def test_the_last_allowed_attempt_completes_the_event():
    queue, _ = _deliver(
        InvocationResult(b"{}", "Unhandled"), EventInvokeConfig(max_retry_attempts=2), attempts=2
    )
    assert queue.completed == [7]
    assert queue.rescheduled == []


def test_a_throttled_attempt_does_not_count():
    throttled = TooManyRequestsException("Rate Exceeded.", "ConcurrentInvocationLimitExceeded")
    queue, _ = _deliver(throttled, EventInvokeConfig(), attempts=1)
    ((_, attempts, _),) = queue.rescheduled
    assert attempts == 1
