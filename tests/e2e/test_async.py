"""Asynchronous invocation: the durable queue, retries, destinations, dead letters, and
crash safety. Effects are observed through destinations (webhook records POSTed to a
server in this test process) and function logs, so the tests hold in any sandbox."""

from __future__ import annotations

import json
import re
import threading
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conformance import create_python_function, function_arn, unique_name
from tests.support import CorralProcess, lambda_client, wait_until

FAST_RETRIES = ("--async-retry-delays", "0.2,0.4")
ECHO = """
def handler(event, context):
    print("handled", event.get("id"))
    return {"id": event.get("id")}
"""
FAILING = """
def handler(event, context):
    print("attempt", event.get("id"))
    raise RuntimeError("always fails")
"""


class Webhook:
    """Collects JSON bodies POSTed to http://127.0.0.1:PORT/hook."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                with hook._lock:
                    hook.records.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.arn = f"arn:aws:webhook:::http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self.records)

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    """A server whose failed Event invocations are retried after 0.2 s and 0.4 s."""
    with CorralProcess(tmp_path_factory.mktemp("async"), *FAST_RETRIES) as server:
        yield server


def _logs(url: str, name: str) -> str:
    with urllib.request.urlopen(f"{url}/corral/v1/functions/{name}/logs", timeout=5) as reply:
        return reply.read().decode()


def _event(client, name: str, payload: dict, **kwargs) -> dict:
    response = client.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps(payload).encode(), **kwargs
    )
    assert response["StatusCode"] == 202
    return response


def test_success_goes_to_the_on_success_webhook(fast, webhook):
    client = lambda_client(fast.url)
    name = unique_name()
    create_python_function(client, name, ECHO)
    client.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": webhook.arn}}
    )
    response = _event(client, name, {"id": "s1"})
    (record,) = wait_until(webhook.snapshot, what="the success record")
    assert record["version"] == "1.0"
    assert record["requestContext"] == {
        "requestId": response["ResponseMetadata"]["RequestId"],
        "functionArn": function_arn(name, "$LATEST"),
        "condition": "Success",
        "approximateInvokeCount": 1,
    }
    assert record["requestPayload"] == {"id": "s1"}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"id": "s1"}


def test_failures_are_retried_then_sent_to_on_failure(fast, webhook):
    client = lambda_client(fast.url)
    name = unique_name()
    create_python_function(client, name, FAILING)
    client.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": webhook.arn}},
    )
    _event(client, name, {"id": "f1"})
    (record,) = wait_until(webhook.snapshot, what="the failure record")
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    # the record comes after the last attempt; its log lines reach the file within 50 ms
    wait_until(lambda: _logs(fast.url, name).count("attempt f1") == 3, what="3 attempts")


def test_no_retries_when_maximum_retry_attempts_is_zero(fast, webhook):
    client = lambda_client(fast.url)
    name = unique_name()
    create_python_function(client, name, FAILING)
    client.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": webhook.arn}},
    )
    _event(client, name, {"id": "z1"})
    (record,) = wait_until(webhook.snapshot, what="the failure record")
    assert record["requestContext"]["approximateInvokeCount"] == 1
    wait_until(lambda: "attempt z1" in _logs(fast.url, name), what="the attempt's log")
    assert _logs(fast.url, name).count("attempt z1") == 1


def test_function_destination_and_dead_letter_target(fast):
    client = lambda_client(fast.url)
    collector = unique_name("collector")
    create_python_function(
        client,
        collector,
        "import json\ndef handler(event, context):\n    print('got', json.dumps(event))\n",
    )
    name = unique_name()
    create_python_function(
        client, name, FAILING, DeadLetterConfig={"TargetArn": function_arn(collector)}
    )
    client.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": function_arn(collector)}},
    )
    _event(client, name, {"id": "d1"})

    def both():
        lines = [line for line in _logs(fast.url, collector).splitlines() if "got " in line]
        return lines if len(lines) == 2 else None

    received = [json.loads(line.split("got ", 1)[1]) for line in wait_until(both, what="2")]
    dead_letter = [r for r in received if r == {"id": "d1"}]
    records = [r for r in received if "requestContext" in r]
    assert len(dead_letter) == 1 and len(records) == 1
    assert records[0]["requestContext"]["condition"] == "RetriesExhausted"


def test_event_invoke_config_api(lam):
    name = unique_name()
    create_python_function(lam, name, ECHO)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName=name)
    put = lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    assert put["MaximumRetryAttempts"] == 1
    assert put["MaximumEventAgeInSeconds"] == 21600
    assert put["FunctionArn"] == function_arn(name, "$LATEST")
    updated = lam.update_function_event_invoke_config(
        FunctionName=name, MaximumEventAgeInSeconds=120
    )
    assert (updated["MaximumRetryAttempts"], updated["MaximumEventAgeInSeconds"]) == (1, 120)
    listed = lam.list_function_event_invoke_configs(FunctionName=name)
    assert [c["FunctionArn"] for c in listed["FunctionEventInvokeConfigs"]] == [
        function_arn(name, "$LATEST")
    ]
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.put_function_event_invoke_config(
            FunctionName=name,
            DestinationConfig={"OnSuccess": {"Destination": function_arn("no-such-fn")}},
        )
    lam.delete_function_event_invoke_config(FunctionName=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName=name)


def test_event_payload_over_1_mb_is_refused(lam):
    name = unique_name()
    create_python_function(lam, name, ECHO)
    with pytest.raises(lam.exceptions.RequestTooLargeException):
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"x" * (1024 * 1024 + 1))


def test_accepted_events_survive_a_kill_9(tmp_path, webhook):
    """Every event answered 202 is processed at least once, even when the server is killed
    with events queued and running."""
    server = CorralProcess(tmp_path, *FAST_RETRIES)
    client = lambda_client(server.start())
    name = unique_name()
    create_python_function(
        client,
        name,
        "import time\ndef handler(event, context):\n    time.sleep(0.2)\n    return event\n",
    )
    client.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": webhook.arn}}
    )
    ids = [uuid.uuid4().hex for _ in range(20)]
    for event_id in ids:
        _event(client, name, {"id": event_id})
    server.kill()
    restarted = CorralProcess(tmp_path, *FAST_RETRIES)
    try:
        restarted.start()

        def delivered():
            seen = {r["requestPayload"]["id"] for r in webhook.snapshot()}
            return seen if seen >= set(ids) else None

        assert wait_until(delivered, timeout_s=60, what="all 20 events") >= set(ids)
    finally:
        restarted.stop()


def test_queue_depth_is_observable(fast):
    with urllib.request.urlopen(f"{fast.url}/corral/v1/queue", timeout=5) as reply:
        stats = json.load(reply)
    assert set(stats) == {"depth", "running", "oldest_age_s"}


TRACED_FAILING = """
import os

def handler(event, context):
    print("trace", os.environ["_X_AMZN_TRACE_ID"])
    raise RuntimeError("always fails")
"""


def test_retries_of_an_event_stay_in_one_trace(fast):
    """Every attempt of one Event invocation runs in the trace it was invoked in (a new
    one when it named none), each with its own Parent (the attempt's segment)."""
    client = lambda_client(fast.url)
    name = unique_name()
    create_python_function(client, name, TRACED_FAILING)
    client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=2)
    _event(client, name, {})

    def traces():
        found = re.findall(r"^trace (\S+)$", _logs(fast.url, name), re.MULTILINE)
        return found if len(found) == 3 else None

    found = wait_until(traces, what="3 attempts")
    roots = {t.split(";")[0] for t in found}
    parents = {t.split(";")[1] for t in found}
    assert len(roots) == 1 and len(parents) == 3
