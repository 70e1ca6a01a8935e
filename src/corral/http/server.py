"""Corral's HTTP/1.1 front door: a lean server for ASGI apps, built on httptools.

Why not uvicorn: measured here, a bare uvicorn+httptools app answers in 0.18 ms p50 where
an httptools protocol answers in 0.044 ms; the invoke path crosses HTTP three times and
has a 0.3 ms budget (DESIGN.md section 6). This server keeps what Corral needs and no more:
- ASGI `http` scopes only; the request body is read whole before the app runs (the apps
  enforce their own limits; MAX_BODY_BYTES bounds everything), so `receive` answers once
  with the body, then with `http.disconnect` when the client has gone or the response
  is complete;
- a whole response (one `http.response.body`) goes out with its head in one write;
  keep-alive and pipelining (requests on one connection are answered in order, reading
  pauses while one is running);
- streamed responses (`more_body=True`): each body message is written at once, framed
  with `Transfer-Encoding: chunked` unless the app gave a Content-Length; `send` waits
  while the transport's write buffer is over its high-water mark (backpressure), and
  raises ClientDisconnected (an OSError, as ASGI asks) once the client has gone;
- `Expect: 100-continue`, an idle keep-alive timeout, 400 for unparsable requests,
  413 for oversized ones, 500 when an app fails before it started its response;
- graceful shutdown: stop accepting, close idle connections, wait for running requests;
- an optional synchronous `fast_path` of the app, tried before the ASGI call (no task, no
  scope): the warm invoke path uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import httptools

from corral.http.asgi import Message

log = logging.getLogger("corral.http")

App = Callable[
    [dict, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

MAX_BODY_BYTES = 80 * 1024 * 1024  # above Lambda's largest request (CreateFunction, 69.9 MB)
KEEP_ALIVE_S = 75.0
_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in HTTPStatus
}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _plain(status: int, close: bool = True) -> bytes:
    body = HTTPStatus(status).phrase.encode()
    return (
        _STATUS_LINES[status]
        + b"content-type: text/plain\r\ncontent-length: "
        + str(len(body)).encode()
        + (b"\r\nconnection: close" if close else b"")
        + b"\r\n\r\n"
        + body
    )


class ClientDisconnected(OSError):
    """The client closed its connection while a response was being streamed to it."""


class _Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "url")

    def __init__(self, method: str, url: bytes, headers: list, body: bytes, keep_alive: bool):
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class HttpConnection(asyncio.Protocol):
    """One client connection. Requests are answered one at a time, in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[_Request] = deque()
        self.running = False
        self.paused = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self.last_active = 0.0
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._too_large = False
        self.client: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None
        # streamed responses: flow control of the transport, the responder of the running
        # request (told when the client goes), and a send waiting for the buffer to drain
        self.write_paused = False
        self.responder: _Responder | None = None
        self._drain: asyncio.Future[None] | None = None

    # ---- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.client = tuple(peer[:2]) if peer else None  # type: ignore[assignment]
        own = transport.get_extra_info("sockname")
        self.local = tuple(own[:2]) if own else None  # type: ignore[assignment]
        self.server.connections.add(self)
        self.last_active = self.loop.time()
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None
        self.queue.clear()
        if self.idle_timer:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ClientDisconnected("the client closed the connection"))
        if self.responder is not None:
            self.responder.disconnected()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drain(self) -> None:
        """Wait until the transport takes more (ClientDisconnected if the client is gone)."""
        if self.transport is None:
            raise ClientDisconnected("the client closed the connection")
        if self.write_paused:
            self._drain = self.loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:  # httptools wraps errors raised in callbacks
            self._abort(413 if self._too_large else 400)

    # ---- httptools callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self._headers.append((name, value))
        if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
            self._too_large = True
            raise _TooLarge
        if name == b"expect" and value.lower() == b"100-continue" and self.transport:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_BODY_BYTES:
            self._too_large = True
            raise _TooLarge
        self._body.append(body)

    def on_message_complete(self) -> None:
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        request = _Request(
            self.parser.get_method().decode("ascii"),
            self._url,
            self._headers,
            body,
            self.parser.should_keep_alive(),
        )
        if self.running:
            self.queue.append(request)
            if not self.paused and self.transport:
                self.paused = True
                self.transport.pause_reading()
        else:
            self._start(request)

    # ---- requests -----------------------------------------------------------------

    def _start(self, request: _Request) -> None:
        self.running = True
        self.server.running += 1
        fast_path = self.server.fast_path
        if fast_path is not None:
            path, _, query = request.url.partition(b"?")
            respond = functools.partial(self._respond, request)
            if fast_path(
                request.method, _unquote(path), query, request.headers, request.body, respond
            ):
                return
        task = self.loop.create_task(self._run(request))
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    def _respond(self, request: _Request, status: int, headers: list, body: bytes) -> None:
        """The fast path's answer: one write, then on to the next request."""
        head = [_STATUS_LINES[status]]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        head += (b"\r\n", body)
        self._end(request, b"".join(head))

    async def _run(self, request: _Request) -> None:
        path, _, query = request.url.partition(b"?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": "http",
            "path": _unquote(path),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": request.headers,
            "client": self.client,
            "server": self.local,
        }
        responder = self.responder = _Responder(request.body, self)
        try:
            await self.server.app(scope, responder.receive, responder.send)
        except Exception as exc:
            if responder.streaming:  # too late for a 500: cut the response short
                if not isinstance(exc, ClientDisconnected):
                    log.exception("request %s %s failed mid-stream", request.method, scope["path"])
                self._cut(request)
                return
            log.exception("request %s %s failed", request.method, scope["path"])
            self._end(request, _plain(500, close=False))
            return
        finally:
            self.responder = None
        if not responder.done:
            if responder.streaming:
                if self.transport is not None:
                    log.error("app returned before the end of its stream to %s", scope["path"])
                self._cut(request)
                return
            log.error("app returned without a complete response to %s", scope["path"])
            self._end(request, _plain(500, close=False))
            return
        self._end(request, responder.output)

    def _cut(self, request: _Request) -> None:
        """End a streamed response that cannot finish: closing tells the client it is
        incomplete (no terminating chunk)."""
        if self.transport is not None:
            self.transport.close()
        self._end(request, b"")

    def _end(self, request: _Request, output: bytes) -> None:
        if self.transport and output:
            self.transport.write(output)
        self.running = False
        self.server.request_finished()
        if self.transport is None:
            return
        if not request.keep_alive or self.server.stopping:
            self.transport.close()
            return
        if self.queue:
            self._start(self.queue.popleft())
            return
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        self.last_active = self.loop.time()

    def _arm_idle_timer(self) -> None:
        # One timer per connection, not per request: on firing it closes the connection
        # if it has been idle long enough, or re-arms itself for the rest.
        when = self.last_active + KEEP_ALIVE_S
        self.idle_timer = self.loop.call_at(when, self.close_if_idle)

    def close_if_idle(self) -> None:
        self.idle_timer = None
        if self.transport is None:
            return
        if self.running or self.last_active + KEEP_ALIVE_S > self.loop.time():
            self._arm_idle_timer()
        else:
            self.transport.close()

    def _abort(self, status: int | None) -> None:
        if self.transport:
            if status is not None:
                self.transport.write(_plain(status))
            self.transport.close()


