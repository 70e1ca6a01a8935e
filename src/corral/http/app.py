"""The root ASGI application: lifespan, and dispatch by path prefix to each surface."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from corral.http.asgi import Receive, Scope, Send
from corral.http.corral_api import CorralApi
from corral.http.lambda_api import LambdaApi


class RootApp:
    def __init__(
        self,
        lambda_api: LambdaApi,
        corral_api: CorralApi,
        on_startup: Callable[[], Awaitable[None]],
        on_shutdown: Callable[[], Awaitable[None]],
    ) -> None:
        self.lambda_api = lambda_api
        self.corral_api = corral_api
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["path"].startswith("/corral/"):
                await self.corral_api(scope, receive, send)
            else:
                await self.lambda_api(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.on_startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
