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
- `Expect: 100-continue` (answered only when the request is the connection's current one,
  never inside another response), an idle keep-alive timeout, 400 for unparsable requests
  (after the answers to the requests before it), 413 for oversized bodies, 414 / 431 for
  a request line / header block that goes on too long (counted per read, not per header,
  see `_head_incomplete`), 501 for CONNECT, 500 when an app fails before it started its
  response; a refused client gets a lingering close (answer, FIN, input dropped for
  LINGER_S), so a RST does not eat the answer;
- `Upgrade` (h2c, websocket) is ignored: the request is answered on HTTP/1.1 and the
  connection goes on parsing HTTP/1.1;
- HEAD and 204/304 responses carry no body bytes and no chunk framing; a stream to an
  HTTP/1.0 client is close-delimited (no chunked encoding there);
- an app may offer `body_limit(path, headers) -> int`: asked once a body passes
  BODY_CHECK_BYTES, the server keeps only `limit + 1` bytes of a larger body (the app
  sees it is too large and answers in its own format) instead of buffering all of it;
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
# Above this a body's size is checked against the app's `body_limit` (Lambda's 6 MB
# payload limit is the smallest an app has).
BODY_CHECK_BYTES = 1024 * 1024
# Request line and header block caps (nginx's large_client_header_buffers is 8 KB per line,
# API Gateway takes ~10 KB per header): generous, and memory per connection stays bounded.
MAX_REQUEST_LINE_BYTES = 16 * 1024
MAX_HEAD_BYTES = 64 * 1024
KEEP_ALIVE_S = 75.0
LINGER_S = 2.0  # how long a refused client may go on sending before the connection closes
_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in HTTPStatus
}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_NO_BODY = frozenset({204, 304})
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


def _status_line(status: int) -> bytes:
    """The status line; a status HTTP has no name for (e.g. 599) gets an empty reason
    phrase, which HTTP/1.1 allows."""
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"invalid HTTP status {status!r}")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


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


class StreamAborted(Exception):
    """Raised by an app to end a streamed response that failed after its first byte: the
    connection is closed without the terminating chunk, so the client sees truncation."""


class _Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "url", "version")

    def __init__(self, method: str, url: bytes, headers: list, body: bytes, keep_alive: bool):
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        # "1.1" or "1.0": read from the parser only off the fast path (it costs ~1 us),
        # while the parser is still at this request (see `_version`)
        self.version: str | None = None


