"""The root ASGI application: dispatch by path to each surface (`/corral/...`, `/metrics`,
CloudWatch Logs' `POST /` with `X-Amz-Target: Logs_20140328.*`, and Lambda's API for
everything else)."""

from __future__ import annotations

from corral.http.asgi import Receive, Scope, Send, header
from corral.http.corral_api import CorralApi
from corral.http.lambda_api import LambdaApi
from corral.http.logs_api import TARGET_PREFIX as LOGS_TARGET_PREFIX
from corral.http.logs_api import LogsApi
from corral.http.metrics_api import MetricsApi


class RootApp:
    def __init__(
        self,
        lambda_api: LambdaApi,
        corral_api: CorralApi,
        metrics: MetricsApi,
        logs_api: LogsApi | None = None,
    ) -> None:
        self.lambda_api = lambda_api
        self.corral_api = corral_api
        self.metrics = metrics
        self.logs_api = logs_api

    def fast_path(self, method, path, query, headers, body, respond) -> bool:
        """See `corral.http.server`: only the Lambda API has one (warm invokes)."""
        return self.lambda_api.fast_path(method, path, query, headers, body, respond)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].startswith("/corral/"):
            await self.corral_api(scope, receive, send)
        elif scope["path"] == "/metrics":
            await self.metrics(scope, receive, send)
        elif scope["path"] == "/" and self.logs_api and (target := _logs_target(scope)):
            await self.logs_api(scope, receive, send, target)
        else:
            await self.lambda_api(scope, receive, send)


def _logs_target(scope: Scope) -> str | None:
    """The X-Amz-Target of a CloudWatch Logs call (`Logs_20140328.<Operation>`), if it is one."""
    if scope["method"] != "POST":
        return None
    value = header(scope, b"x-amz-target")
    if value is None or not value.startswith(LOGS_TARGET_PREFIX.encode()):
        return None
    return value.decode("latin-1")
