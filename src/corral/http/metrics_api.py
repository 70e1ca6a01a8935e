"""GET /metrics: the Prometheus text format (version 0.0.4) of one registry.

The registry belongs to the composition root; its collectors read their state when
scraped, on the event loop thread.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from corral.http.asgi import Receive, Scope, Send, send_response
from corral.http.errors import render_error
from corral.model.errors import ResourceNotFoundException

_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4.encode()


class MetricsApi:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            exc = ResourceNotFoundException(f"No such endpoint: {scope['method']} /metrics")
            await send_response(send, *render_error(exc, "metrics"))
            return
        body = generate_latest(self.registry)
        headers = [(b"content-type", _CONTENT_TYPE), (b"content-length", str(len(body)).encode())]
        await send_response(send, 200, headers, b"" if scope["method"] == "HEAD" else body)