class HttpConnection(asyncio.Protocol):
    """One client connection. Requests are answered one at a time, in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[_Request] = deque()
        self.running = False
        self.paused = False  # reading paused while requests wait
        # something to do once the running request (and those queued) are answered: resume
        # reading, send a deferred 100 Continue, or answer a bad request and close
        self.after = False
        self.failed: int | None = None
        self._continue = False
        # an Upgrade request: held until the parser stops at it (httptools reads no body
        # there), then its body is read by a fresh parser (`_capture`)
        self._upgrading = False
        self._unusual = False  # see on_message_complete
        self._held: _Request | None = None
        self._capture: _Request | None = None
        self._head_open = False
        self._head_bytes = 0
        self._limit = BODY_CHECK_BYTES
        self.idle_timer: asyncio.TimerHandle | None = None
        self.last_active = 0.0
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
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
        open_before = self._head_open
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrade(data, upgrade.args[0] if upgrade.args else len(data))
            return
        except httptools.HttpParserError as exc:  # httptools wraps errors raised in callbacks
            cause = exc.__cause__ or exc.__context__
            self._fail(cause.status if isinstance(cause, _Refused) else 400)
            return
        if self._head_open:
            self._head_incomplete(len(data), open_before)

    def _head_incomplete(self, size: int, open_before: bool) -> None:
        """A request line or header block goes on past this read (httptools buffers a
        header whole): refuse it once it is too long. Counted are the reads that were
        all head (no cost per header on the fast path): a head is refused once it goes
        on for more than MAX_HEAD_BYTES after the read it began in."""
        if len(self._url) > MAX_REQUEST_LINE_BYTES:
            self._fail(414)
            return
        if not open_before:  # began in this read: its share of the read is not counted
            self._head_bytes = 0
            return
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._fail(431)

    def _upgrade(self, data: bytes, offset: int) -> None:
        """The parser stopped after a request asking to switch protocols. Corral speaks
        only HTTP/1.1: an Upgrade (h2c, websocket) is ignored, the request is answered as
        usual and parsing goes on; CONNECT is answered 501 (see `_run`), and what follows
        it is not HTTP, so nothing more is read."""
        request, self._held = self._held, None
        if self.parser.get_method() == b"CONNECT":
            if self.transport is not None and not self.paused:
                self.paused = True
                self.transport.pause_reading()
            if request is not None:
                self._dispatch(request)
            return
        self.parser = httptools.HttpRequestParser(self)
        framing = [] if request is None else [(n, v) for n, v in request.headers if n in _FRAMING]
        if not framing or framing == [(b"content-length", b"0")]:
            if request is not None:
                self._dispatch(request)
            if offset < len(data):
                self.data_received(data[offset:])
            return
        # its body, in the request's own framing, through a synthetic head
        self._capture = request
        self._unusual = True
        head = b"".join(b"%s: %s\r\n" % (n, v) for n, v in framing)
        self.data_received(b"PUT / HTTP/1.1\r\n" + head + b"\r\n" + data[offset:])

    def _fail(self, status: int) -> None:
        """A request that cannot be parsed: answer the requests before it first, then
        `status` and close."""
        if self.transport is None:
            return
        if not self.running:
            self._abort(status)
            return
        self.failed = status
        self.after = True
        if not self.paused:
            self.paused = True
            self.transport.pause_reading()

    # ---- httptools callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._size = 0
        self._head_open = True

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self._headers.append((name, value))
        if name == b"content-length":
            if value.isdigit() and int(value) > MAX_BODY_BYTES:
                raise _Refused(413)
        elif name == b"upgrade":
            self._upgrading = self._unusual = True
        elif name == b"expect" and value.lower() == b"100-continue" and self.transport:
            if self.running:  # not the current request yet: once those before it are answered
                self._continue = self.after = True
            else:
                self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._head_open = False
        kept = self._size
        self._size += len(body)
        if self._size > self._limit:
            self._check_body()
            room = self._limit + 1 - kept  # the app sees that the body passes its limit
            if room <= 0:
                return
            if room < len(body):
                body = body[:room]
        self._body.append(body)

    def _check_body(self) -> None:
        if self._size > MAX_BODY_BYTES:
            raise _Refused(413)
        if self._limit == BODY_CHECK_BYTES:  # first time over: ask the app once
            self._unusual = True  # on_message_complete resets the limit
            limit = MAX_BODY_BYTES
            body_limit = self.server.body_limit
            if body_limit is not None:
                path = self._url.partition(b"?")[0]
                limit = min(limit, body_limit(_unquote(path), self._headers))
            self._limit = max(limit, BODY_CHECK_BYTES + 1)

    def on_message_complete(self) -> None:
        self._head_open = False
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        parser = self.parser
        request = _Request(
            parser.get_method().decode("ascii"),
            self._url,
            self._headers,
            body,
            parser.should_keep_alive(),
        )
        if self._unusual:
            self._complete_unusual(request)
        elif self.running:
            self._dispatch(request)
        else:
            self._start(request)

    def _complete_unusual(self, request: _Request) -> None:
        """The end of a request with a large body or an Upgrade header, or of the body
        of a held Upgrade request."""
        self._unusual = False
        self._limit = BODY_CHECK_BYTES
        if self._capture is not None:  # the body of a held Upgrade request
            held, self._capture = self._capture, None
            held.body = request.body
            self._dispatch(held)
            return
        upgrading, self._upgrading = self._upgrading, False
        if upgrading and self.parser.should_upgrade():  # the parser stops here: `_upgrade`
            request.version = self.parser.get_http_version()
            self._held = request
        else:
            self._dispatch(request)

    def _dispatch(self, request: _Request) -> None:
        if self.running:
            self._continue = False  # the body came anyway: the request is complete
            if request.version is None:
                request.version = self.parser.get_http_version()
            self.queue.append(request)
            if not self.paused and self.transport:
                self.paused = self.after = True
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
        if request.version is None:  # called from on_message_complete: the parser is at it
            request.version = self.parser.get_http_version()
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
        if request.method == "CONNECT":  # no proxy here; what follows it is not HTTP
            request.keep_alive = False
            self._end(request, _plain(501))
            return
        path, _, query = request.url.partition(b"?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.version or "1.1",
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
        responder = self.responder = _Responder(request, self)
        try:
            await self.server.app(scope, responder.receive, responder.send)
        except Exception as exc:
            if responder.streaming or self.transport is None:
                # too late for a 500 (or nobody to tell): cut the response short
                if self.transport is not None and not isinstance(exc, StreamAborted):
                    log.exception("request %s %s failed mid-stream", request.method, scope["path"])
                self._cut(request)
                return
            log.exception("request %s %s failed", request.method, scope["path"])
            self._end(request, _plain(500, close=False))
            return
        finally:
            self.responder = None
        if not responder.done:
            if responder.streaming or self.transport is None:  # the client went away
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
        if self.after:
            self._idle()
        self.last_active = self.loop.time()

    def _idle(self) -> None:
        """Every request read so far is answered: now the deferred work."""
        self.after = False
        if self.failed is not None:
            self._abort(self.failed)
            return
        if self._continue:  # the request being read is now the current one
            self._continue = False
            self.transport.write(_CONTINUE)  # type: ignore[union-attr]
        if self.paused:
            self.paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]

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
        transport = self.transport
        if transport is None:
            return
        if status is None or not transport.can_write_eof():
            if status is not None:
                transport.write(_plain(status))
            transport.close()
            return
        # Lingering close: answer, send FIN, and read (and drop) what the client still
        # sends for a while. Closing with unread input would send a RST, which can make
        # the client lose the answer.
        transport.write(_plain(status))
        transport.write_eof()
        self.parser = _Discard()
        self._head_open = False
        self.queue.clear()
        if self.paused:
            self.paused = False
            transport.resume_reading()
        self.loop.call_later(LINGER_S, transport.close)


class _Discard:
    """The parser of a connection being closed: input is dropped."""

    def feed_data(self, data: bytes) -> None:
        pass


class _Refused(Exception):
    """Raised in a parser callback: the request is refused with `status`."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Responder:
    """ASGI receive/send for one request: the whole body in; the response out whole, in
    one write, or streamed (one write per body message)."""

    __slots__ = (
        "bare",
        "body",
        "chunked",
        "conn",
        "done",
        "head",
        "output",
        "request",
        "streaming",
        "waiter",
    )

    def __init__(self, request: _Request, conn: HttpConnection) -> None:
        self.request = request
        self.body = request.body
        self.conn = conn
        self.bare = request.method == "HEAD"  # a response without body bytes
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
            status = message["status"]
            head = [_status_line(status)]
            if status in _NO_BODY or status < 200:
                self.bare = True
            for name, value in message.get("headers", ()):
                head += (name, b": ", value, b"\r\n")
            self.head = head
        elif kind == "http.response.body":
            if self.head is None:
                raise RuntimeError("response body before response start")
            body = b"" if self.bare else message.get("body", b"")
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
            # Chunked framing unless the app announced the length itself (or there is no
            # body: HEAD, 204, 304); an HTTP/1.0 client knows no chunks: the end of the
            # body is the end of the connection.
            names = {out[i].lower() for i in range(1, len(out), 4)}
            if b"content-length" in names or self.bare:
                self.chunked = False
            elif self.request.version == "1.0":
                self.chunked = False
                self.request.keep_alive = False
                out.append(b"connection: close\r\n")
            else:
                self.chunked = True
                if b"transfer-encoding" not in names:
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
        # and `body_limit(path, headers) -> int`: the most body bytes it takes there
        self.body_limit = getattr(app, "body_limit", None)
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
