"""Response streaming end to end: a custom runtime streaming through the Runtime API's
streaming response mode, read with boto3's invoke_with_response_stream (botocore decodes
the event-stream framing), plain HTTP for disconnects, and plain Invoke of a streaming
function. Ordering is proven by handshakes, never by clocks: the function waits for a
flag file in its code directory that a test creates only after it has received what the
function sent before."""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support import CorralProcess, lambda_client, make_zip, wait_until

ROLE = "arn:aws:iam::000000000000:role/x"
RUNTIME = (Path(__file__).parent / "stream_runtime.py").read_text()
PYTHON = os.path.join(sys.base_prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}")
BOOTSTRAP = f'#!/bin/sh\nexec {PYTHON} -S "$LAMBDA_TASK_ROOT/runtime.py"\n'


class StreamingFunction:
    """A `provided.al2023` function running stream_runtime.py, and its code directory on
    the host (where the flags go: the sandbox sees it read-only at /var/task)."""

    def __init__(self, server: CorralProcess, lam, **config) -> None:
        self.server = server
        self.lam = lam
        self.name = f"stream-{uuid.uuid4().hex[:10]}"
        self.token = uuid.uuid4().hex
        files = {"bootstrap": BOOTSTRAP, "runtime.py": RUNTIME, "token": self.token}
        lam.create_function(
            FunctionName=self.name,
            Runtime="provided.al2023",
            Role=ROLE,
            Handler="stream.handler",
            Code={"ZipFile": make_zip(files, {"bootstrap": 0o755})},
            **{"Timeout": 10, **config},
        )

    def code_dir(self) -> Path:
        for path in self.server.data_dir.rglob("token"):
            if path.read_text() == self.token:
                return path.parent
        raise AssertionError("the function's code directory was not found")

    def signal(self, flag: str) -> None:
        path = self.code_dir() / flag
        path.write_text("")
        path.chmod(0o644)

    def logs(self) -> bytes:
        url = f"{self.server.url}/corral/v1/functions/{self.name}/logs?offset=0"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()

    def stream(self, event: dict, **kwargs):
        return self.lam.invoke_with_response_stream(
            FunctionName=self.name, Payload=json.dumps(event).encode(), **kwargs
        )


@pytest.fixture(scope="module")
def process_server(tmp_path_factory):
    with CorralProcess(tmp_path_factory.mktemp("stream-process"), "--sandbox", "process") as p:
        yield p


def _events(response) -> list[dict]:
    return list(response["EventStream"])


def _payload(events: list[dict]) -> bytes:
    return b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e)


def _first_chunk_then_rest(fn: StreamingFunction, response, flag: str) -> tuple[bytes, list]:
    """Read the first PayloadChunk, then let the function go on, then read the rest."""
    stream = iter(response["EventStream"])
    first = next(stream)
    assert "PayloadChunk" in first, first
    fn.signal(flag)
    return first["PayloadChunk"]["Payload"], list(stream)


@pytest.mark.parametrize("sandbox", ["namespace", "process"])
def test_chunks_reach_the_caller_while_the_function_runs(sandbox, corral, process_server):
    server = corral if sandbox == "namespace" else process_server
    fn = StreamingFunction(server, lambda_client(server.url))
    event = {"steps": [{"chunk": "first"}, {"wait": "go"}, {"chunk": "second,"}, {"chunk": "last"}]}
    response = fn.stream(event)
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert response["ResponseStreamContentType"] == "application/vnd.amazon.eventstream"
    # "second" and "last" are produced only after the flag, which is created only once
    # "first" has arrived here: the stream is not buffered anywhere on the way.
    first, rest = _first_chunk_then_rest(fn, response, "go")
    assert first == b"first"
    assert _payload(rest) == b"second,last"
    assert rest[-1] == {"InvokeComplete": {}}
    assert sum("InvokeComplete" in e for e in rest) == 1