class _TooLarge(Exception):
    pass


class _Responder:
    """ASGI receive/send for one request: the whole body in; the response out whole, in
    one write, or streamed (one write per body message)."""

    __slots__ = ("body", "chunked", "conn", "done", "head", "output", "streaming", "waiter")

    def __init__(self, body: bytes, conn: HttpConnection) -> None:
        self.body = body
        self.conn = conn
        self.head: list[bytes] | None = None
        self.output = b""
        self.done = False
        self.streaming = False
        self.chunked = False
        self.waiter: asyncio.Future[None] | None = None

    async def receive(self) -> Message:
        if self.body is None:
            # After the body: wait until the client goes or the response is complete.
            if not self.done and self.conn.transport is not None:
                if self.waiter is None:
                    self.waiter = self.conn.loop.create_future()
                await asyncio.shield(self.waiter)  # one cancelled receive ends no other
            return {"type": "http.disconnect"}
        body, self.body = self.body, None
        return {"type": "http.request", "body": body, "more_body": False}

    def disconnected(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            head = [_STATUS_LINES[message["status"]]]
            for name, value in message.get("headers", ()):
                head += (name, b": ", value, b"\r\n")
            self.head = head
        elif kind == "http.response.body":
            if self.head is None:
                raise RuntimeError("response body before response start")
            body = message.get("body", b"")
            if self.streaming or message.get("more_body"):
                await self._stream(body, bool(message.get("more_body")))
                return
            self.head.append(b"\r\n")
            self.head.append(body)
            self.output = b"".join(self.head)
            self.done = True
            self.disconnected()

    async def _stream(self, body: bytes, more: bool) -> None:
        if self.done:
            raise RuntimeError("response already complete")
        conn = self.conn
        if conn.transport is None:
            raise ClientDisconnected("the client closed the connection")
        out: list[bytes] = []
        if not self.streaming:
            self.streaming = True
            out = self.head  # type: ignore[assignment]
            # Chunked framing unless the app announced the length itself.
            names = {out[i].lower() for i in range(1, len(out), 4)}
            self.chunked = b"content-length" not in names
            if self.chunked and b"transfer-encoding" not in names:
                out.append(b"transfer-encoding: chunked\r\n")
            out.append(b"\r\n")
        if body:
            if self.chunked:
                out += (b"%x\r\n" % len(body), body, b"\r\n")
            else:
                out.append(body)
        if not more:
            if self.chunked:
                out.append(b"0\r\n\r\n")
            self.done = True
            self.disconnected()
        if out:
            conn.transport.write(b"".join(out))
        if conn.write_paused:
            await conn.drain()


def _unquote(path: bytes) -> str:
    if b"%" not in path:
        return path.decode("latin-1")
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(path).decode("utf-8", "replace")


class HttpServer:
    def __init__(self, app: App) -> None:
        self.app = app
        # An app may offer `fast_path(method, path, query, headers, body, respond) -> bool`:
        # tried first, without a task; True means it will call respond(status, headers, body).
        self.fast_path = getattr(app, "fast_path", None)
        self.loop = asyncio.get_running_loop()
        self.connections: set[HttpConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.running = 0
        self.stopping = False
        self._server: asyncio.Server | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self, sock: socket.socket) -> None:
        self._server = await self.loop.create_server(
            lambda: HttpConnection(self), sock=sock, backlog=1024
        )

    def request_finished(self) -> None:
        self.running -= 1
        if self.running == 0:
            self._idle.set()

    async def shutdown(self, timeout_s: float | None = None) -> None:
        """Stop accepting, close idle connections, wait for running requests to finish."""
        self.stopping = True
        if self._server:
            self._server.close()
        for conn in list(self.connections):
            if not conn.running and conn.transport:
                conn.transport.close()
        if self.running:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout_s)
        for conn in list(self.connections):
            if conn.transport:
                conn.transport.close()
