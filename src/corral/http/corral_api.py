"""Corral's own endpoints under /corral/v1 (not part of Lambda's API):

GET /corral/v1/health                         readiness and environment counts
GET /corral/v1/runtimes                       runtime -> what runs it on this host
GET /corral/v1/code/<hexdigest>.zip           a stored code package (GetFunction's Code.Location)
GET /corral/v1/functions/<name>/logs?offset=N[&wait_s=S]
      the function's log from byte offset N; `X-Corral-Next-Offset` says where to go on;
      with wait_s, long-polls up to S seconds (at most 30) for new output.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qsl

import orjson

from corral.control.functions import FunctionService
from corral.fleet.pool import Fleet
from corral.fleet.runtimes import RuntimeCatalogue
from corral.http.asgi import Receive, Scope, Send, send_response
from corral.http.errors import render_error
from corral.model.errors import InvalidParameterValueException, ResourceNotFoundException
from corral.telemetry.logs import FunctionLogs

_CODE = re.compile(r"/corral/v1/code/([0-9a-f]{64})\.zip")
_LOGS = re.compile(r"/corral/v1/functions/([A-Za-z0-9_-]{1,64})/logs")
MAX_WAIT_S = 30.0


class CorralApi:
    def __init__(
        self,
        functions: FunctionService,
        fleet: Fleet,
        logs: FunctionLogs,
        runtimes: RuntimeCatalogue,
        queue_stats: Callable[[], dict],
    ) -> None:
        self.queue_stats = queue_stats
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
        raise ResourceNotFoundException(f"No such Corral endpoint: GET {path}")

    @staticmethod
    def _log_query(query: str) -> tuple[int, float]:
        values = dict(parse_qsl(query))
        try:
            offset = int(values.get("offset", 0))
            wait_s = min(float(values.get("wait_s", 0)), MAX_WAIT_S)
        except ValueError:
            raise InvalidParameterValueException("offset and wait_s must be numbers") from None
        if offset < 0 or wait_s < 0:
            raise InvalidParameterValueException("offset and wait_s must not be negative")
        return offset, wait_s
