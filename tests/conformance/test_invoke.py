"""Invoke: invocation types, logs, the context object and environment, function errors.

References: API_Invoke, "Lambda context object in Python", "Using Lambda environment
variables", "Troubleshoot invocation issues", "Lambda quotas" (docs.aws.amazon.com/lambda).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.conformance import (
    ACCOUNT,
    assert_client_error,
    create_python_function,
    function_arn,
    invoke_json,
    python_zip,
    unique_name,
    wait_updated,
)
from tests.support import lambda_client, wait_until

CONTEXT_PROBE = """
def handler(event, context):
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
"""


def _function_error(response: dict, payload: dict, error_type: str) -> str:
    """A function error is HTTP 200 + X-Amz-Function-Error (API_Invoke); returns the message."""
    assert response["StatusCode"] == 200
    assert response.get("FunctionError") == "Unhandled", payload
    assert payload["errorType"] == error_type, payload
    return payload["errorMessage"]


# ---- invocation types ------------------------------------------------------------------


def test_request_response_returns_the_handler_result(lam):
    name = unique_name()
    create_python_function(
        lam, name, "def handler(event, context):\n    return {'sum': event['a'] + event['b']}\n"
    )

    response, payload = invoke_json(lam, name, {"a": 2, "b": 40})

    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    assert payload == {"sum": 42}


def test_event_payload_arrives_untouched(lam):
    name = unique_name()
    create_python_function(lam, name)  # returns the event it got
    document = {
        "nested": {"list": [1, 2.5, -3e-7, None, True, False, [], {}], "deep": {"a": {"b": "c"}}},
        "unicode": "ünïcødé ☃ 𝄞",
        "escapes": 'quote " backslash \\ newline \n tab \t',
        "big": 12345678901234567890,
        "empty": "",
    }
    # The canonical form python3.11's runtime writes (json.dumps defaults), so a handler
    # returning its event gives back the same bytes when nothing altered it on the way.
    sent = json.dumps(document).encode()

    response = lam.invoke(FunctionName=name, Payload=sent)

    assert response["StatusCode"] == 200
    assert response["Payload"].read() == sent


def test_dry_run_returns_204_without_running(lam):
    name = unique_name()
    create_python_function(lam, name)

    response = lam.invoke(FunctionName=name, InvocationType="DryRun", Payload=b"{}")

    assert response["StatusCode"] == 204
    assert response["Payload"].read() == b""


def test_event_invocation_returns_202_and_runs_the_function(lam):
    # The function cannot write to this host (sandboxed): it prints a marker into its log,
    # read back through Corral's log endpoint.
    name = unique_name()
    create_python_function(
        lam,
        name,
        """
        def handler(event, context):
            print(event["marker"])
        """,
    )
    marker = f"ran-{name}"

    response = lam.invoke(
        FunctionName=name,
        InvocationType="Event",
        Payload=json.dumps({"marker": marker}).encode(),
    )

    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    logs_url = f"{lam.meta.endpoint_url}/corral/v1/functions/{name}/logs?offset=0"

    def logged() -> bool:
        with urllib.request.urlopen(logs_url, timeout=5) as reply:
            return marker in reply.read().decode()

    wait_until(logged, timeout_s=20, what=f"{marker} logged by the async invocation")


# ---- logs --------------------------------------------------------------------------------

REPORT = (
    r"REPORT RequestId: {rid}\tDuration: \d+\.\d{{2}} ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: 128 MB\tMax Memory Used: \d+ MB"
)


def _tail(lam, name: str) -> tuple[str, str]:
    response = lam.invoke(FunctionName=name, LogType="Tail", Payload=b"{}")
    assert "FunctionError" not in response
    return response["ResponseMetadata"]["RequestId"], base64.b64decode(
        response["LogResult"]
    ).decode()


def test_log_tail_has_start_end_report_and_handler_output(lam):
    name = unique_name()
    create_python_function(
        lam, name, "def handler(event, context):\n    print('hello from the handler')\n"
    )

    request_id, log = _tail(lam, name)

    assert f"START RequestId: {request_id} Version: $LATEST" in log
    assert "hello from the handler" in log
    assert f"END RequestId: {request_id}" in log
    assert re.search(REPORT.format(rid=re.escape(request_id)), log), log
    assert log.index("START") < log.index("hello from the handler") < log.index("END")


def test_init_duration_is_reported_on_the_cold_invoke_only(lam):
    name = unique_name()
    create_python_function(lam, name)

    cold_id, cold = _tail(lam, name)
    warm_id, warm = _tail(lam, name)

    cold_report = re.search(REPORT.format(rid=re.escape(cold_id)) + r".*", cold)
    warm_report = re.search(REPORT.format(rid=re.escape(warm_id)) + r".*", warm)
    assert cold_report and warm_report, (cold, warm)
    assert re.search(r"\tInit Duration: \d+\.\d{2} ms", cold_report.group(0)), cold
    assert "Init Duration" not in warm_report.group(0), warm


# ---- the context object and the environment ------------------------------------------


def test_context_object_describes_the_invocation(lam):
    name = unique_name()
    create_python_function(lam, name, CONTEXT_PROBE, MemorySize=256, Timeout=7)

    response, ctx = invoke_json(lam, name)

    assert ctx["function_name"] == name
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == function_arn(name)
    # A string in the Python runtime: it is AWS_LAMBDA_FUNCTION_MEMORY_SIZE as read
    # (awslambdaric lambda_context.py).
    assert ctx["memory_limit_in_mb"] == "256"
    # The Invoke response's x-amzn-RequestId is the invocation's request id.
    assert ctx["aws_request_id"] == response["ResponseMetadata"]["RequestId"]
    assert ctx["log_group_name"] == f"/aws/lambda/{name}"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]+", ctx["log_stream_name"])
    assert 0 < ctx["remaining_ms"] <= 7000


def test_client_context_reaches_the_handler(lam):
    name = unique_name()
    create_python_function(
        lam,
        name,
        """
        def handler(event, context):
            cc = context.client_context
            return {"custom": cc.custom, "env": cc.env}
        """,
    )
    client_context = {
        "client": {"installation_id": "i-1", "app_title": "corral-tests"},
        "custom": {"trace": "abc", "n": 1},
        "env": {"platform": "linux"},
    }
    encoded = base64.b64encode(json.dumps(client_context).encode()).decode()

    _, result = invoke_json(lam, name, ClientContext=encoded)

    assert result == {"custom": {"trace": "abc", "n": 1}, "env": {"platform": "linux"}}


def test_environment_variables_inside_the_function(lam):
    name = unique_name()
    keys = [
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "_HANDLER",
        "LAMBDA_TASK_ROOT",
        "TZ",
        "GREETING",
    ]
    create_python_function(
        lam,
        name,
        f"import os\n\ndef handler(event, context):\n"
        f"    env = {{k: os.environ.get(k) for k in {keys!r}}}\n"
        f"    env['cwd_is_task_root'] = os.getcwd() == env['LAMBDA_TASK_ROOT']\n"
        f"    env['handler_in_task_root'] = os.path.isfile(env['LAMBDA_TASK_ROOT'] + '/app.py')\n"
        f"    return env\n",
        MemorySize=256,
        Environment={"Variables": {"GREETING": "hello"}},
    )

    _, env = invoke_json(lam, name)

    # Lambda's task root is /var/task; the `process` sandbox runs the code where it was
    # unpacked (README "Differences"), so here it is the working directory holding the code.
    assert env.pop("cwd_is_task_root") and env.pop("handler_in_task_root")
    env["LAMBDA_TASK_ROOT"] = "/var/task" if env["LAMBDA_TASK_ROOT"] else None
    # "Defined runtime environment variables" (configuration-envvars.html).
    assert env == {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "_HANDLER": "app.handler",
        "LAMBDA_TASK_ROOT": "/var/task",
        "TZ": ":UTC",
        "GREETING": "hello",
    }


# ---- function errors ----------------------------------------------------------------------


def test_raising_handler_is_unhandled_function_error(lam):
    name = unique_name()
    create_python_function(
        lam, name, "def handler(event, context):\n    raise ValueError('boom')\n"
    )

    response, payload = invoke_json(lam, name)

    assert _function_error(response, payload, "ValueError") == "boom"
    assert payload["requestId"] == response["ResponseMetadata"]["RequestId"]
    assert isinstance(payload["stackTrace"], list) and payload["stackTrace"]
    assert set(payload) == {"errorMessage", "errorType", "requestId", "stackTrace"}


def test_import_error_is_runtime_import_module_error(lam):
    name = unique_name()
    create_python_function(
        lam,
        name,
        "import no_such_module_corral\n\ndef handler(event, context):\n    return 1\n",
    )

    response, payload = invoke_json(lam, name)

    message = _function_error(response, payload, "Runtime.ImportModuleError")
    assert message == "Unable to import module 'app': No module named 'no_such_module_corral'"


def test_missing_handler_is_runtime_handler_not_found(lam):
    name = unique_name()
    create_python_function(lam, name, handler="app.nothere")

    response, payload = invoke_json(lam, name)

    message = _function_error(response, payload, "Runtime.HandlerNotFound")
    assert message == "Handler 'nothere' missing on module 'app'"


def test_syntax_error_is_runtime_user_code_syntax_error(lam):
    name = unique_name()
    create_python_function(lam, name, "def handler(event, context)\n    return 1\n")

    response, payload = invoke_json(lam, name)

    message = _function_error(response, payload, "Runtime.UserCodeSyntaxError")
    assert message.startswith("Syntax error in module 'app'"), message


def test_unserialisable_result_is_runtime_marshal_error(lam):
    name = unique_name()
    create_python_function(lam, name, "def handler(event, context):\n    return {1, 2}\n")

    response, payload = invoke_json(lam, name)

    message = _function_error(response, payload, "Runtime.MarshalError")
    assert message.startswith("Unable to marshal response:"), message


EXIT_ON_REQUEST = """
import sys

