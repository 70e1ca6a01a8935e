"""Reserved concurrency throttles invocations; code storage is bounded.

Lambda developer guide, "Configuring reserved concurrency" and "Lambda quotas"; botocore
shapes TooManyRequestsException (Reason) and CodeStorageExceededException.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.conformance import (
    assert_client_error,
    create_python_function,
    invoke_json,
    python_zip,
    unique_name,
)
from tests.support import CorralProcess, lambda_client, make_zip, wait_until

SLEEPER = """
import time
def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return "done"
"""


def test_reserved_concurrency_of_zero_throttles_every_invoke(lam):
    name = unique_name()
    create_python_function(lam, name, SLEEPER)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as excinfo:
        invoke_json(lam, name)
    assert_client_error(excinfo, "TooManyRequestsException", 429, "Rate Exceeded.")
    assert excinfo.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    lam.delete_function_concurrency(FunctionName=name)
    assert invoke_json(lam, name)[1] == "done"


def test_reserved_concurrency_caps_simultaneous_invocations(lam, corral_url):
    name = unique_name()
    create_python_function(lam, name, SLEEPER, Timeout=10)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    invoke_json(lam, name)  # warm, so that the next one is running as soon as it is sent
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(invoke_json, lam, name, {"sleep": 1.5})

        def throttled():
            try:
                invoke_json(lam, name)
            except ClientError as exc:
                return exc
            return None

        error = wait_until(throttled, what="a throttled second invocation")
        assert running.result(30)[1] == "done"
    assert error.response["Error"]["Code"] == "TooManyRequestsException"
    assert error.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"


def test_code_storage_limit_gives_code_storage_exceeded(tmp_path):
    with CorralProcess(tmp_path, "--code-storage-limit", "20000") as server:
        client = lambda_client(server.url)
        create_python_function(client, unique_name(), SLEEPER)
        settings = client.get_account_settings()
        assert settings["AccountLimit"]["TotalCodeSize"] == 20000
        assert 0 < settings["AccountUsage"]["TotalCodeSize"] < 20000
        big = make_zip({"app.py": SLEEPER, "blob.bin": os.urandom(30000)})
        with pytest.raises(ClientError) as excinfo:
            client.create_function(
                FunctionName=unique_name(),
                Runtime="python3.11",
                Role="arn:aws:iam::000000000000:role/x",
                Handler="app.handler",
                Code={"ZipFile": big},
            )
        assert_client_error(excinfo, "CodeStorageExceededException", 400)
        name = client.list_functions()["Functions"][0]["FunctionName"]
        with pytest.raises(ClientError) as excinfo:
            client.update_function_code(FunctionName=name, ZipFile=big)
        assert_client_error(excinfo, "CodeStorageExceededException", 400)
        client.update_function_code(FunctionName=name, ZipFile=python_zip(SLEEPER + "\n"))
