"""Runtimes inside environments: custom `provided` runtimes, the official awslambdaric
client unmodified, and the Runtime API's per-environment isolation."""

from __future__ import annotations

import json
import urllib.request
import uuid

from tests.support import make_zip, vendored_awslambdaric

ROLE = "arn:aws:iam::000000000000:role/x"


def _create(
    lam, files: dict[str, str | bytes], runtime: str, handler: str = "app.handler", **kw
) -> str:
    name = f"rt-{uuid.uuid4().hex[:10]}"
    modes = {"bootstrap": 0o755} if "bootstrap" in files else None
    lam.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": make_zip(files, modes)},
        **kw,
    )
    return name


def _invoke(lam, name: str, payload: object) -> tuple[dict, object]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    return response, json.loads(response["Payload"].read())


def test_awslambdaric_runs_unmodified_as_a_custom_runtime(lam):
    # The official client, vendored into the zip, started by the function's own bootstrap.
    bootstrap, client = vendored_awslambdaric()
    app = (
        "def handler(event, context):\n"
        "    return {'echo': event, 'fn': context.function_name,\n"
        "            'left': context.get_remaining_time_in_millis()}\n"
    )
    files = {"bootstrap": bootstrap, "app.py": app, **client}
    name = _create(lam, files, "provided.al2023", Timeout=5)
    response, body = _invoke(lam, name, {"k": [1, 2]})
    assert "FunctionError" not in response, body
    assert body["echo"] == {"k": [1, 2]}
    assert body["fn"] == name
    assert 0 < body["left"] <= 5000


def test_awslambdaric_reports_handler_errors(lam):
    bootstrap, client = vendored_awslambdaric()
    app = "def handler(event, context):\n    raise ValueError('nope')\n"
    name = _create(lam, {"bootstrap": bootstrap, "app.py": app, **client}, "provided.al2023")
    response, body = _invoke(lam, name, {})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "nope"


def test_shell_bootstrap_speaks_the_runtime_api(lam):
    # A custom runtime in plain sh + curl, as in Lambda's custom runtime tutorial.
    bootstrap = r"""#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
while true; do
  HEADERS="$(mktemp)"
  EVENT="$(curl -sS -D "$HEADERS" "$API/next")"
  ID="$(grep -i Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)"
  BODY="{\"got\": $EVENT, \"handler\": \"$_HANDLER\"}"
  curl -sS -o /dev/null -X POST "$API/$ID/response" -d "$BODY"
done
"""
    name = _create(lam, {"bootstrap": bootstrap}, "provided.al2023", handler="function.handler")
    response, body = _invoke(lam, name, {"x": 1})
    assert "FunctionError" not in response, body
    assert body == {"got": {"x": 1}, "handler": "function.handler"}


def test_missing_bootstrap_is_invalid_entrypoint(lam):
    name = _create(lam, {"README": "no bootstrap here"}, "provided.al2023")
    response, body = _invoke(lam, name, {})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.InvalidEntrypoint"


def test_runtime_api_refuses_other_request_ids(lam):
    # A function that tries to answer an invocation that is not its own, on its own
    # Runtime API, is refused; other environments' APIs are other listeners entirely.
    app = (
        "import os, urllib.request, urllib.error\n"
        "def handler(event, context):\n"
        "    api = os.environ['AWS_LAMBDA_RUNTIME_API']\n"
        "    url = f'http://{api}/2018-06-01/runtime/invocation/not-mine/response'\n"
        "    try:\n"
        "        urllib.request.urlopen(urllib.request.Request(url, b'{}', method='POST'))\n"
        "        return {'status': 202}\n"
        "    except urllib.error.HTTPError as e:\n"
        "        return {'status': e.code, 'body': e.read().decode()}\n"
    )
    name = _create(lam, {"app.py": app}, "python3.11")
    _, body = _invoke(lam, name, {})
    assert body["status"] == 400
    assert "InvalidRequestID" in body["body"]


def test_python_runtimes_map_to_host_interpreters(lam, corral_url):
    with urllib.request.urlopen(f"{corral_url}/corral/v1/runtimes", timeout=5) as response:
        available = [r for r in json.load(response) if r.startswith("python")]
    assert "python3.11" in available
    app = "import sys\ndef handler(event, context):\n    return list(sys.version_info[:2])\n"
    for runtime in available:
        name = _create(lam, {"app.py": app}, runtime)
        _, body = _invoke(lam, name, {})
        assert body == [3, int(runtime.rsplit(".", 1)[1])], runtime


def test_function_sees_only_its_own_environment_variables(lam):
    app = "import os\ndef handler(event, context):\n    return dict(os.environ)\n"
    name = _create(lam, {"app.py": app}, "python3.11", Environment={"Variables": {"MINE": "1"}})
    _, env = _invoke(lam, name, {})
    assert env["MINE"] == "1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert "CORRAL_TEST_SECRET" not in env
