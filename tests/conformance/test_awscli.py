"""The common Lambda commands through the AWS CLI (`aws lambda --endpoint-url URL ...`).

Return codes ("Command line return codes" in the CLI user guide): 0 on success; a service
error is 254 in CLI v2 and 255 in CLI v1 (this venv's awscli 1.x returns 255 for every error).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance import (
    ROLE,
    RUNTIME,
    code_sha256,
    function_arn,
    python_zip,
    unique_name,
)
from tests.support import http_request

AWS = str(Path(sys.executable).with_name("aws"))
SERVICE_ERROR_RC = (254, 255)
SOURCE = "def handler(event, context):\n    return {'got': event}\n"


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("aws-home")
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
        # Keep a developer's ~/.aws out of the run, and fail fast on errors.
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    }


@pytest.fixture
def aws(corral_url, cli_env):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AWS, "lambda", "--endpoint-url", corral_url, "--output", "json", *args],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def _ok(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else {}


@pytest.fixture
def package(tmp_path) -> Path:
    path = tmp_path / "function.zip"
    path.write_bytes(python_zip(SOURCE))
    return path


def _create(aws, name: str, package: Path) -> dict:
    return _ok(
        aws(
            "create-function",
            "--function-name", name,
            "--runtime", RUNTIME,
            "--role", ROLE,
            "--handler", "app.handler",
            "--zip-file", f"fileb://{package}",
        )
    )  # fmt: skip


def test_cli_create_function(aws, package):
    name = unique_name("cli")

    created = _create(aws, name, package)

    assert created["FunctionName"] == name
    assert created["FunctionArn"] == function_arn(name)
    assert created["CodeSha256"] == code_sha256(package.read_bytes())
    assert created["Timeout"] == 3
    assert created["MemorySize"] == 128


def test_cli_get_function(aws, package):
    name = unique_name("cli")
    _create(aws, name, package)
    _ok(aws("wait", "function-active-v2", "--function-name", name))

    got = _ok(aws("get-function", "--function-name", name))

    assert got["Configuration"]["FunctionName"] == name
    assert got["Configuration"]["State"] == "Active"
    assert got["Code"]["Location"].startswith("http")


def test_cli_list_functions(aws, package):
    name = unique_name("cli")
    _create(aws, name, package)

    listed = _ok(aws("list-functions"))

    assert name in {f["FunctionName"] for f in listed["Functions"]}


def test_cli_update_function_configuration(aws, package):
    name = unique_name("cli")
    created = _create(aws, name, package)

    updated = _ok(
        aws(
            "update-function-configuration",
            "--function-name", name,
            "--timeout", "30",
            "--memory-size", "512",
            "--environment", "Variables={STAGE=test}",
        )
    )  # fmt: skip
    got = _ok(aws("get-function-configuration", "--function-name", name))

    assert updated["RevisionId"] != created["RevisionId"]
    for config in (updated, got):
        assert config["Timeout"] == 30
        assert config["MemorySize"] == 512
        assert config["Environment"] == {"Variables": {"STAGE": "test"}}


def test_cli_invoke_writes_the_result_to_the_outfile(aws, package, tmp_path):
    name = unique_name("cli")
    _create(aws, name, package)
    _ok(aws("wait", "function-active-v2", "--function-name", name))
    event = tmp_path / "event.json"
    event.write_text('{"hello": "cli"}')
    outfile = tmp_path / "out.json"

    meta = _ok(
        aws("invoke", "--function-name", name, "--payload", f"fileb://{event}", str(outfile))
    )

    assert meta["StatusCode"] == 200
    assert meta["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in meta
    assert json.loads(outfile.read_text()) == {"got": {"hello": "cli"}}


def test_cli_delete_function(aws, package):
    name = unique_name("cli")
    _create(aws, name, package)

    deleted = aws("delete-function", "--function-name", name)
    after = aws("get-function", "--function-name", name)

    assert deleted.returncode == 0, deleted.stderr
    assert after.returncode in SERVICE_ERROR_RC
    assert "ResourceNotFoundException" in after.stderr


def test_cli_get_missing_function_is_resource_not_found(aws):
    name = unique_name("cli-missing")

    result = aws("get-function", "--function-name", name)

    assert result.returncode in SERVICE_ERROR_RC, (result.returncode, result.stderr)
    assert "An error occurred (ResourceNotFoundException)" in result.stderr
    assert f"Function not found: {function_arn(name)}" in result.stderr


def test_cli_versions_aliases_and_concurrency(aws, package, tmp_path):
    name = unique_name("cli")
    _create(aws, name, package)

    version = _ok(aws("publish-version", "--function-name", name))
    assert version["Version"] == "1"
    versions = _ok(aws("list-versions-by-function", "--function-name", name))
    assert [v["Version"] for v in versions["Versions"]] == ["$LATEST", "1"]
    alias = _ok(
        aws("create-alias", "--function-name", name, "--name", "live", "--function-version", "1")
    )
    assert alias["AliasArn"] == function_arn(name, "live")
    out = tmp_path / "out.json"
    invoked = _ok(
        aws("invoke", "--function-name", name, "--qualifier", "live", "--payload", "{}", str(out))
    )
    assert invoked["ExecutedVersion"] == "1"
    assert json.loads(out.read_text()) == {"got": {}}
    reserved = _ok(
        aws(
            "put-function-concurrency",
            "--function-name", name,
            "--reserved-concurrent-executions", "5",
        )
    )  # fmt: skip
    assert reserved["ReservedConcurrentExecutions"] == 5
    assert _ok(aws("get-account-settings"))["AccountLimit"]["ConcurrentExecutions"] == 1000


def test_cli_function_url_config(aws, package, corral_url):
    """The README's example: a URL with CORS, then a request to it."""
    name = unique_name("cli")
    _create(aws, name, package)
    created = _ok(
        aws(
            "create-function-url-config",
            "--function-name", name,
            "--auth-type", "NONE",
            "--cors", "AllowOrigins=*,AllowMethods=GET,POST",
        )
    )  # fmt: skip
    assert created["Cors"] == {"AllowOrigins": ["*"], "AllowMethods": ["GET", "POST"]}
    host = created["FunctionUrl"].split("//", 1)[1].rstrip("/")
    status, _, body = http_request(corral_url, "GET", "/hi?x=1", host=host)
    assert status == 200
    assert json.loads(body)["got"]["rawPath"] == "/hi"
    listed = _ok(aws("list-function-url-configs", "--function-name", name))
    assert [u["FunctionUrl"] for u in listed["FunctionUrlConfigs"]] == [created["FunctionUrl"]]
    iam = aws("create-function-url-config", "--function-name", name, "--auth-type", "AWS_IAM")
    assert iam.returncode in SERVICE_ERROR_RC
    assert "InvalidParameterValueException" in iam.stderr
    _ok(aws("delete-function-url-config", "--function-name", name))
