"""The log store's writer: line events across reads, the rate guard, the group cap and
retention, on a real SQLite file in a temporary directory."""

from __future__ import annotations

import asyncio

from corral.telemetry import log_queries
from corral.telemetry.logs import DAY_MS, FunctionLogs, LogLimits


def _messages(store: FunctionLogs, group: str) -> list[str]:
    answer = log_queries.filter_events(store.db, group, {}, (0, 1 << 62), None, 10_000, None)
    return [e["message"] for e in answer["events"]]


def test_output_split_across_reads_makes_whole_line_events(tmp_path):
    async def run():
        store = FunctionLogs(tmp_path)
        stream = store.open_stream("f", "/aws/lambda/f", "s1")
        store.platform(stream, b"START RequestId: r\n")
        store.output(stream, b"hel")
        store.output(stream, b"lo\nwor")
        store.flush()
        store.output(stream, b"ld\n")
        store.platform(stream, b"END RequestId: r\n")
        store.flush()
        return _messages(store, "/aws/lambda/f")

    assert asyncio.run(run()) == ["START RequestId: r", "hello", "world", "END RequestId: r"]


def test_rate_guard_drops_the_excess_and_keeps_platform_lines(tmp_path):
    async def run():
        store = FunctionLogs(tmp_path, LogLimits(stream_bytes_per_s=1024))
        stream = store.open_stream("f", "/aws/lambda/f", "s1")
        for i in range(100):
            store.output(stream, f"line {i:03d} {'x' * 50}\n".encode())
        store.platform(stream, b"REPORT RequestId: r\n")
        stream.window_start -= 1.0  # the second is over: the drop is reported
        store.flush()
        return _messages(store, "/aws/lambda/f")

    messages = asyncio.run(run())
    kept = [m for m in messages if m.startswith("line ")]
    assert 0 < len(kept) < 100 and kept == [f"line {i:03d} {'x' * 50}" for i in range(len(kept))]
    # The notice comes before the invocation's last platform lines, not in the next one.
    assert messages[-1] == "REPORT RequestId: r"
    assert messages[-2].startswith("[Corral] Function output over 1024 bytes per second")


def test_group_cap_drops_the_oldest_events(tmp_path):
    async def run():
        store = FunctionLogs(tmp_path, LogLimits(group_max_bytes=20_000))
        stream = store.open_stream("f", "/aws/lambda/f", "s1")
        for i in range(50):
            store.platform(stream, f"event {i:03d} {'y' * 1000}\n".encode())
            store.flush()
        return store.db.group("/aws/lambda/f"), _messages(store, "/aws/lambda/f")

    group, messages = asyncio.run(run())
    assert group.stored_bytes <= 20_000
    assert messages[-1].startswith("event 049") and not messages[0].startswith("event 000")


def test_retention_sweep_deletes_expired_events(tmp_path):
    async def run():
        store = FunctionLogs(tmp_path)
        stream = store.open_stream("f", "/aws/lambda/f", "s1")
        store.platform(stream, b"old line\n")
        store.flush()
        store.db.set_retention("/aws/lambda/f", 1)
        kept_now = store.sweep()
        later = store.sweep(now_ms=stream_time(store) + 2 * DAY_MS)
        return kept_now, later, _messages(store, "/aws/lambda/f"), store.db.streams("/aws/lambda/f")

    def stream_time(store):
        return store.db.streams("/aws/lambda/f")[0].last_event_ms

    freed_now, freed_later, messages, streams = asyncio.run(run())
    assert freed_now == 0 and freed_later > 0
    assert messages == [] and streams == []


def test_total_cap_drops_the_servers_oldest_events_whatever_their_group(tmp_path):
    async def run():
        store = FunctionLogs(tmp_path, LogLimits(total_max_bytes=30_000))
        streams = [store.open_stream(f"f{g}", f"/aws/lambda/f{g}", "s1") for g in range(3)]
        for i in range(20):
            for g, stream in enumerate(streams):
                store.platform(stream, f"event {g} {i:03d} {'y' * 1000}\n".encode())
            store.flush()
        groups = store.db.groups()
        first = {g.name: _messages(store, g.name)[0] for g in groups}
        last = {g.name: _messages(store, g.name)[-1] for g in groups}
        return groups, first, last

    groups, first, last = asyncio.run(run())
    assert sum(g.stored_bytes for g in groups) <= 30_000  # each group alone is far below
    assert all(g.stored_bytes > 0 for g in groups)
    assert all(m.startswith(f"event {g} 019") for g, m in enumerate(last.values()))
    assert not any(m.startswith(f"event {g} 000") for g, m in enumerate(first.values()))


def test_an_idle_log_truncates_its_wal(tmp_path):
    async def run():
        store = FunctionLogs(tmp_path)
        stream = store.open_stream("f", "/aws/lambda/f", "s1")
        store.platform(stream, b"x" * 100_000 + b"\n")
        store.flush()
        wal = tmp_path / "logs.db-wal"
        await store.maintain()  # written since the last time: a passive checkpoint
        busy_size = wal.stat().st_size
        await store.maintain()  # nothing new: the WAL is truncated
        idle_size = wal.stat().st_size
        store.close()
        return busy_size, idle_size

    busy_size, idle_size = asyncio.run(run())
    assert busy_size > 100_000 and idle_size == 0


def _guarded(tmp_path, writes, limits=None):
    """Messages after `writes` (bytes of output, or ("platform", bytes)) and a flush."""

    async def run():
        store = FunctionLogs(tmp_path, limits or LogLimits(stream_bytes_per_s=1024))
        stream = store.open_stream("f", "/aws/lambda/f", "s1")
        for data in writes:
            if isinstance(data, tuple):
                store.platform(stream, data[1])
            else:
                store.output(stream, data)
        store.flush()
        messages = _messages(store, "/aws/lambda/f")
        store.close()
        return messages

    return asyncio.run(run())


def test_rate_guard_drops_whole_lines_and_counts_each_once(tmp_path):
    line = b"a" * 99 + b"\n"
    writes = [line * 9, b"b" * 600, b"c" * 600, b"c\n", b"after\n", ("p", b"END\n")]
    messages = _guarded(tmp_path, writes)
    # 900 bytes kept; the 1202-byte line over the budget is dropped whole: no fragment of
    # it is stored, and the line after it is not swallowed.
    assert messages[:9] == ["a" * 99] * 9
    assert not any(m.startswith(("b", "c")) for m in messages)
    notice = [m for m in messages if m.startswith("[Corral]")]
    assert notice == [
        "[Corral] Function output over 1024 bytes per second was dropped: 1 line(s), 1202 bytes"
    ]
    assert messages[-3:] == ["after", notice[0], "END"]


def test_a_line_begun_within_the_budget_is_finished(tmp_path):
    messages = _guarded(tmp_path, [b"x" * 1000, b"y" * 500 + b"\nnext\n", ("p", b"END\n")])
    assert messages[0] == "x" * 1000 + "y" * 500
    assert messages[-1] == "END"
