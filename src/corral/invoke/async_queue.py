"""The dispatcher of asynchronous work: drains the durable queue into environments and
destinations, with Lambda's retry rules.

Lambda developer guide, "Asynchronous invocation": a function error (including a timeout)
is retried MaximumRetryAttempts times (default 2), one minute and then two minutes apart
(Corral's delays are configurable); a throttled attempt is retried without counting; an
event older than MaximumEventAgeInSeconds is dropped. Success goes to OnSuccess; retries
exhausted or age exceeded go to OnFailure and the function's dead-letter target. Function
destinations are themselves queued Event invocations; webhooks are POSTed (3 tries).
Delivery is at least once: an event whose work was cut short by a crash runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from corral.background import Supervisor
from corral.control.aliases import AliasService
from corral.control.event_config import EventConfigService, EventInvokeConfig, parse_destination
from corral.invoke.service import InvokeRequest, InvokeService
from corral.model.arn import Scope, parse_function_ref
from corral.model.destination import (
    EVENT_AGE_EXCEEDED,
    RETRIES_EXHAUSTED,
    SUCCESS,
    destination_record,
)
from corral.model.errors import ResourceNotFoundException, TooManyRequestsException
from corral.model.function import FunctionConfig
from corral.model.invocation import InvocationResult, new_request_id
from corral.store.queue import EventQueue, NewEvent, QueuedEvent

log = logging.getLogger("corral.invoke")

MAX_RUNNING = 16  # queued deliveries in flight at once (each may hold an environment)
THROTTLE_RETRY_S = 1.0
WEBHOOK_ATTEMPTS = 3
WEBHOOK_TIMEOUT_S = 10.0
LEASE_MARGIN_S = 60.0


class EventDispatcher:
    def __init__(
        self,
        queue: EventQueue,
        invoker: InvokeService,
        aliases: AliasService,
        configs: EventConfigService,
        scope: Scope,
        retry_delays_s: tuple[float, ...],
        background: Supervisor,
    ) -> None:
        self.queue = queue
        self.invoker = invoker
        self.aliases = aliases
        self.configs = configs
        self.scope = scope
        self.retry_delays_s = retry_delays_s
        self.background = background
        self.running = 0
        self._stopping = False
        # Built now, at start-up: it loads the CA bundle (~50 ms here), which would stall
        # the event loop if it happened at the first webhook delivery.
        self._http = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S)

    # ---- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Lease due events while there is room, and sleep until more can be done."""
        while not self._stopping:
            self.queue.changed.clear()
            room = MAX_RUNNING - self.running
            events = self.queue.lease(room, 900 + LEASE_MARGIN_S) if room > 0 else []
            for event in events:
                self.running += 1
                self.background.start(self._deliver(event), f"deliver {event.request_id}")
            if events and len(events) == room:
                await self.queue.changed.wait()  # a delivery ends or an event arrives
                continue
            due = self.queue.next_due()
            timeout = None if due is None else max(0.0, due - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.changed.wait(), timeout)

    def stop(self) -> None:
        """Lease nothing more; running deliveries are drained by the owner's supervisor,
        then `close` releases the HTTP client."""
        self._stopping = True
        self.queue.changed.set()

    async def close(self) -> None:
        await self._http.aclose()

    async def _deliver(self, event: QueuedEvent) -> None:
        try:
            if event.target == "webhook":
                await self._post(event)
            else:
                await self._invoke(event)
        except Exception:
            log.exception("delivery of %s failed; retrying later", event.request_id)
            self.queue.reschedule(event.id, event.attempts, time.time() + THROTTLE_RETRY_S)
        finally:
            self.running -= 1
            self.queue.changed.set()

    # ---- function events --------------------------------------------------------------

    async def _invoke(self, event: QueuedEvent) -> None:
        name, qualifier = event.destination, event.qualifier
        try:
            config = self.aliases.resolve(name, qualifier)
        except ResourceNotFoundException:
            log.warning("dropping event %s: %s no longer exists", event.request_id, name)
            self.queue.complete(event.id)
            return
        settings = self.configs.effective(name, qualifier)
        if time.time() - event.enqueued_at > settings.max_event_age_s:
            self._failed(event, config, settings, EVENT_AGE_EXCEEDED, None)
            return
        request = InvokeRequest(
            name, qualifier, event.payload, event.request_id, "Event", trace_header=event.trace_id
        )
        try:
            result = await self.invoker.run_queued(config, self.invoker.invocation(config, request))
        except TooManyRequestsException:
            self.queue.reschedule(event.id, event.attempts, time.time() + THROTTLE_RETRY_S)
            return
        attempts = event.attempts + 1
        if result.function_error is None:
            if settings.on_success:
                record = self._record(event, config, SUCCESS, attempts, result)
                self._send(settings.on_success, record)
            self.queue.complete(event.id)
        elif attempts <= settings.max_retry_attempts:
            delay = self.retry_delays_s[min(attempts, len(self.retry_delays_s)) - 1]
            self.queue.reschedule(event.id, attempts, time.time() + delay)
        else:
            self._failed(event, config, settings, RETRIES_EXHAUSTED, result, attempts)

    def _failed(
        self,
        event: QueuedEvent,
        config: FunctionConfig,
        settings: EventInvokeConfig,
        condition: str,
        result: InvocationResult | None,
        attempts: int | None = None,
    ) -> None:
        count = attempts if attempts is not None else event.attempts
        log.warning("event %s of %s failed: %s", event.request_id, config.name, condition)
        if settings.on_failure:
            self._send(settings.on_failure, self._record(event, config, condition, count, result))
        if config.dead_letter_target_arn:
            self._send(config.dead_letter_target_arn, event.payload)  # the event, as sent
        self.queue.complete(event.id)

    def _record(
        self,
        event: QueuedEvent,
        config: FunctionConfig,
        condition: str,
        count: int,
        result: InvocationResult | None,
    ) -> bytes:
        return destination_record(
            event.request_id,
            self.scope.function_arn(config.name, event.qualifier or config.version),
            condition,
            count,
            event.payload,
            config.version if result is not None else None,
            result.payload if result is not None else None,
            result.function_error if result is not None else None,
        )

    def _send(self, arn: str, payload: bytes) -> None:
        """Queue a delivery to a destination: durable like the event that caused it."""
        destination = parse_destination(arn, self.scope)
        qualifier = None
        address = destination.address
        if destination.target == "function":
            ref = parse_function_ref(address, self.scope)
            address, qualifier = ref.name, ref.qualifier
        self.queue.put(NewEvent(new_request_id(), destination.target, address, payload, qualifier))

    # ---- webhooks ---------------------------------------------------------------------

    async def _post(self, event: QueuedEvent) -> None:
        try:
            response = await self._http.post(
                event.destination,
                content=event.payload,
                headers={"content-type": "application/json"},
            )
            delivered = response.is_success
        except httpx.HTTPError as exc:
            log.warning("webhook %s: %s", event.destination, exc)
            delivered = False
        attempts = event.attempts + 1
        if delivered or attempts >= WEBHOOK_ATTEMPTS:
            if not delivered:
                log.warning("giving up on webhook %s after %d tries", event.destination, attempts)
            self.queue.complete(event.id)
        else:
            self.queue.reschedule(event.id, attempts, time.time() + 2.0**attempts)
