"""Pure parts of response streaming: event-stream framing (checked with botocore's own
decoder), the HTTP integration prelude, and the errors a stream ends with."""

from __future__ import annotations

import base64
import json

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from corral.model import eventstream
from corral.model.invocation import UNHANDLED, InvocationResult
from corral.model.streaming import (
    HttpPrelude,
    PreludeError,
    PreludeReader,
    decode_error_body,
    error_fields,
    midstream_error,
)


def _decode(data: bytes) -> list:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def test_payload_chunk_frames_decode_with_botocore():
    (message,) = _decode(eventstream.payload_chunks(b"\x00binary\xff"))
    assert message.headers == {
        ":event-type": "PayloadChunk",
        ":content-type": "application/octet-stream",
        ":message-type": "event",
    }
    assert message.payload == b"\x00binary\xff"


def test_large_chunks_are_split_into_several_events():
    data = bytes(range(256)) * (eventstream.PAYLOAD_CHUNK_MAX_BYTES // 256 * 2 + 1)
    messages = _decode(eventstream.payload_chunks(data))
    assert len(messages) == 3
    assert b"".join(m.payload for m in messages) == data


def test_invoke_complete_carries_only_what_is_set():
    (ok,) = _decode(eventstream.invoke_complete())
    assert ok.headers[":event-type"] == "InvokeComplete"
    assert ok.headers[":content-type"] == "application/json"
    assert json.loads(ok.payload) == {}
    (failed,) = _decode(eventstream.invoke_complete("Sandbox.Timedout", "late", "TG9n"))
    assert json.loads(failed.payload) == {
        "ErrorCode": "Sandbox.Timedout",
        "ErrorDetails": "late",
        "LogResult": "TG9n",
    }


def test_a_corrupted_frame_fails_botocore_checksum():
    frame = bytearray(eventstream.payload_chunks(b"abc"))
    frame[-5] ^= 1
    with pytest.raises(ChecksumMismatch):
        _decode(bytes(frame))


def test_prelude_is_split_from_the_body_across_any_chunking():
    stream = b'{"statusCode":201,"headers":{"x-a":"1"},"cookies":["c=1"]}' + b"\0" * 8
    stream += b"body\0with nul"
    for step in (1, 3, 8, 100):
        reader = PreludeReader()
        body = b"".join(reader.feed(stream[i : i + step]) for i in range(0, len(stream), step))
        assert body == b"body\0with nul"
        assert reader.finish() == HttpPrelude(201, {"x-a": "1"}, ("c=1",))


def test_prelude_without_a_body_or_without_anything():
    reader = PreludeReader()
    assert reader.feed(b'{"statusCode": 404}') == b""
    assert reader.finish().status_code == 404
    assert PreludeReader().finish() == HttpPrelude()


def test_bad_preludes_are_refused():
    with pytest.raises(PreludeError):
        PreludeReader().feed(b"not json" + b"\0" * 8)
    with pytest.raises(PreludeError):
        PreludeReader().feed(b'{"statusCode": 99}' + b"\0" * 8)
    with pytest.raises(PreludeError):
        PreludeReader().feed(b'{"a": 1}\0\0\0x\0\0\0\0')
    with pytest.raises(PreludeError):
        PreludeReader().feed(b" " * (17 * 1024))
    with pytest.raises(PreludeError):  # a digit to str.isdigit, not to int()
        PreludeReader().feed('{"statusCode": "\u00b2"}'.encode() + b"\0" * 8)
    reader = PreludeReader()
    reader.feed(b'{"statusCode": "201"}' + b"\0" * 8)
    assert reader.prelude is not None and reader.prelude.status_code == 201


def test_error_trailers_become_the_result():
    document = {"errorType": "Oops", "errorMessage": "it broke"}
    encoded = base64.b64encode(json.dumps(document).encode())
    result = midstream_error("Runtime.Custom", encoded)
    assert result.function_error == UNHANDLED
    assert json.loads(result.payload) == document
    assert error_fields(result) == ("Runtime.Custom", "it broke")
    assert decode_error_body(b"not base64!") == b"not base64!"
    bare = midstream_error("Runtime.Bare", None)
    assert error_fields(bare) == ("Runtime.Bare", "")


def test_error_fields_of_buffered_results():
    assert error_fields(InvocationResult(b'"fine"')) is None
    timeout = b'{"errorType":"Sandbox.Timedout","errorMessage":"Task timed out"}'
    assert error_fields(InvocationResult(timeout, UNHANDLED)) == (
        "Sandbox.Timedout",
        "Task timed out",
    )
    assert error_fields(InvocationResult(b"plain text", UNHANDLED)) == ("Unhandled", "plain text")


@pytest.mark.parametrize("status", [100, 101, 199])
def test_an_interim_status_is_no_prelude(status):
    """The buffered responses' rule: a function's response has a final status."""
    with pytest.raises(PreludeError):
        PreludeReader().feed(b'{"statusCode": %d}' % status + b"\0" * 8)
    assert PreludeReader().feed(b'{"statusCode": 599}' + b"\0" * 8) == b""
