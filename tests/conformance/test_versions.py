"""Versions: PublishVersion, ListVersionsByFunction, qualified invokes and deletes.

Lambda developer guide, "Manage Lambda function versions"; botocore shapes PublishVersion,
ListVersionsByFunction, DeleteFunction (Qualifier).
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conformance import (
    VERSIONED,
    assert_client_error,
    code_sha256,
    create_python_function,
    function_arn,
    invoke_json,
    python_zip,
    unique_name,
    versioned_zip,
)
from tests.support import CorralProcess, lambda_client


def _update_code(lam, name: str, tag: str, **kwargs) -> dict:
    return lam.update_function_code(FunctionName=name, ZipFile=versioned_zip(tag), **kwargs)


def test_publish_version_snapshots_latest(lam):
    name = unique_name()
    create_python_function(lam, name, VERSIONED.format(tag="a"))
    version = lam.publish_version(FunctionName=name, Description="first")
    assert version["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert version["Version"] == "1"
    assert version["FunctionArn"] == function_arn(name, "1")
    assert version["Description"] == "first"
    latest = lam.get_function_configuration(FunctionName=name)
    assert version["CodeSha256"] == latest["CodeSha256"]
    assert version["RevisionId"] != latest["RevisionId"]


def test_publishing_unchanged_latest_returns_the_same_version(lam):
    name = unique_name()
    create_python_function(lam, name, VERSIONED.format(tag="a"))
    first = lam.publish_version(FunctionName=name)
    again = lam.publish_version(FunctionName=name)
    assert first["Version"] == again["Version"] == "1"
    lam.update_function_configuration(FunctionName=name, Timeout=9)
    assert lam.publish_version(FunctionName=name)["Version"] == "2"


def test_versions_run_their_own_code(lam):
    name = unique_name()
    create_python_function(lam, name, VERSIONED.format(tag="a"))
    lam.publish_version(FunctionName=name)
    _update_code(lam, name, "b")
    lam.publish_version(FunctionName=name)
    _update_code(lam, name, "c")

    response, v1 = invoke_json(lam, f"{name}:1")
    assert v1["code"] == "a" and v1["version"] == "1"
    assert v1["arn"] == function_arn(name, "1")
    assert response["ExecutedVersion"] == "1"
    response, v2 = invoke_json(lam, name, Qualifier="2")
    assert v2["code"] == "b" and response["ExecutedVersion"] == "2"
    response, latest = invoke_json(lam, name)
    assert latest["code"] == "c" and latest["version"] == "$LATEST"
    assert response["ExecutedVersion"] == "$LATEST"


def test_list_versions_starts_with_latest_and_paginates(lam):
    name = unique_name()
    create_python_function(lam, name, VERSIONED.format(tag="a"))
    for tag in ("b", "c"):
        lam.publish_version(FunctionName=name)
        _update_code(lam, name, tag)
    listed = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in listed] == ["$LATEST", "1", "2"]

    pages = lam.get_paginator("list_versions_by_function").paginate(
        FunctionName=name, PaginationConfig={"PageSize": 1}
    )
    assert [v["Version"] for page in pages for v in page["Versions"]] == ["$LATEST", "1", "2"]


def test_create_and_update_code_with_publish(lam):
    name = unique_name()
    created = create_python_function(lam, name, VERSIONED.format(tag="a"), Publish=True)
    assert created["Version"] == "1"
    updated = _update_code(lam, name, "b", Publish=True)
    assert updated["Version"] == "2"
    assert invoke_json(lam, f"{name}:2")[1]["code"] == "b"


def test_publish_preconditions(lam):
    name = unique_name()
    create_python_function(lam, name, VERSIONED.format(tag="a"))
    with pytest.raises(ClientError) as excinfo:
        lam.publish_version(FunctionName=name, CodeSha256=code_sha256(b"other"))
    assert_client_error(excinfo, "InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as excinfo:
        lam.publish_version(FunctionName=name, RevisionId="not-the-revision")
    assert_client_error(excinfo, "PreconditionFailedException", 412)


def test_deleted_version_is_gone_and_its_number_is_not_reused(lam):
    name = unique_name()
    create_python_function(lam, name, VERSIONED.format(tag="a"), Publish=True)
    assert lam.delete_function(FunctionName=name, Qualifier="1")
    with pytest.raises(ClientError) as excinfo:
        invoke_json(lam, f"{name}:1")
    assert_client_error(excinfo, "ResourceNotFoundException", 404)
    _update_code(lam, name, "b")
    assert lam.publish_version(FunctionName=name)["Version"] == "2"


def test_latest_cannot_be_deleted_by_qualifier(lam):
    name = unique_name()
    create_python_function(lam, name)
    with pytest.raises(ClientError) as excinfo:
        lam.delete_function(FunctionName=name, Qualifier="$LATEST")
    assert_client_error(excinfo, "InvalidParameterValueException", 400)


def test_get_function_of_a_version(lam):
    name = unique_name()
    create_python_function(lam, name, VERSIONED.format(tag="a"), Publish=True)
    _update_code(lam, name, "b")
    config = lam.get_function(FunctionName=name, Qualifier="1")["Configuration"]
    assert config["Version"] == "1"
    assert config["CodeSha256"] == code_sha256(python_zip(VERSIONED.format(tag="a")))
    with pytest.raises(ClientError) as excinfo:
        lam.get_function(FunctionName=name, Qualifier="7")
    assert_client_error(excinfo, "ResourceNotFoundException", 404)


def test_versions_survive_a_restart(tmp_path):
    name = unique_name()
    with CorralProcess(tmp_path) as server:
        client = lambda_client(server.url)
        create_python_function(client, name, VERSIONED.format(tag="a"), Publish=True)
        _update_code(client, name, "b")
    with CorralProcess(tmp_path) as server:
        client = lambda_client(server.url)
        assert invoke_json(client, f"{name}:1")[1]["code"] == "a"
        assert invoke_json(client, name)[1]["code"] == "b"
        assert lam_versions(client, name) == ["$LATEST", "1"]
        _update_code(client, name, "c")
        assert client.publish_version(FunctionName=name)["Version"] == "2"


def lam_versions(client, name: str) -> list[str]:
    return [v["Version"] for v in client.list_versions_by_function(FunctionName=name)["Versions"]]