def test_midstream_error_trailers_end_the_stream_with_the_error(corral, lam):
    fn = StreamingFunction(corral, lam)
    error = {"errorType": "BrokenPipe", "errorMessage": "the upstream went away"}
    event = {"steps": [{"chunk": "partial"}], "error": {"type": "Function.Broken", "body": error}}
    events = _events(fn.stream(event))
    assert _payload(events) == b"partial"
    assert events[-1] == {
        "InvokeComplete": {"ErrorCode": "Function.Broken", "ErrorDetails": "the upstream went away"}
    }


def test_timeout_mid_stream_ends_it_and_replaces_the_environment(corral, lam):
    fn = StreamingFunction(corral, lam, Timeout=1)
    response = fn.stream({"steps": [{"chunk": "before"}, {"hang": True}]}, LogType="Tail")
    events = _events(response)
    assert _payload(events) == b"before"
    complete = events[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "Sandbox.Timedout"
    assert complete["ErrorDetails"].endswith("Task timed out after 1.00 seconds")
    assert "Status: timeout" in base64.b64decode(complete["LogResult"]).decode()
    # the timed-out environment was destroyed; the next invocation gets a fresh one
    events = _events(fn.stream({"steps": [{"chunk": "again"}]}, LogType="Tail"))
    assert _payload(events) == b"again"
    assert "Init Duration" in base64.b64decode(events[-1]["InvokeComplete"]["LogResult"]).decode()


def test_a_function_that_does_not_stream_yields_its_payload_as_one_chunk(lam):
    name = f"buffered-{uuid.uuid4().hex[:10]}"
    code = "def handler(event, context):\n    return {'echo': event}\n"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": code})},
    )
    response = lam.invoke_with_response_stream(
        FunctionName=name, Payload=b'{"k": 1}', LogType="Tail"
    )
    events = _events(response)
    assert len(events) == 2, events
    assert json.loads(events[0]["PayloadChunk"]["Payload"]) == {"echo": {"k": 1}}
    complete = events[1]["InvokeComplete"]
    assert "ErrorCode" not in complete
    log = base64.b64decode(complete["LogResult"]).decode()
    assert f"REPORT RequestId: {response['ResponseMetadata']['RequestId']}" in log


def test_a_buffered_function_error_comes_in_invoke_complete(lam):
    name = f"buffered-err-{uuid.uuid4().hex[:10]}"
    code = "def handler(event, context):\n    raise ValueError('bad value')\n"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": code})},
    )
    events = _events(lam.invoke_with_response_stream(FunctionName=name, Payload=b"{}"))
    assert events == [{"InvokeComplete": {"ErrorCode": "ValueError", "ErrorDetails": "bad value"}}]


def test_plain_invoke_of_a_streaming_function_is_buffered(corral, lam):
    fn = StreamingFunction(corral, lam)
    event = {"steps": [{"chunk": "one,"}, {"chunk": "two"}]}
    response = lam.invoke(FunctionName=fn.name, Payload=json.dumps(event).encode())
    assert "FunctionError" not in response
    assert response["Payload"].read() == b"one,two"
    error = {"errorType": "E", "errorMessage": "late failure"}
    event = {"steps": [{"chunk": "x"}], "error": {"type": "Function.Late", "body": error}}
    response = lam.invoke(FunctionName=fn.name, Payload=json.dumps(event).encode())
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read()) == error


def test_streamed_and_buffered_answers_alternate_on_one_environment(corral, lam):
    fn = StreamingFunction(corral, lam)
    events = _events(fn.stream({"buffered": True}))
    assert json.loads(_payload(events)) == {"buffered": True}
    events = _events(fn.stream({"steps": [{"chunk": "streamed"}]}, LogType="Tail"))
    assert _payload(events) == b"streamed"
    assert b"Init Duration" not in base64.b64decode(events[-1]["InvokeComplete"]["LogResult"])


