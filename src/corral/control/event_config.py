"""Asynchronous invocation configuration per function version or alias: retries, maximum
event age, and destinations (PutFunctionEventInvokeConfig and friends).

Destinations Corral delivers to: another function (`arn:aws:lambda:...:function:NAME`, which
is invoked asynchronously with Lambda's destination record) and an HTTP(S) webhook, written
as `arn:aws:webhook:::https://host/path` so that it fits the model's DestinationArn pattern.
Other ARNs (SQS, SNS, EventBridge, S3) are refused until those services exist here.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from corral.control.aliases import AliasService
from corral.model import limits
from corral.model.arn import LATEST, Scope, parse_function_ref
from corral.model.errors import InvalidParameterValueException, ResourceNotFoundException
from corral.store.event_configs import EventConfigStore

MAX_RETRY_ATTEMPTS_DEFAULT = 2
MAX_EVENT_AGE_DEFAULT_S = 21600
_WEBHOOK = re.compile(r"arn:aws[a-zA-Z0-9-]*:webhook:::(https?://.+)")
_FUNCTION = re.compile(r"arn:aws[a-zA-Z0-9-]*:lambda:[^:]+:\d{12}:function:.+")


@dataclass(frozen=True, slots=True)
class Destination:
    target: str  # "function" or "webhook"
    address: str  # function reference (name[:qualifier]) or URL


@dataclass(frozen=True, slots=True)
class EventInvokeConfig:
    max_retry_attempts: int = MAX_RETRY_ATTEMPTS_DEFAULT
    max_event_age_s: int = MAX_EVENT_AGE_DEFAULT_S
    on_success: str | None = None  # destination ARNs as given
    on_failure: str | None = None


def parse_destination(arn: str, scope: Scope) -> Destination:
    if m := _WEBHOOK.fullmatch(arn):
        return Destination("webhook", m.group(1))
    if _FUNCTION.fullmatch(arn):
        ref = parse_function_ref(arn, scope)
        address = f"{ref.name}:{ref.qualifier}" if ref.qualifier else ref.name
        return Destination("function", address)
    raise InvalidParameterValueException(
        f"The destination ARN {arn} is not supported by Corral: use a function ARN or "
        "arn:aws:webhook:::https://host/path"
    )


class EventConfigService:
    def __init__(self, store: EventConfigStore, aliases: AliasService, scope: Scope) -> None:
        self.store = store
        self.aliases = aliases
        self.functions = aliases.functions
        self.scope = scope
        self.functions.on_function_delete.append(self._forget)

    # ---- API ------------------------------------------------------------------------

    def put(self, name: str, qualifier: str | None, params: dict, merge: bool) -> dict:
        qualifier = self._check(name, qualifier)
        current = self.store.load(name, qualifier)
        if merge and current is None:
            raise ResourceNotFoundException(self._missing(name, qualifier))
        record = dict(current or {}) if merge else {}
        for member in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
            if member in params:
                record[member] = params[member]
        if "DestinationConfig" in params:
            destinations = record.get("DestinationConfig", {}) if merge else {}
            for kind, value in (params["DestinationConfig"] or {}).items():
                arn = (value or {}).get("Destination")
                if arn:
                    self._check_destination(arn)
                    destinations[kind] = {"Destination": arn}
                else:
                    destinations.pop(kind, None)
            record["DestinationConfig"] = destinations
        record["LastModified"] = time.time()  # the model's Date: epoch seconds on the wire
        self.store.save(name, qualifier, record, create=current is None)
        return self._wire(name, qualifier, record)

    def get(self, name: str, qualifier: str | None) -> dict:
        qualifier = self._check(name, qualifier)
        record = self.store.load(name, qualifier)
        if record is None:
            raise ResourceNotFoundException(self._missing(name, qualifier))
        return self._wire(name, qualifier, record)

    def delete(self, name: str, qualifier: str | None) -> None:
        self.get(name, qualifier)
        self.store.delete(name, qualifier or LATEST)

    def list(self, name: str, marker: str | None, max_items: int | None) -> tuple[list, str | None]:
        self.functions.get(name)
        limit = min(max_items or limits.LIST_MAX_ITEMS, limits.LIST_MAX_ITEMS)
        rows = self.store.list(name, marker, limit + 1)
        items = [self._wire(name, qualifier, record) for qualifier, record in rows[:limit]]
        return items, (rows[limit - 1][0] if len(rows) > limit else None)

    # ---- for the dispatcher -----------------------------------------------------------

    def effective(self, name: str, qualifier: str | None) -> EventInvokeConfig:
        """The configuration an event of `name:qualifier` runs under (defaults if none)."""
        record = self.store.load(name, qualifier or LATEST)
        if record is None:
            return EventInvokeConfig()
        destinations = record.get("DestinationConfig", {})
        return EventInvokeConfig(
            max_retry_attempts=record.get("MaximumRetryAttempts", MAX_RETRY_ATTEMPTS_DEFAULT),
            max_event_age_s=record.get("MaximumEventAgeInSeconds", MAX_EVENT_AGE_DEFAULT_S),
            on_success=(destinations.get("OnSuccess") or {}).get("Destination"),
            on_failure=(destinations.get("OnFailure") or {}).get("Destination"),
        )

    # ---- helpers ----------------------------------------------------------------------

    def _check(self, name: str, qualifier: str | None) -> str:
        self.aliases.primary(name, qualifier)  # ResourceNotFoundException if absent
        return qualifier or LATEST

    def _check_destination(self, arn: str) -> None:
        destination = parse_destination(arn, self.scope)
        if destination.target == "function":
            ref = parse_function_ref(destination.address, self.scope)
            try:
                self.aliases.primary(ref.name, ref.qualifier)
            except ResourceNotFoundException:
                raise InvalidParameterValueException(
                    f"The destination function {arn} does not exist."
                ) from None

    def _wire(self, name: str, qualifier: str, record: dict) -> dict:
        wire = {
            "LastModified": record["LastModified"],
            "FunctionArn": self.scope.function_arn(name, qualifier),
            "MaximumRetryAttempts": record.get("MaximumRetryAttempts", MAX_RETRY_ATTEMPTS_DEFAULT),
            "MaximumEventAgeInSeconds": record.get(
                "MaximumEventAgeInSeconds", MAX_EVENT_AGE_DEFAULT_S
            ),
            "DestinationConfig": {
                kind: value for kind, value in record.get("DestinationConfig", {}).items()
            },
        }
        return wire

    def _missing(self, name: str, qualifier: str) -> str:
        return (
            f"The function {self.scope.function_arn(name, qualifier)} doesn't have an "
            "EventInvokeConfig"
        )

    def _forget(self, name: str) -> None:
        self.store.delete(name)
