"""InvokeStream, the caller's side of a streamed invocation: order, the end, the buffered
case, backpressure on the runtime's connection, and a caller that goes away."""

from __future__ import annotations

import asyncio

from corral.invoke.streaming import HIGH_WATER, InvokeStream
from corral.model.invocation import UNHANDLED, InvocationResult


class Flow:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


async def _drain(stream: InvokeStream) -> list[bytes]:
    return [chunk async for chunk in stream]


def test_chunks_then_the_result():
    async def main():
        stream = InvokeStream("r", "$LATEST")
        stream.start("text/plain", Flow())
        reader = asyncio.create_task(_drain(stream))
        stream.write(b"a")
        await asyncio.sleep(0)
        stream.write(b"b")
        stream.write(b"c")
        stream.finish(stream.end())
        return await reader, stream

    chunks, stream = asyncio.run(main())
    assert b"".join(chunks) == b"abc"
    assert stream.streamed and stream.content_type == "text/plain"
    assert stream.error is None


def test_a_buffered_answer_is_one_chunk_and_an_error_none():
    async def main():
        ok = InvokeStream("r", "1")
        ok.finish(InvocationResult(b'{"x": 1}'))
        failed = InvokeStream("r", "1")
        failed.finish(InvocationResult(b'{"errorType":"E","errorMessage":"m"}', UNHANDLED))
        return await _drain(ok), await _drain(failed), failed

    ok, failed, stream = asyncio.run(main())
    assert ok == [b'{"x": 1}']
    assert failed == []
    assert not stream.streamed and stream.error == ("E", "m")


def test_a_slow_caller_pauses_the_runtime_until_it_catches_up():
    async def main():
        flow = Flow()
        stream = InvokeStream("r", "$LATEST")
        stream.start("application/octet-stream", flow)
        stream.write(b"x" * HIGH_WATER)
        assert flow.calls == []
        stream.write(b"x")
        assert flow.calls == ["pause"]
        stream.write(b"x")
        assert flow.calls == ["pause"]  # once
        chunk = await stream.__anext__()
        assert len(chunk) == HIGH_WATER + 2
        assert flow.calls == ["pause", "resume"]

    asyncio.run(main())


def test_a_caller_that_leaves_drops_the_rest_and_never_blocks_the_runtime():
    async def main():
        flow = Flow()
        stream = InvokeStream("r", "$LATEST")
        stream.start("application/octet-stream", flow)
        reader = asyncio.create_task(_drain(stream))
        await asyncio.sleep(0)
        stream.write(b"x" * (HIGH_WATER + 1))
        stream.close()
        stream.write(b"more")  # dropped
        chunks = await reader
        stream.finish(stream.end())
        return flow, chunks

    flow, chunks = asyncio.run(main())
    assert flow.calls == ["pause", "resume"]
    assert chunks == []


def test_dry_run_is_finished_from_the_start():
    async def main():
        stream = InvokeStream("r", "$LATEST", status=204)
        return await _drain(stream), stream

    chunks, stream = asyncio.run(main())
    assert chunks == [] and stream.status == 204 and stream.error is None
