"""Corral's own endpoints under /corral/v1 (not part of Lambda's API):

GET /corral/v1/health                         readiness and environment counts
GET /corral/v1/runtimes                       runtime -> what runs it on this host
GET /corral/v1/code/<hexdigest>.zip           a stored code package (GetFunction's Code.Location)
GET /corral/v1/functions/<name>/logs?offset=N[&wait_s=S]
      the function's log lines (all its streams) after cursor N (0: from the start);
      `X-Corral-Next-Offset` is the cursor to go on from; with wait_s, long-polls up to S
      seconds (at most 30) for new lines.
GET /corral/v1/functions/<name>/stats[?window_s=S]
      invocations, errors, p50/p99 duration and cold starts of the last S (3600) seconds.
GET /corral/v1/usage[?since=ISO&until=ISO&function=NAME]
      the bill of invocations finished in [since, until) (default: all until now), per
      function and in total; a time without a zone is UTC.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import orjson

from corral.control.functions import FunctionService
from corral.fleet.pool import Fleet
from corral.fleet.runtimes import RuntimeCatalogue
from corral.http.asgi import Receive, Scope, Send, send_response
from corral.http.errors import render_error
from corral.model.errors import InvalidParameterValueException, ResourceNotFoundException
from corral.telemetry.logs import FunctionLogs
from corral.telemetry.metering import Metering

_CODE = re.compile(r"/corral/v1/code/([0-9a-f]{64})\.zip")
_LOGS = re.compile(r"/corral/v1/functions/([A-Za-z0-9_-]{1,64})/logs")
_STATS = re.compile(r"/corral/v1/functions/([A-Za-z0-9_-]{1,64})/stats")
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_WAIT_S = 30.0
OFFSET_MAX = (1 << 63) - 1  # log cursors are SQLite row ids: signed 64 bits
STATS_WINDOW_S = 3600.0


class CorralApi:
    def __init__(
        self,
        functions: FunctionService,
        fleet: Fleet,
        logs: FunctionLogs,
        runtimes: RuntimeCatalogue,
        queue_stats: Callable[[], dict],
        metering: Metering,
    ) -> None:
        self.queue_stats = queue_stats
        self.metering = metering
        self.functions = functions
        self.fleet = fleet
        self.logs = logs
        self.runtimes = runtimes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, content_type, body, extra = await self._handle(scope)
        except Exception as exc:
            await send_response(send, *render_error(exc, "corral"))
            return
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send_response(send, status, headers + extra, body)

    async def _handle(self, scope: Scope) -> tuple[int, bytes, bytes, list]:
        path = scope["path"]
        if scope["method"] != "GET":
            raise ResourceNotFoundException(f"No such Corral endpoint: {scope['method']} {path}")
        if path == "/corral/v1/health":
            counts: dict[str, int] = {}
            for env in self.fleet.environments():
                counts[env.state.value] = counts.get(env.state.value, 0) + 1
            body = orjson.dumps({"status": "ok", "environments": counts})
            return 200, b"application/json", body, []
        if path == "/corral/v1/queue":
            return 200, b"application/json", orjson.dumps(self.queue_stats()), []
        if path == "/corral/v1/runtimes":
            return 200, b"application/json", orjson.dumps(self.runtimes.describe()), []
        if m := _CODE.fullmatch(path):
            blob = self.functions.code.blob_path(m.group(1))
            if not blob.is_file():
                raise ResourceNotFoundException("No such code package")
            return 200, b"application/zip", blob.read_bytes(), []
        if m := _LOGS.fullmatch(path):
            name = m.group(1)
            self.functions.get(name)
            offset, wait_s = self._log_query(scope["query_string"].decode("latin-1"))
            data, next_offset = await self.logs.read(name, offset, wait_s)
            extra = [(b"x-corral-next-offset", str(next_offset).encode())]
            return 200, b"text/plain; charset=utf-8", data, extra
        if m := _STATS.fullmatch(path):
            name = m.group(1)
            self.functions.get(name)
            window_s = _stats_query(scope["query_string"].decode("latin-1"))
            stats = await self.metering.stats(name, window_s)
            body = orjson.dumps({"function": name, "window_s": window_s, **stats.as_json()})
            return 200, b"application/json", body, []
        if path == "/corral/v1/usage":
            since, until, name = _usage_query(scope["query_string"].decode("latin-1"))
            lines, total = await self.metering.usage(since, until, name)
            prices = self.metering.prices
            body = {
                "since": _iso(since) if since is not None else None,
                "until": _iso(until),
                "prices": {
                    "gb_second_usd": prices.gb_second_usd,
                    "million_requests_usd": prices.million_requests_usd,
                },
                "functions": [{"function": n, **line.as_json()} for n, line in lines.items()],
                "totals": total.as_json(),
            }
            return 200, b"application/json", orjson.dumps(body), []
        raise ResourceNotFoundException(f"No such Corral endpoint: GET {path}")

    @staticmethod
    def _log_query(query: str) -> tuple[int, float]:
        values = dict(parse_qsl(query))
        try:
            offset = int(values.get("offset", 0))
            wait_s = min(float(values.get("wait_s", 0)), MAX_WAIT_S)
        except ValueError:
            raise InvalidParameterValueException("offset and wait_s must be numbers") from None
        if math.isnan(wait_s):
            raise InvalidParameterValueException("wait_s must be a number of seconds")
        if offset < 0 or wait_s < 0:
            raise InvalidParameterValueException("offset and wait_s must not be negative")
        if offset > OFFSET_MAX:
            raise InvalidParameterValueException(f"offset must not be over {OFFSET_MAX}")
        return offset, wait_s


def _stats_query(query: str) -> float:
    values = dict(parse_qsl(query))
    try:
        window_s = float(values.get("window_s", STATS_WINDOW_S))
    except ValueError:
        raise InvalidParameterValueException("window_s must be a number of seconds") from None
    if not 0 < window_s < math.inf:  # NaN and infinity too
        raise InvalidParameterValueException("window_s must be a positive, finite number")
    return window_s


def _usage_query(query: str) -> tuple[float | None, float, str | None]:
    values = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(values) - {"since", "until", "function"})
    if unknown:
        raise InvalidParameterValueException(
            f"Unknown query parameter {unknown[0]!r}: expected since, until, function"
        )
    since = _timestamp(values["since"], "since") if "since" in values else None
    until = _timestamp(values["until"], "until") if "until" in values else None
    if since is not None and until is not None and since > until:
        raise InvalidParameterValueException(
            f"since ({values['since']}) must not be after until ({values['until']})"
        )
    name = values.get("function")
    if name is not None and not _FUNCTION_NAME.fullmatch(name):
        raise InvalidParameterValueException(
            f"function must be a function name of 1-64 letters, digits, - and _: {name!r}"
        )
    return since, time.time() if until is None else until, name


def _timestamp(text: str, parameter: str) -> float:
    """An ISO 8601 date or date-time as epoch seconds; no zone means UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameterValueException(
            f"{parameter} must be an ISO 8601 date or time, such as 2026-01-31T12:00:00Z: {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")
