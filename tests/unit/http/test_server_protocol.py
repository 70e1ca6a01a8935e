"""The HTTP front door's parser and transport edge cases (issue 9's review): upgrades,
CONNECT, HEAD and bodiless statuses, size caps, deferred 100 Continue, pipelined errors,
HTTP/1.0, and unnamed statuses. Over a real loopback socket inside one event loop."""

from __future__ import annotations

import asyncio
import logging

from corral.http import server as http_server
from corral.http.server import ClientDisconnected

from .test_server import _exchange
from .test_server_streaming import _body, _serve, _start, _until


async def _streamer(scope, receive, send):
    """Echoes method, path and HTTP version in a streamed (chunked) response."""
    message = await receive()
    status = int(scope["path"].strip("/") or 200) if scope["path"].strip("/").isdigit() else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    text = f"{scope['method']} {scope['path']} {scope['http_version']} ".encode()
    await send(_body(text + message["body"]))
    await send(_body(b"", more=False))


def test_an_h2c_upgrade_is_ignored_and_answered_on_http_1_1():
    raw = (
        b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    data = _exchange(raw)
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert b"GET /a" in data and b"GET /b" in data  # parsing went on after the upgrade
    assert b"101" not in data.split(b"\r\n", 1)[0]


def test_a_websocket_upgrade_with_a_body_is_answered_and_parsing_goes_on():
    raw = (
        b"POST /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Content-Length: 2\r\n\r\nhi"
        b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    data = _exchange(raw)
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert b"POST /ws  hi" in data and b"GET /next" in data


def test_connect_is_a_501_and_the_connection_closes():
    raw = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01tls"
    data = _exchange(raw)
    assert data.startswith(b"HTTP/1.1 501 Not Implemented")
    assert data.count(b"HTTP/1.1") == 1


def test_connect_after_a_valid_request_is_answered_in_order():
    raw = b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nCONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n\x16tls"
    data = _exchange(raw)
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert data.index(b"GET /slow") < data.index(b"HTTP/1.1 501 Not Implemented")


def test_head_of_a_streamed_response_has_no_chunk_framing():
    raw = (
        b"HEAD /s HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    data = _exchange(raw, app=_streamer)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    # right after the HEAD response's head comes the next response, no `0\r\n\r\n`
    assert rest.startswith(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    assert b"GET /after 1.1" in rest


def test_204_and_304_streams_carry_no_body_bytes():
    raw = (
        b"GET /204 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /304 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    data = _exchange(raw, app=_streamer)
    assert data.startswith(
        b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\nHTTP/1.1 200 OK"
    )
    assert b"GET /after" in data and b"GET /204" not in data


def test_a_status_without_a_name_gets_an_empty_reason_phrase():
    raw = b"GET /599 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data = _exchange(raw, app=_streamer)
    assert data.startswith(b"HTTP/1.1 599 \r\n")
    assert b"GET /599" in data


def _flood(prefix: bytes, filler: bytes) -> bytes:
    """Send `prefix`, then `filler` again and again (a head that never ends) until the
    server answers; returns what it answered."""

    async def main() -> bytes:
        server, address = await _serve(_streamer)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(prefix)
        answer = asyncio.ensure_future(reader.read(-1))
        sent = 0
        try:
            while not answer.done() and sent < 64 * 1024 * 1024:
                writer.write(filler)
                await writer.drain()
                sent += len(filler)
                await asyncio.sleep(0)
        except ConnectionError:
            pass
        data = await asyncio.wait_for(answer, 5)
        writer.close()
        await server.shutdown(1)
        return data

    return asyncio.run(main())


def test_an_endless_header_is_a_431_without_buffering_it():
    data = _flood(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", b"a" * 8192)
    assert data.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")


def test_endless_headers_are_a_431():
    data = _flood(b"GET / HTTP/1.1\r\nHost: x\r\n", b"X-H: " + b"v" * 100 + b"\r\n")
    assert data.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")


def test_an_endless_request_line_is_a_414():
    data = _flood(b"GET /", b"a" * 8192)
    assert data.startswith(b"HTTP/1.1 414 Request-URI Too Long")


def test_a_large_header_under_the_cap_is_served():
    raw = (
        b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\nConnection: close\r\n\r\n"
    )
    assert _exchange(raw).startswith(b"HTTP/1.1 200 OK")


def test_a_body_over_the_apps_limit_is_not_buffered_whole(monkeypatch):
    seen: list[int] = []

    async def app(scope, receive, send):
        message = await receive()
        seen.append(len(message["body"]))
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app.body_limit = lambda path, headers: 1000 if path == "/small" else 10**9  # type: ignore[attr-defined]
    monkeypatch.setattr(http_server, "BODY_CHECK_BYTES", 100)
    body = b"z" * 50000
    raw = b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n" + body
    raw += b"POST /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 50000\r\n\r\n"
    raw += body
    data = _exchange(raw, app=app)
    assert data.count(b"HTTP/1.1 413") == 2
    assert seen == [1001, 50000]  # over the limit by one byte: the app knows, memory does not


def test_expect_continue_waits_until_the_request_is_the_current_one():
    events: list[str] = []

    async def app(scope, receive, send):
        message = await receive()
        if scope["path"] == "/stream":
            await send(_start())
            await send(_body(b"first"))
            await _until(lambda: "queued" in events, "the second request's head")
            await asyncio.sleep(0.05)
            await send(_body(b"", more=False))
            return
        await send(_start([(b"content-length", str(len(message["body"])).encode())]))
        await send({"type": "http.response.body", "body": message["body"]})

    async def main():
        server, address = await _serve(app)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.readuntil(b"first\r\n"), 5)
        writer.write(
            b"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        )
        await writer.drain()
        events.append("queued")
        data += await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
        data += await asyncio.wait_for(reader.readuntil(b"100 Continue\r\n\r\n"), 5)
        writer.write(b"ok")
        data += await asyncio.wait_for(reader.readuntil(b"\r\n\r\nok"), 5)
        writer.close()
        await server.shutdown(1)
        return data

    data = asyncio.run(main())
    first, _, rest = data.partition(b"0\r\n\r\n")
    assert b"100 Continue" not in first  # never inside the streamed response
    assert rest.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")


def test_a_bad_request_after_a_valid_one_is_answered_after_it():
    raw = b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n"
    data = _exchange(raw)
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert data.index(b"GET /slow") < data.index(b"HTTP/1.1 400 Bad Request")


def test_http_1_0_is_reported_and_streams_are_close_delimited():
    raw = b"GET /s HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
    data = _exchange(raw, app=_streamer)  # read until the server closes
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"GET /s 1.0 "


def test_a_client_gone_before_the_first_chunk_logs_no_error(caplog):
    async def app(scope, receive, send):
        await receive()
        await receive()  # until the client goes
        try:
            await send(_start())
            await send(_body(b"late"))
        except ClientDisconnected:
            return

    async def main():
        server, address = await _serve(app)
        _, writer = await asyncio.open_connection(*address)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()
        await _until(lambda: not server.tasks and server.running == 0, "the request to end")
        await server.shutdown(1)

    with caplog.at_level(logging.ERROR, logger="corral.http"):
        asyncio.run(main())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_chunked_body_of_an_upgrade_request_is_read():
    raw = (
        b"POST /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    data = _exchange(raw)
    assert b"POST /up  abcde" in data and b"GET /next" in data
