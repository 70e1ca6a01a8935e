"""Provisioned concurrency: environments initialized ahead of invocations, kept warm.

Lambda developer guide, "Configuring provisioned concurrency for a function"; botocore
shapes PutProvisionedConcurrencyConfig ... ListProvisionedConcurrencyConfigs.
"""

from __future__ import annotations

import base64
import json
import urllib.request

import pytest
from botocore.exceptions import ClientError

from tests.conformance import (
    assert_client_error,
    create_python_function,
    function_arn,
    invoke_json,
    unique_name,
)
from tests.support import CorralProcess, lambda_client, wait_until

INIT_TYPE = """
import os
def handler(event, context):
    return os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]
"""


def _idle_environments(url: str) -> int:
    with urllib.request.urlopen(f"{url}/corral/v1/health", timeout=5) as response:
        return json.load(response)["environments"].get("idle", 0)


def _wait_ready(client, name: str, qualifier: str) -> dict:
    def ready():
        config = client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        return config if config["Status"] == "READY" else None

    return wait_until(ready, timeout_s=20, what="provisioned concurrency READY")


def test_provisioned_environments_are_initialized_before_any_invoke(tmp_path):
    with CorralProcess(tmp_path) as server:
        client = lambda_client(server.url)
        name = unique_name()
        create_python_function(client, name, INIT_TYPE, Publish=True)
        put = client.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2
        )
        assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert put["RequestedProvisionedConcurrentExecutions"] == 2
        assert put["Status"] in ("IN_PROGRESS", "READY")
        ready = _wait_ready(client, name, "1")
        assert ready["AvailableProvisionedConcurrentExecutions"] == 2
        assert ready["AllocatedProvisionedConcurrentExecutions"] == 2
        assert _idle_environments(server.url) == 2  # before the first invocation

        response = client.invoke(FunctionName=name, Qualifier="1", LogType="Tail")
        assert json.loads(response["Payload"].read()) == "provisioned-concurrency"
        report = base64.b64decode(response["LogResult"]).decode().splitlines()[-1]
        assert report.startswith("REPORT") and "Init Duration" not in report


def test_provisioned_environments_are_never_reaped(tmp_path):
    with CorralProcess(tmp_path, "--keep-alive", "0.3") as server:
        client = lambda_client(server.url)
        name = unique_name()
        create_python_function(client, name, INIT_TYPE, Publish=True)
        client.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
        )
        _wait_ready(client, name, "1")
        assert invoke_json(client, name)[1] == "on-demand"  # $LATEST: an ordinary one
        assert _idle_environments(server.url) == 2
        wait_until(lambda: _idle_environments(server.url) == 1, what="on-demand one reaped")
        assert invoke_json(client, f"{name}:1")[1] == "provisioned-concurrency"


def test_provisioned_configuration_errors(lam):
    name = unique_name()
    create_python_function(lam, name, INIT_TYPE, Publish=True)
    with pytest.raises(ClientError) as excinfo:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
        )
    assert_client_error(excinfo, "InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as excinfo:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert_client_error(excinfo, "ProvisionedConcurrencyConfigNotFoundException", 404)
    with pytest.raises(ClientError) as excinfo:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="7", ProvisionedConcurrentExecutions=1
        )
    assert_client_error(excinfo, "ResourceNotFoundException", 404)


def test_provisioned_concurrency_on_an_alias_is_listed_and_deleted(lam):
    name = unique_name()
    create_python_function(lam, name, INIT_TYPE, Publish=True)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1
    )
    _wait_ready(lam, name, "live")
    assert invoke_json(lam, f"{name}:live")[1] == "provisioned-concurrency"
    listed = lam.list_provisioned_concurrency_configs(FunctionName=name)
    configs = listed["ProvisionedConcurrencyConfigs"]
    assert [c["FunctionArn"] for c in configs] == [function_arn(name, "live")]
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    with pytest.raises(ClientError) as excinfo:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert_client_error(excinfo, "ProvisionedConcurrencyConfigNotFoundException", 404)


def test_provisioned_concurrency_is_restored_after_a_restart(tmp_path):
    name = unique_name()
    with CorralProcess(tmp_path) as server:
        client = lambda_client(server.url)
        create_python_function(client, name, INIT_TYPE, Publish=True)
        client.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2
        )
        _wait_ready(client, name, "1")
    with CorralProcess(tmp_path) as server:
        client = lambda_client(server.url)
        ready = _wait_ready(client, name, "1")
        assert ready["RequestedProvisionedConcurrentExecutions"] == 2
        assert _idle_environments(server.url) == 2
