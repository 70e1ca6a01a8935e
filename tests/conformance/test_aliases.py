"""Aliases: CRUD, invocation through an alias, weighted routing.

Lambda developer guide, "Create an alias for a Lambda function" and "Implement Lambda
canary deployments using a weighted alias"; botocore shapes CreateAlias...ListAliases.
"""

from __future__ import annotations

from collections import Counter

import pytest
from botocore.exceptions import ClientError

from tests.conformance import (
    VERSIONED,
    assert_client_error,
    create_python_function,
    function_arn,
    invoke_json,
    unique_name,
    versioned_zip,
)
from tests.support import CorralProcess, lambda_client


def _two_versions(lam) -> str:
    name = unique_name()
    create_python_function(lam, name, VERSIONED.format(tag="a"), Publish=True)
    lam.update_function_code(FunctionName=name, ZipFile=versioned_zip("b"), Publish=True)
    return name


def test_alias_crud(lam):
    name = _two_versions(lam)
    created = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["AliasArn"] == function_arn(name, "live")
    assert created["FunctionVersion"] == "1"
    got = lam.get_alias(FunctionName=name, Name="live")
    assert got["RevisionId"] == created["RevisionId"]
    updated = lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
    assert updated["FunctionVersion"] == "2"
    assert updated["RevisionId"] != created["RevisionId"]
    lam.create_alias(FunctionName=name, Name="old", FunctionVersion="1")
    listed = lam.list_aliases(FunctionName=name)["Aliases"]
    assert [a["Name"] for a in listed] == ["live", "old"]
    only_1 = lam.list_aliases(FunctionName=name, FunctionVersion="1")["Aliases"]
    assert [a["Name"] for a in only_1] == ["old"]
    lam.delete_alias(FunctionName=name, Name="old")
    with pytest.raises(ClientError) as excinfo:
        lam.get_alias(FunctionName=name, Name="old")
    assert_client_error(excinfo, "ResourceNotFoundException", 404)


def test_invoking_an_alias_runs_its_version(lam):
    name = _two_versions(lam)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    response, body = invoke_json(lam, f"{name}:live")
    assert body["code"] == "a"
    assert body["arn"] == function_arn(name, "live")
    assert response["ExecutedVersion"] == "1"
    lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
    response, body = invoke_json(lam, name, Qualifier="live")
    assert body["code"] == "b" and response["ExecutedVersion"] == "2"
    config = lam.get_function(FunctionName=name, Qualifier="live")["Configuration"]
    assert config["Version"] == "2"


def test_weighted_alias_splits_traffic(lam):
    name = _two_versions(lam)
    lam.create_alias(
        FunctionName=name,
        Name="canary",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}},
    )
    executed = Counter(
        lam.invoke(FunctionName=name, Qualifier="canary", Payload=b"{}")["ExecutedVersion"]
        for _ in range(300)
    )
    # Binomial(300, 0.3): mean 90, sd 7.9; +-5 sd fails with probability below 1e-6.
    assert set(executed) == {"1", "2"}
    assert 50 <= executed["2"] <= 130, executed


@pytest.mark.parametrize(
    ("version", "weights", "code"),
    [
        ("$LATEST", {"2": 0.5}, "InvalidParameterValueException"),
        ("1", {"1": 0.5}, "InvalidParameterValueException"),
        # AdditionalVersion keys must match [0-9]+ in the model, so this is caught earlier.
        ("1", {"$LATEST": 0.5}, "ValidationException"),
    ],
)
def test_invalid_weighted_alias_is_refused(lam, version, weights, code):
    name = _two_versions(lam)
    with pytest.raises(ClientError) as excinfo:
        lam.create_alias(
            FunctionName=name,
            Name="bad",
            FunctionVersion=version,
            RoutingConfig={"AdditionalVersionWeights": weights},
        )
    assert_client_error(excinfo, code, 400)


def test_alias_errors(lam):
    name = _two_versions(lam)
    with pytest.raises(ClientError) as excinfo:
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="9")
    assert_client_error(excinfo, "ResourceNotFoundException", 404)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with pytest.raises(ClientError) as excinfo:
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="2")
    assert_client_error(excinfo, "ResourceConflictException", 409)
    with pytest.raises(ClientError) as excinfo:
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2", RevisionId="x")
    assert_client_error(excinfo, "PreconditionFailedException", 412)
    with pytest.raises(ClientError) as excinfo:
        lam.delete_function(FunctionName=name, Qualifier="1")
    assert_client_error(excinfo, "ResourceConflictException", 409)
    with pytest.raises(ClientError) as excinfo:
        invoke_json(lam, f"{name}:missing")
    assert_client_error(excinfo, "ResourceNotFoundException", 404)


def test_aliases_survive_a_restart(tmp_path):
    name = unique_name()
    with CorralProcess(tmp_path) as server:
        client = lambda_client(server.url)
        create_python_function(client, name, VERSIONED.format(tag="a"), Publish=True)
        client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with CorralProcess(tmp_path) as server:
        client = lambda_client(server.url)
        response, body = invoke_json(client, f"{name}:live")
        assert body["code"] == "a" and response["ExecutedVersion"] == "1"
