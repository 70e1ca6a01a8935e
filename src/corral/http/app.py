"""The root ASGI application: dispatch by path to each surface (`/corral/...`, `/metrics`,
and Lambda's API for everything else)."""

from __future__ import annotations

from corral.http.asgi import Receive, Scope, Send
from corral.http.corral_api import CorralApi
from corral.http.lambda_api import LambdaApi
from corral.http.metrics_api import MetricsApi


class RootApp:
    def __init__(self, lambda_api: LambdaApi, corral_api: CorralApi, metrics: MetricsApi) -> None:
        self.lambda_api = lambda_api
        self.corral_api = corral_api
        self.metrics = metrics

    def fast_path(self, method, path, query, headers, body, respond) -> bool:
        """See `corral.http.server`: only the Lambda API has one (warm invokes)."""
        return self.lambda_api.fast_path(method, path, query, headers, body, respond)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].startswith("/corral/"):
            await self.corral_api(scope, receive, send)
        elif scope["path"] == "/metrics":
            await self.metrics(scope, receive, send)
        else:
            await self.lambda_api(scope, receive, send)
