"""Runtimes inside environments: custom `provided` runtimes, the official awslambdaric
client unmodified, and the Runtime API's per-environment isolation."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support import (
    CorralProcess,
    lambda_client,
    make_zip,
    vendored_aws_lambda_ric,
    vendored_awslambdaric,
)

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


def test_awslambdaric_handler_that_overruns_its_timeout_is_killed(lam):
    bootstrap, client = vendored_awslambdaric()
    app = (
        "import time\n"
        "def handler(event, context):\n"
        "    if event.get('sleep'):\n"
        "        time.sleep(60)\n"
        "    return 'awake'\n"
    )
    name = _create(
        lam, {"bootstrap": bootstrap, "app.py": app, **client}, "provided.al2023", Timeout=1
    )
    response, body = _invoke(lam, name, {"sleep": True})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert body["errorMessage"].endswith("Task timed out after 1.00 seconds")
    # the killed runtime is replaced by a new one for the next invocation
    response, body = _invoke(lam, name, {})
    assert "FunctionError" not in response, body
    assert body == "awake"


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
    # Lambda's message names where it looked, as the function sees it (never a host path)
    name = _create(lam, {"README": "no bootstrap here"}, "provided.al2023")
    response, body = _invoke(lam, name, {})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.InvalidEntrypoint"
    request_id = response["ResponseMetadata"]["RequestId"]
    assert body["errorMessage"] == (
        f"RequestId: {request_id} Error: Couldn't find valid bootstrap(s): "
        "[/var/task/bootstrap /opt/bootstrap]"
    )
    # a bootstrap without the executable bit: Lambda's fork/exec error
    name = f"rt-{uuid.uuid4().hex[:10]}"
    code = make_zip({"bootstrap": "#!/bin/sh\n"}, {"bootstrap": 0o644})
    lam.create_function(
        FunctionName=name, Runtime="provided.al2", Role=ROLE, Handler="x", Code={"ZipFile": code}
    )
    response, body = _invoke(lam, name, {})
    assert body["errorType"] == "Runtime.InvalidEntrypoint"
    assert body["errorMessage"].endswith(" Error: fork/exec /var/task/bootstrap: permission denied")


def test_a_runtime_exiting_during_init_reports_its_exit_status(lam):
    # Lambda: "Runtime exited with error: exit status 3"; the init's output is in the tail
    name = _create(lam, {"bootstrap": "#!/bin/sh\necho init says bye\nexit 3\n"}, "provided.al2")
    response = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    body = json.loads(response["Payload"].read())
    request_id = response["ResponseMetadata"]["RequestId"]
    assert body == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status 3",
    }
    assert "init says bye" in base64.b64decode(response["LogResult"]).decode()


def test_the_first_invocations_tail_has_the_init_output(lam):
    code = "print('loading the module')\ndef handler(event, context):\n    print('handled')\n"
    name = _create(lam, {"app.py": code}, "python3.11")
    first = base64.b64decode(
        lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")["LogResult"]
    ).decode()
    assert "loading the module" in first
    assert first.index("loading the module") < first.index("handled")
    second = base64.b64decode(
        lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")["LogResult"]
    ).decode()
    assert "handled" in second
    assert "loading the module" not in second


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
        described = json.load(response)
    available = [r for r, v in described.items() if r.startswith("python") and "unavail" not in v]
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


# ---- custom runtimes: sh + curl, Go, the official Node.js client ------------------------

SHELL_BOOTSTRAP = r"""#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
while true; do
  HEADERS="$(mktemp)"
  EVENT="$(curl -sS -D "$HEADERS" "$API/next")"
  ID="$(grep -i Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)"
  case "$EVENT" in
    *sleep*) sleep 30 ;;
    *fail*) curl -sS -o /dev/null -X POST "$API/$ID/error" \
              -H "Lambda-Runtime-Function-Error-Type: Shell.Failed" \
              -d '{"errorMessage": "asked to fail", "errorType": "Shell.Failed"}' ;;
    *) curl -sS -o /dev/null -X POST "$API/$ID/response" -d "{\"got\": $EVENT}" ;;
  esac