def test_a_stream_over_the_limit_ends_with_response_size_too_large(corral, lam):
    fn = StreamingFunction(corral, lam)
    events = _events(fn.stream({"steps": [{"bytes": 20 * 1024 * 1024 + 1}]}))
    assert len(_payload(events)) <= 20 * 1024 * 1024
    complete = events[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "Function.ResponseSizeTooLarge"
    assert "20971520 bytes" in complete["ErrorDetails"]


def test_dry_run_answers_204(corral, lam):
    fn = StreamingFunction(corral, lam)
    response = lam.invoke_with_response_stream(FunctionName=fn.name, InvocationType="DryRun")
    assert response["StatusCode"] == 204
    assert list(response["EventStream"]) == []


def _error(call) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response
    return (
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"]["Code"],
        error["Error"]["Message"],
    )


def test_bad_input_gets_lambda_errors(corral, lam):
    fn = StreamingFunction(corral, lam)
    status, code, message = _error(
        lambda: lam.invoke_with_response_stream(FunctionName="no-such-function", Payload=b"{}")
    )
    assert (status, code) == (404, "ResourceNotFoundException")
    assert "no-such-function" in message
    status, code, _ = _error(
        lambda: lam.invoke_with_response_stream(FunctionName=fn.name, Qualifier="42")
    )
    assert (status, code) == (404, "ResourceNotFoundException")
    status, code, message = _error(
        lambda: lam.invoke_with_response_stream(FunctionName=fn.name, Qualifier="bad!qualifier")
    )
    assert (status, code) == (400, "ValidationException")
    assert "'qualifier'" in message
    status, code, message = _error(
        lambda: lam.invoke_with_response_stream(FunctionName=fn.name, InvocationType="Event")
    )
    assert (status, code) == (400, "ValidationException")
    assert "Member must satisfy enum value set: [RequestResponse, DryRun]" in message
    status, code, message = _error(
        lambda: lam.invoke_with_response_stream(
            FunctionName=fn.name, Payload=b'"' + b"x" * (6 * 1024 * 1024) + b'"'
        )
    )
    assert (status, code) == (413, "RequestTooLargeException")
    assert "6291456 bytes" in message


def _raw_stream_request(
    url: str, name: str, event: dict, receive_buffer: int | None = None
) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(event).encode()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:  # before connecting, so that the TCP window is sized by it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((host, int(port)))
    sock.sendall(
        f"POST /2021-11-15/functions/{name}/response-streaming-invocations HTTP/1.1\r\n"
        f"Host: {host}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def test_a_client_that_disconnects_mid_stream_leaves_all_healthy(corral, lam):
    fn = StreamingFunction(corral, lam)
    event = {"steps": [{"chunk": "first"}, {"wait": "gone"}, {"bytes": 4 * 1024 * 1024}]}
    sock = _raw_stream_request(corral.url, fn.name, event)
    received = b""
    while b"first" not in received:
        data = sock.recv(65536)
        assert data, received
        received += data
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in received
    sock.close()
    fn.signal("gone")  # the function now writes 4 MB to a caller that is gone
    # The invocation still runs to its end; its environment is then reused (no new init).
    wait_until(lambda: b"REPORT RequestId" in fn.logs(), what="the first invocation's end")
    events = _events(fn.stream({"steps": [{"chunk": "ok"}]}, LogType="Tail"))
    assert _payload(events) == b"ok"
    log = base64.b64decode(events[-1]["InvokeComplete"]["LogResult"]).decode()
    assert "Init Duration" not in log
    with urllib.request.urlopen(f"{corral.url}/corral/v1/health", timeout=5) as response:
        assert response.status == 200


def test_a_slow_reader_gets_every_byte(corral, lam):
    # 8 MB through a caller with a small TCP window that reads in small steps, slower than
    # the runtime writes: the server's write buffer and the runtime's connection fill up
    # and are paused and resumed, and nothing is lost or reordered.
    fn = StreamingFunction(corral, lam, Timeout=60)
    size = 16 * 1024 * 1024
    sock = _raw_stream_request(corral.url, fn.name, {"steps": [{"bytes": size}]}, 65536)
    received = bytearray()
    while not received.endswith(b"0\r\n\r\n"):
        data = sock.recv(65536)
        assert data, bytes(received[-200:])
        received += data
        time.sleep(0.001)  # pacing, not synchronization: a reader slower than the runtime
    sock.close()
    _, _, body = bytes(received).partition(b"\r\n\r\n")
    from botocore.eventstream import EventStreamBuffer

    decoder = EventStreamBuffer()
    decoder.add_data(_dechunk(body))
    events = list(decoder)
    kinds = [m.headers[":event-type"] for m in events]
    assert kinds[-1] == "InvokeComplete" and set(kinds[:-1]) == {"PayloadChunk"}
    assert sum(len(m.payload) for m in events[:-1]) == size
    assert json.loads(events[-1].payload) == {}


def _dechunk(data: bytes) -> bytes:
    out, at = bytearray(), 0
    while True:
        end = data.index(b"\r\n", at)
        size = int(data[at:end], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2 : end + 2 + size]
        at = end + 2 + size + 2


def test_aliases_resolve_and_name_the_executed_version(corral, lam):
    fn = StreamingFunction(corral, lam)
    version = lam.publish_version(FunctionName=fn.name)["Version"]
    lam.create_alias(FunctionName=fn.name, Name="live", FunctionVersion=version)
    event = json.dumps({"steps": [{"chunk": "via alias"}]}).encode()
    response = lam.invoke_with_response_stream(
        FunctionName=fn.name, Qualifier="live", Payload=event
    )
    assert response["ExecutedVersion"] == version
    assert _payload(_events(response)) == b"via alias"


def test_throttling_comes_before_the_stream(corral, lam):
    fn = StreamingFunction(corral, lam)
    lam.put_function_concurrency(FunctionName=fn.name, ReservedConcurrentExecutions=0)
    status, code, _ = _error(lambda: fn.stream({"steps": []}))
    assert (status, code) == (429, "TooManyRequestsException")


def _url_request(corral: CorralProcess, url_id: str, event: dict) -> socket.socket:
    host, port = corral.url.removeprefix("http://").split(":")
    body = json.dumps(event).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        f"POST /url/{url_id}/stream HTTP/1.1\r\nHost: {host}\r\nOrigin: https://a.example\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def _read_until(sock: socket.socket, received: bytes, marker: bytes) -> bytes:
    while marker not in received:
        data = sock.recv(65536)
        assert data, received
        received += data
    return received


def test_a_response_stream_url_streams_with_the_prelude_s_status_and_headers(corral, lam):
    fn = StreamingFunction(corral, lam)
    config = lam.create_function_url_config(
        FunctionName=fn.name,
        AuthType="NONE",
        InvokeMode="RESPONSE_STREAM",
        Cors={"AllowOrigins": ["https://a.example"]},
    )
    url_id = config["FunctionUrl"].removeprefix("http://").split(".", 1)[0]
    prelude = {"statusCode": 201, "headers": {"X-Kind": "stream"}, "cookies": ["a=1"]}
    event = {
        "content_type": "application/vnd.awslambda.http-integration-response",
        "steps": [{"prelude": prelude}, {"chunk": "first"}, {"wait": "url-go"}, {"chunk": "last"}],
    }
    sock = _url_request(corral, url_id, event)
    # "last" is produced only after the flag, created once "first" arrived: streamed.
    received = _read_until(sock, b"", b"first")
    head, _, _ = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 ")
    lines = head.lower().split(b"\r\n")
    assert b"x-kind: stream" in lines and b"set-cookie: a=1" in lines
    assert b"transfer-encoding: chunked" in lines
    assert b"access-control-allow-origin: https://a.example" in lines
    fn.signal("url-go")
    received = _read_until(sock, received, b"0\r\n\r\n")
    sock.close()
    assert _dechunk(received.partition(b"\r\n\r\n")[2]) == b"firstlast"


def test_a_response_stream_url_of_a_buffered_function_follows_the_response_rules(corral, lam):
    fn = StreamingFunction(corral, lam)
    config = lam.create_function_url_config(
        FunctionName=fn.name, AuthType="NONE", InvokeMode="RESPONSE_STREAM"
    )
    url_id = config["FunctionUrl"].removeprefix("http://").split(".", 1)[0]
    sock = _url_request(corral, url_id, {"buffered": True})
    received = _read_until(sock, b"", b'{"buffered": true}')
    sock.close()
    assert received.startswith(b"HTTP/1.1 200 ")
    assert b"content-type: application/json" in received.lower()
    # A stream whose prelude is no JSON object is a malformed response: 502.
    bad = {
        "content_type": "application/vnd.awslambda.http-integration-response",
        "steps": [{"prelude": [1, 2]}, {"chunk": "body"}],
    }
    sock = _url_request(corral, url_id, bad)
    received = _read_until(sock, b"", b"Internal Server Error")
    sock.close()
    assert received.startswith(b"HTTP/1.1 502 ")


def _url_send(sock: socket.socket, host: str, url_id: str, event: dict, method="POST") -> None:
    body = json.dumps(event).encode()
    sock.sendall(
        f"{method} /url/{url_id}/stream HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def _prelude_event(prelude: dict, *steps: dict, **extra) -> dict:
    return {
        "content_type": "application/vnd.awslambda.http-integration-response",
        "steps": [{"prelude": prelude}, *steps],
        **extra,
    }


def test_head_and_bodiless_statuses_of_a_stream_url_keep_the_connection_usable(corral, lam):
    """HEAD, 204 and 304 responses carry no body bytes (no chunk framing either); the
    connection then serves the next request; a prelude's 1xx is no response: 502; an
    unnamed status passes through."""
    fn = StreamingFunction(corral, lam)
    config = lam.create_function_url_config(
        FunctionName=fn.name, AuthType="NONE", InvokeMode="RESPONSE_STREAM"
    )
    url_id = config["FunctionUrl"].removeprefix("http://").split(".", 1)[0]
    host, port = corral.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    answers = []
    for method, prelude in [
        ("HEAD", {"statusCode": 200}),
        ("POST", {"statusCode": 204}),
        ("POST", {"statusCode": 304}),
        ("POST", {"statusCode": 101}),
        ("POST", {"statusCode": 599}),
    ]:
        _url_send(sock, host, url_id, _prelude_event(prelude, {"chunk": "body"}), method)
        received = _read_until(sock, b"", b"\r\n\r\n")
        head, _, rest = received.partition(b"\r\n\r\n")
        if b"content-length" in head.lower():
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(rest) < length:
                rest += sock.recv(65536)
        elif b"transfer-encoding: chunked" in head.lower() and method != "HEAD":
            rest = _read_until(sock, rest, b"0\r\n\r\n")
        answers.append((method, head.split(b"\r\n")[0], rest))
    # a last GET proves nothing stray was left on the connection
    _url_send(sock, host, url_id, _prelude_event({"statusCode": 200}, {"chunk": "end"}))
    received = _read_until(sock, b"", b"0\r\n\r\n")
    sock.close()
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert _dechunk(received.partition(b"\r\n\r\n")[2]) == b"end"
    assert answers[0] == ("HEAD", b"HTTP/1.1 200 OK", b"")
    assert answers[1] == ("POST", b"HTTP/1.1 204 No Content", b"")
    assert answers[2] == ("POST", b"HTTP/1.1 304 Not Modified", b"")
    assert answers[3][1] == b"HTTP/1.1 502 Bad Gateway"
    assert answers[4][1] == b"HTTP/1.1 599 "
    assert _dechunk(answers[4][2]) == b"body"


def test_a_stream_url_failing_after_its_first_byte_is_cut_short(corral, lam):
    """An error after the first byte ends the response without its last chunk: the client
    sees a truncated body, not a complete one."""
    fn = StreamingFunction(corral, lam)
    config = lam.create_function_url_config(
        FunctionName=fn.name, AuthType="NONE", InvokeMode="RESPONSE_STREAM"
    )
    url_id = config["FunctionUrl"].removeprefix("http://").split(".", 1)[0]
    error = {"type": "Oops", "body": {"errorMessage": "late", "errorType": "Oops"}}
    sock = _url_request(
        corral, url_id, _prelude_event({"statusCode": 200}, {"chunk": "partial"}, error=error)
    )
    received = b""
    while data := sock.recv(65536):  # until the server closes the connection
        received += data
    sock.close()
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b"7\r\npartial\r\n")  # no terminating 0-chunk