def handler(event, context):
    if event.get("exit"):
        sys.exit(1)
    return "alive"
"""


def test_sys_exit_is_runtime_exit_error_and_the_next_invoke_works(lam):
    name = unique_name()
    create_python_function(lam, name, EXIT_ON_REQUEST)

    response, payload = invoke_json(lam, name, {"exit": True})
    after, result = invoke_json(lam, name, {})

    message = _function_error(response, payload, "Runtime.ExitError")
    assert "Runtime exited with error: exit status 1" in message, message
    assert "FunctionError" not in after, result
    assert result == "alive"


SLEEP_ON_REQUEST = """
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return "done"
"""


def test_timeout_is_sandbox_timedout_and_the_next_invoke_works(lam):
    name = unique_name()
    create_python_function(lam, name, SLEEP_ON_REQUEST, Timeout=1)

    response, payload = invoke_json(lam, name, {"sleep": 5})
    after, result = invoke_json(lam, name, {"sleep": 0})

    # Lambda: "RequestId: <id> Error: Task timed out after 1.00 seconds" (older runtimes
    # prefix a timestamp instead); the quoted part is stable.
    message = _function_error(response, payload, "Sandbox.Timedout")
    assert "Task timed out after 1.00 seconds" in message, message
    assert "FunctionError" not in after, result
    assert result == "done"


# ---- payload limits ----------------------------------------------------------------------


def test_request_payload_over_6_mb_is_request_too_large(lam):
    name = unique_name()
    create_python_function(lam, name)
    payload = b'"' + b"a" * (6 * 1024 * 1024) + b'"'

    with pytest.raises(ClientError) as excinfo:
        lam.invoke(FunctionName=name, Payload=payload)
    assert_client_error(
        excinfo,
        "RequestTooLargeException",
        413,
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
    )


def test_response_over_6_mb_is_response_size_too_large(lam):
    name = unique_name()
    create_python_function(lam, name, "def handler(event, context):\n    return 'a' * 7_000_000\n")

    response, payload = invoke_json(lam, name)

    message = _function_error(response, payload, "Function.ResponseSizeTooLarge")
    assert message == "Response payload size exceeded maximum allowed payload size (6291556 bytes)."


# ---- addressing --------------------------------------------------------------------------


def test_invoking_an_unknown_function_is_resource_not_found(lam):
    name = unique_name("missing")

    with pytest.raises(ClientError) as excinfo:
        lam.invoke(FunctionName=name, Payload=b"{}")
    assert_client_error(
        excinfo, "ResourceNotFoundException", 404, f"Function not found: {function_arn(name)}"
    )


@pytest.mark.parametrize("form", ["arn", "partial_arn"])
def test_invoke_by_arn(lam, form):
    name = unique_name()
    create_python_function(lam, name, CONTEXT_PROBE)
    reference = function_arn(name) if form == "arn" else f"{ACCOUNT}:function:{name}"

    response, ctx = invoke_json(lam, reference)

    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert ctx["function_name"] == name


def test_invoke_with_latest_qualifier(lam):
    name = unique_name()
    create_python_function(lam, name, CONTEXT_PROBE)

    response, ctx = invoke_json(lam, name, Qualifier="$LATEST")

    assert response["ExecutedVersion"] == "$LATEST"
    # invoked_function_arn is the ARN the caller used, qualifier included.
    assert ctx["invoked_function_arn"] == function_arn(name, "$LATEST")


# ---- environments ------------------------------------------------------------------------


def test_warm_environment_keeps_module_state(lam):
    name = unique_name()
    create_python_function(
        lam,
        name,
        """
        count = 0

        def handler(event, context):
            global count
            count += 1
            return count
        """,
    )

    _, first = invoke_json(lam, name)
    _, second = invoke_json(lam, name)

    assert (first, second) == (1, 2)


def test_code_update_runs_new_code_on_the_next_invoke(lam):
    name = unique_name()
    create_python_function(lam, name, "def handler(event, context):\n    return 'v1'\n")
    _, before = invoke_json(lam, name)

    lam.update_function_code(
        FunctionName=name, ZipFile=python_zip("def handler(event, context):\n    return 'v2'\n")
    )
    wait_updated(lam, name)
    _, after = invoke_json(lam, name)

    assert (before, after) == ("v1", "v2")


def test_concurrent_invokes_run_in_several_environments(corral_url):
    lam = lambda_client(corral_url, max_pool_connections=16)
    name = unique_name()
    create_python_function(
        lam,
        name,
        """
        import time

        def handler(event, context):
            time.sleep(0.5)
            return context.log_stream_name
        """,
    )
    threads = 8
    barrier = threading.Barrier(threads)

    def call(_: int):
        barrier.wait(timeout=30)
        return invoke_json(lam, name)

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(call, range(threads)))

    assert all(r["StatusCode"] == 200 and "FunctionError" not in r for r, _ in results), results
    streams = {stream for _, stream in results}
    # One environment serves one invocation at a time, so overlapping calls need several.
    assert len(streams) > 1, streams
