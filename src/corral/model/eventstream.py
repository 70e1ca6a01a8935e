"""AWS event-stream framing (`application/vnd.amazon.eventstream`): the encoder.

The wire format botocore's `botocore.eventstream` decodes (it has no encoder, and awscrt
only frames messages inside its own RPC client), as InvokeWithResponseStream uses it:

    total length      u32 big-endian   (the whole message, this field and the CRCs included)
    headers length    u32 big-endian
    prelude CRC32     u32 big-endian   (of the 8 bytes above)
    headers           name length u8, name, value type u8 (7 = string), length u16, value
    payload
    message CRC32     u32 big-endian   (of everything before it)

Only string headers are needed here (`:event-type`, `:message-type`, `:content-type`).
"""

from __future__ import annotations

import struct
import zlib

import orjson

CONTENT_TYPE = b"application/vnd.amazon.eventstream"
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024  # botocore's decoder refuses larger messages
PAYLOAD_CHUNK_MAX_BYTES = 1024 * 1024  # a runtime's chunk of any size is split to this
_STRING = 7
_PRELUDE = struct.Struct(">II")
_U32 = struct.Struct(">I")


def _header(name: bytes, value: bytes) -> bytes:
    return bytes((len(name),)) + name + bytes((_STRING,)) + len(value).to_bytes(2, "big") + value


def encode_message(headers: list[tuple[bytes, bytes]], payload: bytes) -> bytes:
    """One event-stream message with string headers."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError("event-stream payloads are limited to 16 MiB")
    encoded = b"".join(_header(name, value) for name, value in headers)
    prelude = _PRELUDE.pack(16 + len(encoded) + len(payload), len(encoded))
    prelude += _U32.pack(zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + _U32.pack(zlib.crc32(message))


def _event(event_type: bytes, content_type: bytes, payload: bytes) -> bytes:
    headers = [
        (b":event-type", event_type),
        (b":content-type", content_type),
        (b":message-type", b"event"),
    ]
    return encode_message(headers, payload)


def payload_chunks(data: bytes) -> bytes:
    """`PayloadChunk` events carrying `data` (one per MiB), concatenated."""
    if len(data) <= PAYLOAD_CHUNK_MAX_BYTES:
        return _event(b"PayloadChunk", b"application/octet-stream", data)
    step = PAYLOAD_CHUNK_MAX_BYTES
    return b"".join(
        _event(b"PayloadChunk", b"application/octet-stream", data[i : i + step])
        for i in range(0, len(data), step)
    )


def invoke_complete(
    error_code: str | None = None, error_details: str | None = None, log_result: str | None = None
) -> bytes:
    """The `InvokeComplete` event that ends an InvokeWithResponseStream response; members
    left out when None, as Lambda leaves them out on success."""
    body: dict[str, str] = {}
    if error_code is not None:
        body["ErrorCode"] = error_code
    if error_details is not None:
        body["ErrorDetails"] = error_details
    if log_result is not None:
        body["LogResult"] = log_result
    return _event(b"InvokeComplete", b"application/json", orjson.dumps(body))
