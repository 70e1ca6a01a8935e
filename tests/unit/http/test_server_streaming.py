"""Streamed responses from the HTTP front door, over a real loopback socket in one loop:
chunked framing, a flush per body message, backpressure, and clients that go away."""

from __future__ import annotations

import asyncio
import socket

from corral.http.server import ClientDisconnected, HttpServer


async def _serve(app) -> tuple[HttpServer, tuple[str, int]]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = HttpServer(app)
    await server.start(listener)
    return server, listener.getsockname()


async def _until(predicate, what: str) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _start(headers=()):
    return {"type": "http.response.start", "status": 200, "headers": list(headers)}


def _body(data: bytes, more: bool = True):
    return {"type": "http.response.body", "body": data, "more_body": more}


def test_body_messages_are_chunked_and_the_connection_stays_usable():
    async def app(scope, receive, send):
        await receive()
        if scope["path"] == "/plain":
            await send(_start([(b"content-length", b"2")]))
            await send({"type": "http.response.body", "body": b"ok"})
            return
        await send(_start())
        for part in (b"a", b"", b"bcd"):
            await send(_body(part))
        await send(_body(b"", more=False))

    async def main():
        server, address = await _serve(app)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\nGET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"\r\n\r\nok"):
            data += await asyncio.wait_for(reader.read(65536), 5)
        writer.close()
        await server.shutdown(1)
        return data

    data = asyncio.run(main())
    first, _, second = data.partition(b"0\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    assert first.endswith(b"\r\n\r\n1\r\na\r\n3\r\nbcd\r\n")
    assert second.startswith(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n")


def test_a_stream_with_a_content_length_is_not_chunked():
    async def app(scope, receive, send):
        await send(_start([(b"Content-Length", b"4")]))
        await send(_body(b"ab"))
        await send(_body(b"cd", more=False))

    async def main():
        server, address = await _serve(app)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(-1), 5)
        await server.shutdown(1)
        return data

    data = asyncio.run(main())
    assert b"transfer-encoding" not in data
    assert data.endswith(b"\r\n\r\nabcd")


def test_each_chunk_is_flushed_before_the_app_goes_on():
    # The app sends its second chunk only once the client has read the first.
    async def main():
        first_read = asyncio.Event()

        async def app(scope, receive, send):
            await send(_start())
            await send(_body(b"first"))
            await first_read.wait()
            await send(_body(b"second", more=False))

        server, address = await _serve(app)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"first" not in data:
            data += await asyncio.wait_for(reader.read(65536), 5)
        assert b"second" not in data
        first_read.set()
        while not data.endswith(b"0\r\n\r\n"):
            data += await asyncio.wait_for(reader.read(65536), 5)
        writer.close()
        await server.shutdown(1)
        return data

    assert asyncio.run(main()).endswith(b"5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n")


def test_send_waits_while_the_client_does_not_read():
    total, piece = 32 * 1024 * 1024, b"x" * 65536
    sent = 0

    async def app(scope, receive, send):
        nonlocal sent
        await send(_start())
        while sent < total:
            await send(_body(piece))
            sent += len(piece)
        await send(_body(b"", more=False))

    async def main():
        server, address = await _serve(app)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, address)
        await loop.sock_sendall(sock, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await _until(lambda: server.connections, "the connection")
        (conn,) = server.connections
        await _until(lambda: conn.write_paused, "the transport to pause writing")
        # Had send not waited, the app would have written everything without yielding.
        assert sent < total
        received = 0
        while True:
            data = await loop.sock_recv(sock, 1 << 20)
            assert data
            received += len(data)
            if data.endswith(b"0\r\n\r\n"):
                break
        sock.close()
        await server.shutdown(1)
        return received

    received = asyncio.run(main())
    assert sent == total and received > total


def test_a_client_that_goes_away_ends_the_stream_without_leaks():
    outcome: list[object] = []

    async def app(scope, receive, send):
        await send(_start())
        try:
            while True:
                await send(_body(b"y" * 65536))
        except ClientDisconnected as exc:
            outcome.append(exc)

    async def main():
        server, address = await _serve(app)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.read(65536), 5)
        writer.transport.abort()
        await _until(lambda: not server.tasks and server.running == 0, "the request to end")
        await server.shutdown(1)
        return server

    server = asyncio.run(main())
    assert isinstance(outcome[0], OSError)
    assert not server.connections


def test_receive_after_the_body_reports_the_disconnect():
    messages: list[dict] = []

    async def app(scope, receive, send):
        messages.append(await receive())
        await send(_start())
        await send(_body(b"started"))
        messages.append(await receive())  # blocks until the client goes

    async def main():
        server, address = await _serve(app)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"started\r\n"), 5)
        assert len(messages) == 1
        writer.close()
        await _until(lambda: len(messages) == 2, "http.disconnect")
        await server.shutdown(1)

    asyncio.run(main())
    assert messages[0]["type"] == "http.request"
    assert messages[1] == {"type": "http.disconnect"}


def test_an_app_failing_mid_stream_cuts_the_connection():
    async def app(scope, receive, send):
        await send(_start())
        await send(_body(b"partial"))
        raise RuntimeError("boom")

    async def main():
        server, address = await _serve(app)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.read(-1), 5)  # until the server closes
        await server.shutdown(1)
        return data

    data = asyncio.run(main())
    assert data.endswith(b"7\r\npartial\r\n")  # no terminating chunk: the client sees it cut
