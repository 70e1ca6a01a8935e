"""Function URL configuration through boto3: CreateFunctionUrlConfig ... ListFunctionUrlConfigs.

botocore shapes CreateFunctionUrlConfigRequest ... FunctionUrlConfig (service-2.json);
Lambda developer guide, "Creating and managing Lambda function URLs".
"""

from __future__ import annotations

import re

import pytest
from botocore.exceptions import ClientError

from tests.conformance import (
    assert_client_error,
    create_python_function,
    function_arn,
    unique_name,
)

_URL = re.compile(r"http://([a-z0-9]{32})\.lambda-url\.us-east-1\.localhost:\d+/")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def test_url_config_crud(lam):
    name = unique_name()
    create_python_function(lam, name)
    created = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert _URL.fullmatch(created["FunctionUrl"])
    assert created["FunctionArn"] == function_arn(name)
    assert created["AuthType"] == "NONE"
    assert created["InvokeMode"] == "BUFFERED"
    assert _TIME.fullmatch(created["CreationTime"])
    assert "Cors" not in created

    got = lam.get_function_url_config(FunctionName=name)
    assert got["FunctionUrl"] == created["FunctionUrl"]
    assert got["LastModifiedTime"] == got["CreationTime"] == created["CreationTime"]

    cors = {"AllowOrigins": ["*"], "AllowMethods": ["GET"], "MaxAge": 60}
    updated = lam.update_function_url_config(FunctionName=name, Cors=cors)
    assert updated["Cors"] == cors
    assert updated["FunctionUrl"] == created["FunctionUrl"]  # the address never changes
    assert updated["LastModifiedTime"] >= updated["CreationTime"]
    assert lam.get_function_url_config(FunctionName=name)["Cors"] == cors

    listed = lam.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]
    assert [u["FunctionUrl"] for u in listed] == [created["FunctionUrl"]]

    deleted = lam.delete_function_url_config(FunctionName=name)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as excinfo:
        lam.get_function_url_config(FunctionName=name)
    assert_client_error(excinfo, "ResourceNotFoundException", 404)
    assert lam.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"] == []


def test_one_url_per_function_and_alias(lam):
    name = unique_name()
    create_python_function(lam, name, Publish=True)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    plain = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    with pytest.raises(ClientError) as excinfo:
        lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert_client_error(excinfo, "ResourceConflictException", 409)
    live = lam.create_function_url_config(FunctionName=name, Qualifier="live", AuthType="NONE")
    assert live["FunctionArn"] == function_arn(name, "live")
    assert live["FunctionUrl"] != plain["FunctionUrl"]
    page = lam.list_function_url_configs(FunctionName=name, MaxItems=1)
    assert len(page["FunctionUrlConfigs"]) == 1 and page["NextMarker"]
    rest = lam.list_function_url_configs(FunctionName=name, Marker=page["NextMarker"])
    both = page["FunctionUrlConfigs"] + rest["FunctionUrlConfigs"]
    assert {u["FunctionArn"] for u in both} == {function_arn(name), function_arn(name, "live")}
    assert "NextMarker" not in rest


def test_bad_input(lam):
    name = unique_name()
    create_python_function(lam, name, Publish=True)
    cases = [
        ({"AuthType": "AWS_IAM"}, "InvalidParameterValueException"),
        ({"AuthType": "SIGV5"}, "ValidationException"),
        ({"AuthType": "NONE", "InvokeMode": "FAST"}, "ValidationException"),
        ({"AuthType": "NONE", "Qualifier": "1"}, "ValidationException"),  # a version
        ({"AuthType": "NONE", "Cors": {"MaxAge": 86401}}, "ValidationException"),
        (
            {"AuthType": "NONE", "Cors": {"AllowMethods": ["FETCH"]}},
            "InvalidParameterValueException",
        ),
    ]
    for params, code in cases:
        with pytest.raises(ClientError) as excinfo:
            lam.create_function_url_config(FunctionName=name, **params)
        assert_client_error(excinfo, code, 400)
    with pytest.raises(ClientError) as excinfo:
        lam.create_function_url_config(FunctionName=f"{name}:1", AuthType="NONE")
    assert_client_error(excinfo, "InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as excinfo:
        lam.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")
    message = excinfo.value.response["Error"]["Message"]
    assert "AWS_IAM" in message and "NONE" in message


def test_missing_things(lam):
    missing = unique_name()
    with pytest.raises(ClientError) as excinfo:
        lam.create_function_url_config(FunctionName=missing, AuthType="NONE")
    assert_client_error(excinfo, "ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as excinfo:
        lam.list_function_url_configs(FunctionName=missing)
    assert_client_error(excinfo, "ResourceNotFoundException", 404)
    name = unique_name()
    create_python_function(lam, name)
    with pytest.raises(ClientError) as excinfo:
        lam.create_function_url_config(FunctionName=name, Qualifier="nope", AuthType="NONE")
    assert_client_error(excinfo, "ResourceNotFoundException", 404)
    for call in (lam.get_function_url_config, lam.delete_function_url_config):
        with pytest.raises(ClientError) as excinfo:
            call(FunctionName=name)
        assert_client_error(excinfo, "ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as excinfo:
        lam.update_function_url_config(FunctionName=name, AuthType="NONE")
    assert_client_error(excinfo, "ResourceNotFoundException", 404)


def test_url_goes_with_its_function(lam):
    name = unique_name()
    create_python_function(lam, name)
    lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    lam.delete_function(FunctionName=name)
    create_python_function(lam, name)
    with pytest.raises(ClientError) as excinfo:
        lam.get_function_url_config(FunctionName=name)
    assert_client_error(excinfo, "ResourceNotFoundException", 404)
