"""The root ASGI application: dispatch by path to each surface (`/corral/...`, `/metrics`,
and Lambda's API for everything else). Requests for the HTTP front door (function URLs,
HTTP API routes: `corral.http.triggers`, matched by Host header or path prefix) go there
first, after CloudWatch Logs' `POST /` with `X-Amz-Target: Logs_20140328.*`."""

from __future__ import annotations

from corral.http.asgi import Receive, Scope, Send, header
from corral.http.corral_api import CorralApi
from corral.http.lambda_api import LambdaApi
from corral.http.logs_api import TARGET_PREFIX as LOGS_TARGET_PREFIX
from corral.http.logs_api import LogsApi
from corral.http.metrics_api import MetricsApi
from corral.http.server import MAX_BODY_BYTES
from corral.http.triggers import HttpTriggers
from corral.model import limits


class RootApp:
    def __init__(
        self,
        lambda_api: LambdaApi,
        corral_api: CorralApi,
        metrics: MetricsApi,
        triggers: HttpTriggers | None = None,
        logs_api: LogsApi | None = None,
    ) -> None:
        self.lambda_api = lambda_api
        self.corral_api = corral_api
        self.metrics = metrics
        self.triggers = triggers
        self.logs_api = logs_api

    def fast_path(self, method, path, query, headers, body, respond) -> bool:
        """See `corral.http.server`: only the Lambda API has one (warm invokes). A function
        URL whose path looks like an Invoke (host-based, any path is the function's) is
        left to the ASGI path, which gives it to the front door."""
        if self.triggers is not None and "/invocations" in path and _function_url_host(headers):
            return False
        return self.lambda_api.fast_path(method, path, query, headers, body, respond)

    def body_limit(self, path: str, headers: list[tuple[bytes, bytes]]) -> int:
        """See `corral.http.server`: the most body bytes a request can use here. The front
        door takes Lambda's 6 MB invoke payload at most; the server keeps no more than
        that (plus one byte, so the 413 is still the front door's own)."""
        scope = {"path": path, "headers": headers, "method": ""}
        if self.triggers is not None and self.triggers.claim(scope) is not None:
            return limits.SYNC_REQUEST_MAX_BYTES
        return MAX_BODY_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.triggers is not None and (handler := self.triggers.claim(scope)) is not None:
            await handler(scope, receive, send)
        elif scope["path"].startswith("/corral/"):
            await self.corral_api(scope, receive, send)
        elif scope["path"] == "/metrics":
            await self.metrics(scope, receive, send)
        elif scope["path"] == "/" and self.logs_api and (target := _logs_target(scope)):
            await self.logs_api(scope, receive, send, target)
        else:
            await self.lambda_api(scope, receive, send)


def _function_url_host(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"host":  # host names are case-insensitive, as in `HttpTriggers.claim`
            value = value.lower()
            return b".lambda-url." in value or value.startswith(b"api.localhost")
    return False


def _logs_target(scope: Scope) -> str | None:
    """The X-Amz-Target of a CloudWatch Logs call (`Logs_20140328.<Operation>`), if it is one."""
    if scope["method"] != "POST":
        return None
    value = header(scope, b"x-amz-target")
    if value is None or not value.startswith(LOGS_TARGET_PREFIX.encode()):
        return None
    return value.decode("latin-1")
