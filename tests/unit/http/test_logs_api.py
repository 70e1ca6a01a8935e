"""The CloudWatch Logs API handler in-process: queries run off the event loop."""

from __future__ import annotations

import asyncio
import threading

import orjson

from corral.http.logs_api import LogsApi
from corral.model.arn import Scope
from corral.telemetry import log_queries
from corral.telemetry.logs import FunctionLogs


async def _call(api: LogsApi, operation: str, params: dict) -> tuple[int, dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": orjson.dumps(params), "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await api({"type": "http"}, receive, send, f"Logs_20140328.{operation}")
    return sent[0]["status"], orjson.loads(sent[1]["body"])


def test_filter_log_events_scans_in_a_worker_thread_while_the_loop_runs(tmp_path, monkeypatch):
    """The scan waits for the loop to do other work: it can only finish if it does not
    run on the loop itself (on the loop it would wait out its fail-safe and report it)."""
    real_filter = log_queries.filter_events
    loop_ran = threading.Event()
    seen: dict = {}

    def slow_filter(db, *args):
        seen["thread"] = threading.get_ident()
        seen["loop_was_free"] = loop_ran.wait(timeout=10)
        return real_filter(db, *args)

    monkeypatch.setattr(log_queries, "filter_events", slow_filter)

    async def run():
        logs = FunctionLogs(tmp_path)
        stream = logs.open_stream("f", "/aws/lambda/f", "s1")
        logs.output(stream, b"hello\n")
        api = LogsApi(logs, Scope("us-east-1", "000000000000"))
        query = asyncio.ensure_future(
            _call(api, "FilterLogEvents", {"logGroupName": "/aws/lambda/f"})
        )
        while "thread" not in seen:  # the query has started
            await asyncio.sleep(0)
            if query.done():
                break
        loop_ran.set()  # other work on the loop, while the query is in flight
        status, body = await query
        logs.close()
        return status, body

    status, body = asyncio.run(run())
    assert status == 200
    assert [e["message"] for e in body["events"]] == ["hello"]
    assert seen["loop_was_free"]
    assert seen["thread"] != threading.main_thread().ident
