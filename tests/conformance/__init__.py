"""Conformance suite: Lambda's documented behaviour, checked through boto3 and the AWS CLI only.

Shared helpers: unique names, small Python handlers packaged as zips, and error checks.
Expectations cite the botocore model (service-2.json) or the AWS page they come from.
"""

from __future__ import annotations

import base64
import hashlib
import json
import textwrap
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support import make_zip

REGION = "us-east-1"
ACCOUNT = "000000000000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/lambda-role"
RUNTIME = "python3.11"


def unique_name(prefix: str = "fn") -> str:
    """A function name no other test (or xdist worker) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def function_arn(name: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def python_zip(source: str, module: str = "app") -> bytes:
    """A deployment package holding one module, `<module>.py`, with `source` dedented."""
    return make_zip({f"{module}.py": textwrap.dedent(source)})


def code_sha256(zip_bytes: bytes) -> str:
    """CodeSha256 as Lambda reports it: base64 of the SHA-256 digest of the package."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


ECHO = """
def handler(event, context):
    return event
"""

# A handler that says which code ({tag}), version and ARN ran: for versions and aliases.
VERSIONED = """
def handler(event, context):
    return {{"code": "{tag}", "version": context.function_version,
            "arn": context.invoked_function_arn}}
"""


def versioned_zip(tag: str) -> bytes:
    return python_zip(VERSIONED.format(tag=tag))


def create_python_function(
    lam, name: str, source: str = ECHO, handler: str = "app.handler", **kwargs
) -> dict:
    """CreateFunction with a one-module python3.11 package; waits until it is Active."""
    response = lam.create_function(
        FunctionName=name,
        Runtime=RUNTIME,
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": python_zip(source)},
        **kwargs,
    )
    wait_active(lam, name)
    return response


def wait_active(lam, name: str) -> None:
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )


def wait_updated(lam, name: str) -> None:
    lam.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )


def invoke_json(lam, name: str, event: object = None, **kwargs) -> tuple[dict, object]:
    """Invoke with a JSON event; returns the response and the decoded payload (None if empty)."""
    payload = b"{}" if event is None else json.dumps(event).encode()
    response = lam.invoke(FunctionName=name, Payload=payload, **kwargs)
    body = response["Payload"].read()
    return response, (json.loads(body) if body else None)


def assert_client_error(
    excinfo: pytest.ExceptionInfo[ClientError],
    code: str,
    status: int,
    message: str | None = None,
) -> str:
    """Check the error type (x-amzn-ErrorType), the HTTP status and, if given, the message."""
    error = excinfo.value.response["Error"]
    assert error["Code"] == code, excinfo.value.response
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    if message is not None:
        assert error["Message"] == message
    return error["Message"]
