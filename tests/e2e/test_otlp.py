"""OpenTelemetry export: with --otlp-endpoint, each invocation becomes a span posted over
OTLP/HTTP JSON to a collector (here a small HTTP server in the test), in the trace named
by the invocation's X-Amzn-Trace-Id."""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support import CorralProcess, lambda_client, make_zip, wait_until

ROLE = "arn:aws:iam::000000000000:role/x"
SOURCE = """
import os

def handler(event, context):
    if event.get("fail"):
        raise ValueError("x")
    return os.environ["_X_AMZN_TRACE_ID"]
"""


@pytest.fixture
def collector():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "body": json.loads(body)})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def _spans(received: list[dict]) -> list[dict]:
    return [
        span
        for post in received
        for resource in post["body"]["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]


def test_invocations_are_exported_as_spans_in_their_trace(tmp_path, collector):
    url, received = collector
    with CorralProcess(tmp_path, "--otlp-endpoint", url) as server:
        lam = lambda_client(server.url)
        name = f"otlp-{uuid.uuid4().hex[:8]}"
        lam.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": SOURCE})},
        )
        trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        request = urllib.request.Request(
            f"{server.url}/2015-03-31/functions/{name}/invocations",
            data=b"{}",
            method="POST",
            headers={"X-Amzn-Trace-Id": trace},
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            traced_id = reply.headers["x-amzn-RequestId"]
            seen = json.loads(reply.read())  # the function's _X_AMZN_TRACE_ID
        failed = lam.invoke(FunctionName=name, Payload=b'{"fail": true}')
        failed_id = failed["ResponseMetadata"]["RequestId"]

        def both():
            spans = {_attrs(s)["faas.invocation_id"]: s for s in _spans(received)}
            return spans if {traced_id, failed_id} <= set(spans) else None

        spans = wait_until(both, what="two exported spans")
    assert {post["path"] for post in received} == {"/v1/traces"}
    traced = spans[traced_id]
    assert traced["traceId"] == "5759e988bd862e3fe1be46a994272793"
    assert traced["parentSpanId"] == "53995c3f42cd8ad8"
    # The function's Parent is the invocation span: what it traces are the span's children.
    assert seen.startswith("Root=1-5759e988-bd862e3fe1be46a994272793;")
    assert f";Parent={traced['spanId']};" in seen and traced["spanId"] != "53995c3f42cd8ad8"
    assert traced["name"] == name and traced["kind"] == 2
    assert int(traced["startTimeUnixNano"]) <= int(traced["endTimeUnixNano"])
    assert _attrs(traced)["faas.coldstart"] is True
    errored = spans[failed_id]
    assert errored["status"] == {"code": 2, "message": "Unhandled"}
    assert _attrs(errored)["faas.coldstart"] is False and len(errored["traceId"]) == 32


def _attrs(span: dict) -> dict:
    return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}
