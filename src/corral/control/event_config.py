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

import orjson
from sqlalchemy import Column, ForeignKey, String, Table, Text, delete, insert, select, update

from corral.control.aliases import AliasService
from corral.model import limits
from corral.model.arn import LATEST, Scope, parse_function_ref
from corral.model.errors import InvalidParameterValueException, ResourceNotFoundException
from corral.store.db import Database, metadata

event_invoke_configs = Table(
    "event_invoke_configs",
    metadata,
    Column("function_name", ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("qualifier", String(128), primary_key=True),
    Column("config", Text, nullable=False),
)

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
    def __init__(self, db: Database, aliases: AliasService, scope: Scope) -> None:
        self.engine = db.engine
        self.aliases = aliases
        self.functions = aliases.functions
        self.scope = scope
        self.functions.on_function_delete.append(self._forget)

    # ---- API ------------------------------------------------------------------------

    def put(self, name: str, qualifier: str | None, params: dict, merge: bool) -> dict:
        qualifier = self._check(name, qualifier)
        current = self._load(name, qualifier)
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
        with self.engine.begin() as conn:
            if current is None:
                conn.execute(
                    insert(event_invoke_configs).values(
                        function_name=name, qualifier=qualifier, config=orjson.dumps(record)
                    )
                )
            else:
                conn.execute(
                    update(event_invoke_configs)
                    .where(event_invoke_configs.c.function_name == name)
                    .where(event_invoke_configs.c.qualifier == qualifier)
                    .values(config=orjson.dumps(record))
                )
        return self._wire(name, qualifier, record)

    def get(self, name: str, qualifier: str | None) -> dict:
        qualifier = self._check(name, qualifier)
        record = self._load(name, qualifier)
        if record is None:
            raise ResourceNotFoundException(self._missing(name, qualifier))
        return self._wire(name, qualifier, record)

    def delete(self, name: str, qualifier: str | None) -> None:
        self.get(name, qualifier)
        with self.engine.begin() as conn:
            conn.execute(
                delete(event_invoke_configs)
                .where(event_invoke_configs.c.function_name == name)
                .where(event_invoke_configs.c.qualifier == (qualifier or LATEST))
            )

    def list(self, name: str, marker: str | None, max_items: int | None) -> tuple[list, str | None]:
        self.functions.get(name)
        limit = min(max_items or limits.LIST_MAX_ITEMS, limits.LIST_MAX_ITEMS)
        query = select(event_invoke_configs.c.qualifier, event_invoke_configs.c.config).where(
            event_invoke_configs.c.function_name == name
        )
        if marker:
            query = query.where(event_invoke_configs.c.qualifier > marker)
        query = query.order_by(event_invoke_configs.c.qualifier).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        items = [self._wire(name, q, orjson.loads(c)) for q, c in rows[:limit]]
        return items, (rows[limit - 1][0] if len(rows) > limit else None)

    # ---- for the dispatcher -----------------------------------------------------------

    def effective(self, name: str, qualifier: str | None) -> EventInvokeConfig:
        """The configuration an event of `name:qualifier` runs under (defaults if none)."""
        record = self._load(name, qualifier or LATEST)
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

    def _load(self, name: str, qualifier: str) -> dict | None:
        query = select(event_invoke_configs.c.config).where(
            event_invoke_configs.c.function_name == name,
            event_invoke_configs.c.qualifier == qualifier,
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return orjson.loads(row[0]) if row else None

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
        with self.engine.begin() as conn:
            conn.execute(
                delete(event_invoke_configs).where(event_invoke_configs.c.function_name == name)
            )