done
"""


def test_shell_bootstrap_errors_and_timeouts(lam):
    name = _create(lam, {"bootstrap": SHELL_BOOTSTRAP}, "provided.al2", Timeout=1)
    assert _invoke(lam, name, {"ok": 1})[1] == {"got": {"ok": 1}}
    response, body = _invoke(lam, name, {"fail": 1})
    assert response["FunctionError"] == "Unhandled"
    assert body == {"errorMessage": "asked to fail", "errorType": "Shell.Failed"}
    response, body = _invoke(lam, name, {"sleep": 1})
    assert body["errorType"] == "Sandbox.Timedout"
    assert _invoke(lam, name, {"ok": 2})[1] == {"got": {"ok": 2}}


GO_BOOTSTRAP = """
package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/"
	for {
		resp, err := http.Get(api + "next")
		if err != nil {
			panic(err)
		}
		event, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		deadline := resp.Header.Get("Lambda-Runtime-Deadline-Ms")
		var in map[string]interface{}
		if err := json.Unmarshal(event, &in); err != nil {
			in = map[string]interface{}{}
		}
		if in["sleep"] != nil {
			time.Sleep(time.Minute)
		}
		if in["fail"] != nil {
			body, _ := json.Marshal(map[string]interface{}{
				"errorMessage": "go says no", "errorType": "errorString"})
			req, _ := http.NewRequest("POST", api+id+"/error", bytes.NewReader(body))
			req.Header.Set("Lambda-Runtime-Function-Error-Type", "errorString")
			r, err := http.DefaultClient.Do(req)
			if err == nil {
				r.Body.Close()
			}
			continue
		}
		out, _ := json.Marshal(map[string]interface{}{
			"echo": in, "fn": os.Getenv("AWS_LAMBDA_FUNCTION_NAME"), "deadline": deadline != ""})
		r, err := http.Post(api+id+"/response", "application/json", bytes.NewReader(out))
		if err == nil {
			r.Body.Close()
		}
	}
}
"""


@pytest.fixture(scope="module")
def go_bootstrap(tmp_path_factory) -> bytes:
    go = shutil.which("go")
    if go is None:
        pytest.skip("no Go toolchain: scripts/install-system-deps installs golang-go as root")
    build = tmp_path_factory.mktemp("go")
    (build / "main.go").write_text(GO_BOOTSTRAP)
    env = {**os.environ, "CGO_ENABLED": "0", "GO111MODULE": "off", "GOFLAGS": ""}
    env.setdefault("GOCACHE", str(Path.home() / ".cache" / "go-build"))
    subprocess.run(
        [go, "build", "-o", "bootstrap", "main.go"], cwd=build, env=env, check=True, timeout=300
    )
    return (build / "bootstrap").read_bytes()


def test_go_bootstrap_event_error_and_timeout(lam, go_bootstrap):
    name = _create(lam, {"bootstrap": go_bootstrap}, "provided.al2023", Timeout=1)
    response, body = _invoke(lam, name, {"k": "v"})
    assert "FunctionError" not in response, body
    assert body == {"echo": {"k": "v"}, "fn": name, "deadline": True}
    response, body = _invoke(lam, name, {"fail": True})
    assert response["FunctionError"] == "Unhandled"
    assert body == {"errorMessage": "go says no", "errorType": "errorString"}
    response, body = _invoke(lam, name, {"sleep": True})
    assert body["errorType"] == "Sandbox.Timedout"


@pytest.fixture(scope="module")
def aws_lambda_ric() -> dict[str, bytes]:
    if shutil.which("autoreconf") is None or shutil.which("cmake") is None:
        pytest.skip("aws-lambda-ric's native build needs autoconf, automake, libtool, cmake")
    return vendored_aws_lambda_ric()


@pytest.mark.timeout(600)  # the first run on a machine builds the client (~2 minutes)
def test_official_node_client_runs_unmodified_as_a_custom_runtime(lam, aws_lambda_ric):
    node = os.path.realpath(shutil.which("node") or "/usr/bin/node")
    bootstrap = f"#!/bin/sh\nexec {node} node_modules/aws-lambda-ric/bin/index.mjs index.handler\n"
    app = (
        "exports.handler = async (event, context) => {\n"
        "  if (event.fail) throw new TypeError('ric says no');\n"
        "  if (event.sleep) await new Promise((r) => setTimeout(r, 60000));\n"
        "  return { echo: event, fn: context.functionName,\n"
        "           left: context.getRemainingTimeInMillis() };\n"
        "};\n"
    )
    files = {"bootstrap": bootstrap, "index.js": app, **aws_lambda_ric}
    name = _create(lam, files, "provided.al2023", handler="index.handler", Timeout=2)
    response, body = _invoke(lam, name, {"k": [1]})
    assert "FunctionError" not in response, body
    assert body["echo"] == {"k": [1]}
    assert body["fn"] == name
    assert 0 < body["left"] <= 2000
    response, body = _invoke(lam, name, {"fail": True})
    assert response["FunctionError"] == "Unhandled"
    assert (body["errorType"], body["errorMessage"]) == ("TypeError", "ric says no")
    response, body = _invoke(lam, name, {"sleep": True})
    assert body["errorType"] == "Sandbox.Timedout"


# ---- Python: a dependency vendored in the zip --------------------------------------------


def test_python_function_imports_a_dependency_bundled_in_its_zip(lam):
    import jmespath  # pure Python, in the test venv; the function sees only its zip

    package = Path(jmespath.__file__).parent
    files: dict[str, str | bytes] = {
        f"jmespath/{p.relative_to(package)}": p.read_bytes()
        for p in package.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    files["app.py"] = (
        "import jmespath\n"
        "def handler(event, context):\n"
        "    return {'found': jmespath.search('a.b[1]', event), 'from': jmespath.__file__}\n"
    )
    name = _create(lam, files, "python3.11")
    _, body = _invoke(lam, name, {"a": {"b": [1, 2, 3]}})
    assert body == {"found": 2, "from": "/var/task/jmespath/__init__.py"}


# ---- the process sandbox runs every family too ---------------------------------------------


def test_node_java_and_custom_runtimes_under_the_process_sandbox(tmp_path, go_bootstrap):
    with CorralProcess(tmp_path, "--sandbox", "process") as server:
        lam = lambda_client(server.url)
        app = {"index.mjs": "export const handler = async (e) => e;"}
        node = _create(lam, app, "nodejs20.x", handler="index.handler")
        assert _invoke(lam, node, {"n": 1})[1] == {"n": 1}
        go = _create(lam, {"bootstrap": go_bootstrap}, "provided.al2023")
        assert _invoke(lam, go, {"g": 1})[1]["echo"] == {"g": 1}
        if shutil.which("javac"):
            java = _create(lam, {"Echo.java": "x"}, "java17", handler="example.Missing")
            _, body = _invoke(lam, java, {})
            assert body["errorType"] == "java.lang.ClassNotFoundException"
