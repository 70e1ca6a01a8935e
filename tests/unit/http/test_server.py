"""The HTTP front door, driven over a real loopback socket inside one event loop."""

from __future__ import annotations

import asyncio
import socket

from corral.http import server as http_server
from corral.http.server import HttpServer


async def _echo(scope, receive, send):
    message = await receive()
    if scope["path"] == "/fail":
        raise RuntimeError("boom")
    if scope["path"] == "/slow":
        await asyncio.sleep(0.05)
    body = f"{scope['method']} {scope['path']} {scope['query_string'].decode()} ".encode()
    body += message["body"]
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _exchange(raw: bytes, app=_echo, read_until_close: bool = True) -> bytes:
    async def main() -> bytes:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        server = HttpServer(app)
        await server.start(listener)
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), 5) if read_until_close else b""
        writer.close()
        await server.shutdown(timeout_s=1)
        return data

    return asyncio.run(main())


def test_pipelined_requests_are_answered_in_order():
    raw = (
        b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /b?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    data = _exchange(raw)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.index(b"GET /slow") < data.index(b"POST /b q=1 abc") < data.index(b"GET /c")


def test_percent_encoded_path_is_decoded():
    data = _exchange(b"GET /f/arn%3Aaws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"GET /f/arn:aws" in data


def test_expect_continue_is_answered_before_the_body():
    raw = (
        b"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
        b"Connection: close\r\n\r\nhi"
    )
    data = _exchange(raw)
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")


def test_garbage_is_a_400_and_the_connection_closes():
    assert _exchange(b"\x00\x01 not http\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")


def test_oversized_body_is_refused_before_it_is_read(monkeypatch):
    monkeypatch.setattr(http_server, "MAX_BODY_BYTES", 10)
    raw = b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"
    assert _exchange(raw).startswith(b"HTTP/1.1 413 Request Entity Too Large")


def test_app_failure_before_response_is_a_500_and_the_connection_survives():
    raw = (
        b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    data = _exchange(raw)
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error")
    assert b"GET /after" in data
